"""Beyond the anchors: targeted reloads, build-then-reload, why it reloaded.

Real processes, real Chromium.
"""

import os
import re
import signal
import sys
import textwrap
import time

import pytest

from conftest import SCALE, free_port, module, open_page, write

SNIPPET_TAG = '<script src="http://127.0.0.1:{port}/reload.js"></script>'
PAGE = """<!doctype html><html><head><meta charset="utf-8">{head}</head>
<body><h1 id="title">{title}</h1>{body}{snippet}</body></html>"""


def page_html(port, title, head="", body=""):
    return PAGE.format(head=head, title=title, body=body, snippet=SNIPPET_TAG.format(port=port))


@pytest.fixture
def two_pages(procs, tmp_path):
    """index.html (style.css, app.js, pic.svg) and other.html (other.css), all served by us."""
    root = tmp_path / "site"
    root.mkdir()
    port = free_port()
    (root / "index.html").write_text(page_html(
        port, "index", '<link rel="stylesheet" href="style.css">',
        '<img id="pic" src="pic.svg"><script src="app.js"></script>'))
    (root / "other.html").write_text(page_html(port, "other", '<link rel="stylesheet" href="other.css">'))
    (root / "style.css").write_text("h1 { color: rgb(0, 0, 1); }")
    (root / "other.css").write_text("h1 { color: rgb(0, 0, 2); }")
    (root / "app.js").write_text("window.app = 1;")
    (root / "pic.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>')
    main = procs(module("sigreload") + [root, "--port", "0", "--ws-port", port])
    url = main.wait_seen(r"at (http://\S+/)").group(1)
    main.wait_seen("watching")
    main.wait_seen("ready on")
    return root, url, main


def mark(*pages):
    for p in pages:
        p.evaluate("window.marker = 'kept'")


def kept(page):
    return page.evaluate("window.marker") == "kept"


def color(page):
    return page.evaluate("getComputedStyle(document.querySelector('h1')).color")


def test_only_the_pages_that_use_a_changed_file_update(two_pages, page):
    root, url, main = two_pages
    other = page.context.new_page()
    open_page(page, url + "index.html")
    open_page(other, url + "other.html")
    mark(page, other)
    # A stylesheet only other.html uses: it swaps, index.html stays.
    write(root / "other.css", "h1 { color: rgb(9, 9, 9); }")
    other.wait_for_function("getComputedStyle(document.querySelector('h1')).color === 'rgb(9, 9, 9)'")
    main.wait_for(r"css sent to 2 page\(s\) \(/other\.css\)")
    assert kept(page) and kept(other) and color(page) == "rgb(0, 0, 1)"
    # An image only index.html shows: swapped in place, other.html stays.
    write(root / "pic.svg", '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10"></svg>')
    page.wait_for_function("document.getElementById('pic').naturalWidth === 20")
    assert kept(page) and kept(other)
    # index.html's own HTML: it reloads, other.html stays.
    with page.expect_event("load"):
        write(root / "index.html", (root / "index.html").read_text().replace(">index<", ">index v2<"))
    assert page.locator("#title").inner_text() == "index v2"
    assert kept(other)
    # A script index.html runs: it reloads, other.html stays.
    with page.expect_event("load"):
        write(root / "app.js", "window.app = 2;")
    assert page.evaluate("window.app") == 2 and kept(other)
    # A file nobody uses: everybody stays.
    mark(page)
    write(root / "unused.txt", "x")
    main.wait_for(r"reload sent to 2 page\(s\) \(/unused\.txt\)")
    assert kept(page) and kept(other)
    # A bare kill -USR1 still reloads everything.
    broadcaster = int(main.wait_seen(r"ready on .*\(pid (\d+)\)").group(1))
    with page.expect_event("load"), other.expect_event("load"):
        os.kill(broadcaster, signal.SIGUSR1)


def test_a_page_that_cannot_map_the_paths_reloads(procs, two_pages, page, tmp_path):
    """Watched folder != served folder (a path outside it): when in doubt, reload."""
    root, _, _ = two_pages
    http = procs(module("http_server") + [root.parent, "--port", "0"])  # serves the parent
    url = http.wait_for(r"at (http://\S+/)").group(1)
    open_page(page, url + "site/other.html")
    with page.expect_event("load"):
        write(root / "unused.txt", "changed")  # other.html does not use it, but cannot know


BUILD = textwrap.dedent("""\
    import pathlib, sys, time
    src = pathlib.Path.cwd()
    log = pathlib.Path(sys.argv[1])
    log.write_text(log.read_text() + "build\\n" if log.exists() else "build\\n")
    text = (src / "page.txt").read_text()
    time.sleep(float(sys.argv[2]))
    (src / "_cache").mkdir(exist_ok=True)  # written beside the output, like Sphinx's doctrees
    (src / "_cache" / "state.pickle").write_text(text)
    print("reading sources... " * 50)
    if "FAIL" in text:
        print("page.txt:1: error: bad input in page.txt")
        sys.exit(1)
    if "WARN" in text:
        print("page.txt:1: ERROR: Unknown directive type 'foo'.")
    out = src / "_build"
    out.mkdir(exist_ok=True)
    (out / "index.html").write_text(sys.argv[3].replace("TEXT", text))
    """)


@pytest.fixture
def built(procs, tmp_path):
    """sigreload building src/ into src/_build (inside the watched folder) and serving it."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "page.txt").write_text("first")
    script, log = tmp_path / "build.py", tmp_path / "builds.log"
    script.write_text(BUILD)
    port = free_port()
    template = page_html(port, "TEXT")
    delay = os.environ.get("BUILD_DELAY", "0.4")
    cmd = f"{sys.executable} {script} {log} {delay} '{template}'"
    main = procs(module("sigreload") + [src, "--port", "0", "--ws-port", port,
                                        "--exec", cmd, "--output", src / "_build"])
    url = main.wait_seen(r"at (http://\S+/)").group(1)
    main.wait_seen("watching")
    main.wait_seen("ready on")
    return src, url, main, log


def builds(log):
    return log.read_text().count("build")


def test_build_then_reload_once_per_burst_and_never_on_its_own_output(built, page):
    src, url, main, log = built
    assert builds(log) == 1  # the first build, before any page was served
    open_page(page, url)
    with page.expect_event("load"):
        write(src / "page.txt", "second")
    assert page.locator("#title").inner_text() == "second"
    main.wait_for("reload sent")
    # Three changes while that build runs: exactly one more build after it.
    write(src / "page.txt", "third")
    main.wait_for("changed: building")
    for text in ("fourth", "fifth", "sixth"):
        write(src / "page.txt", text)
    page.wait_for_function("document.getElementById('title')?.innerText === 'sixth'")
    page.wait_for_timeout(1500)  # no rebuild loop from the build's own output: nothing more happens
    assert builds(log) == 4, log.read_text()


def test_a_failed_build_reloads_nothing_and_shows_its_error_until_a_good_one(built, page):
    src, url, main, log = built
    open_page(page, url)
    page.evaluate("window.marker = 'kept'")
    write(src / "page.txt", "FAIL please")
    overlay = page.locator("sigreload-error pre")
    overlay.wait_for()
    shown = overlay.inner_text().splitlines()  # the error line first, the whole log below
    assert shown[:3] == ["Build failed", "", "page.txt:1: error: bad input in page.txt"], shown[:5]
    assert "reading sources" in overlay.inner_text()
    assert page.evaluate("window.marker") == "kept"  # nothing reloaded
    main.wait_seen("build failed")  # the terminal shows it too
    main.wait_seen("error: bad input in page.txt")
    late = page.context.new_page()  # a page opened while the build is broken shows it too
    open_page(late, url)
    late.locator("sigreload-error pre").wait_for()
    with page.expect_event("load"):
        write(src / "page.txt", "fixed")
    assert page.locator("#title").inner_text() == "fixed"
    assert page.locator("sigreload-error").count() == 0


def test_why_it_reloaded_is_logged_and_the_console_gets_one_line_per_update(two_pages, page):
    root, url, main = two_pages
    lines = []
    page.on("console", lambda msg: lines.append(msg.text) if msg.text.startswith("sigreload:") else None)
    open_page(page, url + "index.html")
    assert lines == []  # quiet otherwise
    write(root / "style.css", "h1 { color: rgb(5, 5, 5); }")
    page.wait_for_function("getComputedStyle(document.querySelector('h1')).color === 'rgb(5, 5, 5)'")
    assert lines == ["sigreload: swapped /style.css"]
    main.wait_seen(r"watch: style\.css changed: css sent to broadcaster PID")
    main.wait_seen(r"broadcast: css sent to 1 page\(s\) \(/style\.css\)")


def test_verbose_watcher_shows_each_pass_cost(procs, broadcaster, site):
    _, port = broadcaster
    w = procs(module("watcher") + [site, "--ws-port", port, "--poll", "-v"])
    w.wait_for("watching")
    write(site / "index.html", "x")
    w.wait_for(r"poll pass: 1 changed, \d+\.\d ms")


def test_a_good_build_with_error_lines_reloads_and_shows_them_in_a_notice(built, page):
    src, url, main, log = built
    open_page(page, url)
    with page.expect_event("load"):
        write(src / "page.txt", "WARN but built")
    assert page.locator("#title").inner_text() == "WARN but built"
    notice = page.locator("sigreload-notice pre")
    notice.wait_for()
    assert "page.txt:1: ERROR: Unknown directive type 'foo'." in notice.inner_text()
    main.wait_seen("build succeeded, but its output has 1 error line")
    page.locator("sigreload-notice button").click()
    assert page.locator("sigreload-notice").count() == 0
    page.reload()
    page.wait_for_timeout(500)
    assert page.locator("sigreload-notice").count() == 0  # closed stays closed
    with page.expect_event("load"):
        write(src / "page.txt", "clean")
    page.wait_for_timeout(300)
    assert page.locator("sigreload-notice").count() == 0


def test_an_output_folder_left_empty_is_one_line(procs, broadcaster, tmp_path):
    _, port = broadcaster
    (tmp_path / "page.txt").write_text("first")
    cmd = f"{sys.executable} -c \"open('page.txt').read()\""  # builds nothing anywhere
    w = procs(module("watcher") + [tmp_path, "--ws-port", port, "--exec", cmd, "--output", tmp_path / "out"])
    w.wait_for(r"build succeeded, but \S*out is empty: is --output the folder the build writes\?")
    w.wait_for("watching")
    write(tmp_path / "page.txt", "second")
    w.wait_for("reload sent")
    assert sum("is empty" in line for line in w.seen) == 1  # said once, not at every build


def test_a_snippet_talking_to_a_broadcaster_nobody_watches_for_is_told_once(procs, broadcaster, site, page):
    _, port = broadcaster
    http = procs(module("http_server") + [site, "--port", "0", "--inject", port])
    url = http.wait_for(r"at (http://\S+/)").group(1)
    lines = []
    page.on("console", lambda msg: lines.append(msg.text) if msg.text.startswith("sigreload:") else None)
    open_page(page, url)
    end = time.monotonic() + 6 * SCALE  # said after 2.5 s (a watcher starting with it finds it in a second)
    while not lines and time.monotonic() < end:
        page.wait_for_timeout(100)
    page.wait_for_timeout(300)
    assert [line for line in lines if "no watcher signals the broadcaster" in line] == lines[:1] and lines


def test_a_snippet_talking_to_the_broadcaster_of_another_folder_is_told_once(two_pages, procs, page, tmp_path):
    root, url, main = two_pages
    port = re.search(r"ready on ws://127\.0\.0\.1:(\d+)", main.output()).group(1)
    other = tmp_path / "other-site"
    other.mkdir()
    (other / "index.html").write_text(page_html(port, "elsewhere"))  # a pasted line naming that port
    http = procs(module("http_server") + [other, "--port", "0"])
    lines = []
    page.on("console", lambda msg: lines.append(msg.text) if msg.text.startswith("sigreload:") else None)
    open_page(page, http.wait_for(r"at (http://\S+/)").group(1))
    page.wait_for_timeout(800)
    assert len(lines) == 1 and "watches another folder than this page's" in lines[0], lines
