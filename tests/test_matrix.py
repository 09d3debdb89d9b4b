"""The real-browser matrix: after a save the page shows exactly what was saved.

Each case runs against our HTTP server and against stock ``python -m
http.server`` (a server that is not ours, whose headers let Chromium cache
heuristically). Files start with mtimes a day old, so Chromium would happily
serve a cached script or stylesheet after a reload if the snippet let it.
"""

import os
import signal
import sys
import time

import pytest

from conftest import ROOT, free_port, module, open_page, write

SNIPPET = (ROOT / "snippet" / "reload.js").read_text()
DAY = 24 * 3600

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{name}</title>
<link rel="stylesheet" href="style.css"></head>
<body><h1 id="title">{title}</h1>
<img id="pic" src="pic.svg">
<div style="height: 5000px">tall</div>
<script src="app.js"></script>
{snippet}
</body></html>
"""


def svg(width):
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="10"></svg>'


def make_site(root, snippet):
    root.mkdir(exist_ok=True)
    for name in ("index", "other"):
        (root / f"{name}.html").write_text(PAGE.format(name=name, title=f"{name} v1", snippet=snippet))
    (root / "style.css").write_text("h1 { color: rgb(0, 0, 255); }")
    (root / "app.js").write_text('window.appVersion = "v1";')
    (root / "pic.svg").write_text(svg(10))
    old = time.time() - DAY  # long unmodified: Chromium caches such files heuristically
    for path in root.iterdir():
        os.utime(path, (old, old))


def inline(port):
    return f'<script data-port="{port}">\n{SNIPPET}</script>'


class Live:
    """A site, the broadcaster, the watcher and an HTTP server: all real processes."""

    def __init__(self, procs, tmp_path, server, include="inline", watch=True):
        self.procs, self.server = procs, server
        self.root = tmp_path / "site"
        self.ws_port = free_port()
        self.broadcaster = self.start_broadcaster()
        snippet = {"inline": inline(self.ws_port),
                   "src": f'<script src="http://127.0.0.1:{self.ws_port}/reload.js"></script>',
                   "blog": BLOG_SNIPPET.replace("5678", str(self.ws_port))}[include]  # same code, free port
        make_site(self.root, snippet)  # before the watcher starts: setup is no edit
        if watch:
            watcher = procs(module("watcher") + [self.root, "--ws-port", self.ws_port, "--interval", "0.05"])
            watcher.wait_for("watching")
        if server == "ours":
            http = procs(module("http_server") + [self.root, "--port", "0"])
            self.url = http.wait_for(r"at (http://\S+/)").group(1)
        else:
            port = free_port()
            http = procs([sys.executable, "-u", "-m", "http.server", port, "--bind", "127.0.0.1"], cwd=self.root)
            http.wait_for("Serving HTTP")
            self.url = f"http://127.0.0.1:{port}/"

    def start_broadcaster(self):
        proc = self.procs(module("reload_server") + ["--port", self.ws_port])
        proc.wait_for("ready on")
        return proc

    def restart_broadcaster(self):
        self.broadcaster.popen.send_signal(signal.SIGTERM)
        assert self.broadcaster.exit_code() == 0
        self.broadcaster = self.start_broadcaster()


@pytest.fixture(params=["ours", "stock"])
def live(request, procs, tmp_path):
    return Live(procs, tmp_path, request.param)


def reloaded(page):
    """Context: the page's next load (a reload, with the snippet reconnected)."""
    return page.expect_event("load")


def title(page):
    return page.locator("#title").inner_text()


def test_html_edit_reloads_with_the_new_text(live, page):
    open_page(page, live.url)
    with reloaded(page):
        write(live.root / "index.html", PAGE.format(name="index", title="index v2", snippet=inline(live.ws_port)))
    assert title(page) == "index v2"


def test_stylesheet_edit_applies_without_reload_and_never_unstyled(live, page):
    open_page(page, live.url)
    page.evaluate("""() => {
        window.marker = 42; scrollTo(0, 700);
        window.unstyled = 0;
        new MutationObserver(() => {
            const loaded = [...document.querySelectorAll('link[rel=stylesheet]')].filter((l) => l.sheet);
            if (!loaded.length) window.unstyled++;
        }).observe(document.head, {childList: true});
    }""")
    write(live.root / "style.css", "h1 { color: rgb(255, 0, 0); }")
    page.wait_for_function("getComputedStyle(document.querySelector('h1')).color === 'rgb(255, 0, 0)'")
    assert page.evaluate("[window.marker, scrollY, window.unstyled]") == [42, 700, 0]
    assert page.locator("link[rel=stylesheet]").count() == 1


def test_script_edit_reloads_and_runs_the_new_script(live, page):
    open_page(page, live.url)
    assert page.evaluate("appVersion") == "v1"
    for version in ("v2", "v3"):  # twice: nothing stale after a reload either
        with reloaded(page):
            write(live.root / "app.js", f'window.appVersion = "{version}";')
        assert page.evaluate("appVersion") == version


def test_stylesheet_and_script_fresh_after_a_full_reload(live, page):
    """Both changed while only a reload is sent: no stale cached copy survives."""
    open_page(page, live.url)
    (live.root / "style.css").write_text("h1 { color: rgb(0, 128, 0); }")
    with reloaded(page):
        write(live.root / "app.js", 'window.appVersion = "both";')
    assert page.evaluate("appVersion") == "both"
    assert page.evaluate("getComputedStyle(document.querySelector('h1')).color") == "rgb(0, 128, 0)"


def test_image_edit_shows_the_new_image(live, page):
    """Our server: the image is swapped in place (no reload). Another server: a reload."""
    open_page(page, live.url)
    page.evaluate("window.marker = 'kept'")
    assert page.evaluate("document.getElementById('pic').naturalWidth") == 10
    if live.server == "ours":
        write(live.root / "pic.svg", svg(20))
        page.wait_for_function("document.getElementById('pic').naturalWidth === 20")
        assert page.evaluate("window.marker") == "kept"
    else:
        with reloaded(page):
            write(live.root / "pic.svg", svg(20))
        page.wait_for_function("document.getElementById('pic').naturalWidth === 20")


def test_full_reload_keeps_the_scroll_position(live, page):
    open_page(page, live.url)
    page.evaluate("scrollTo(0, 1200)")
    page.wait_for_function("scrollY === 1200")
    with reloaded(page):
        write(live.root / "app.js", 'window.appVersion = "scrolled";')
    page.wait_for_function("scrollY === 1200 && appVersion === 'scrolled'")


def test_two_tabs_on_different_pages_both_update(live, page):
    other = page.context.new_page()
    open_page(page, live.url + "index.html")
    open_page(other, live.url + "other.html")
    with reloaded(page), reloaded(other):
        write(live.root / "app.js", 'window.appVersion = "tabs";')
    assert page.evaluate("appVersion") == other.evaluate("appVersion") == "tabs"
    assert title(other) == "other v1"


@pytest.mark.parametrize("server", ["ours", "stock"])
def test_kill_usr1_reloads_and_usr2_refreshes_stylesheets_only(procs, tmp_path, page, server):
    live = Live(procs, tmp_path, server, watch=False)  # signals by hand only, nothing else
    open_page(page, live.url)
    page.evaluate("window.marker = 7")
    (live.root / "style.css").write_text("h1 { color: rgb(1, 2, 3); }")  # written directly
    os.kill(live.broadcaster.pid, signal.SIGUSR2)
    page.wait_for_function("getComputedStyle(document.querySelector('h1')).color === 'rgb(1, 2, 3)'")
    assert page.evaluate("window.marker") == 7
    with reloaded(page):
        os.kill(live.broadcaster.pid, signal.SIGUSR1)
    assert page.evaluate("window.marker") is None


@pytest.fixture
def ours(procs, tmp_path):
    return Live(procs, tmp_path, "ours")


def count_loads(page):
    loads = []
    page.on("load", lambda _: loads.append(time.monotonic()))
    return loads


def quiet(page, seconds=1.0):
    """Let the page run for ``seconds``: the absence of reloads is what is tested."""
    page.wait_for_timeout(seconds * 1000)


def test_no_reload_on_first_connect_and_at_most_one_per_restart(ours, page):
    loads = count_loads(page)
    open_page(page, ours.url)
    quiet(page)
    assert len(loads) == 1  # the first load only
    with reloaded(page):
        ours.restart_broadcaster()
    for _ in range(4):  # five restarts within ten seconds in all
        ours.restart_broadcaster()
    quiet(page, 2.0)
    assert 2 <= len(loads) <= 6, loads
    settled = len(loads)
    quiet(page, 2.0)
    assert len(loads) == settled  # never a loop
    with reloaded(page):  # and it still works
        os.kill(ours.broadcaster.pid, signal.SIGUSR1)


def test_one_line_include_from_the_broadcaster(procs, tmp_path, page):
    live = Live(procs, tmp_path, "ours", include="src")
    open_page(page, live.url)
    with reloaded(page):
        write(live.root / "index.html", PAGE.format(
            name="index", title="src v2",
            snippet=f'<script src="http://127.0.0.1:{live.ws_port}/reload.js"></script>'))
    assert title(page) == "src v2"


BLOG_SNIPPET = """<script>
const host = `${window.location.protocol}//${window.location.hostname}`;
const socketUrl = `ws://${window.location.hostname}:5678`;
const webSocket = new WebSocket(socketUrl);
webSocket.onmessage = () => { window.location.reload(); };
</script>"""


def test_the_original_blog_snippet_works_and_never_loops(procs, tmp_path, page):
    ours = Live(procs, tmp_path, "ours", include="blog")
    blog = BLOG_SNIPPET.replace("5678", str(ours.ws_port))
    loads = count_loads(page)
    with page.expect_websocket():
        page.goto(ours.url)
    quiet(page, 0.5)
    assert len(loads) == 1
    with reloaded(page):
        write(ours.root / "index.html", PAGE.format(name="index", title="blog v2", snippet=blog))
    assert title(page) == "blog v2"
    with reloaded(page):
        os.kill(ours.broadcaster.pid, signal.SIGUSR2)  # plain clients get "reload" for USR2 too
    settled = len(loads)
    quiet(page, 1.5)
    assert len(loads) == settled == 3


def test_file_url_page_reloads_without_errors(ours, page):
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    open_page(page, (ours.root / "index.html").as_uri())
    with reloaded(page):
        os.kill(ours.broadcaster.pid, signal.SIGUSR1)
    assert errors == []


def test_https_page_uses_wss_without_errors(page):
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    html = PAGE.format(name="https", title="https", snippet=inline(5999))
    page.route("https://sigreload.test/", lambda route: route.fulfill(body=html, content_type="text/html"))
    page.route("https://sigreload.test/*.*", lambda route: route.fulfill(status=404, body=""))
    with page.expect_websocket() as ws:
        page.goto("https://sigreload.test/")
    assert ws.value.url == "wss://sigreload.test:5999/sigreload"
    assert errors == []


def test_injected_snippet_reloads_a_page_that_has_none(procs, tmp_path, page):
    root = tmp_path / "plain"
    make_site(root, snippet="")  # no snippet in the file
    ws_port = free_port()
    b = procs(module("reload_server") + ["--port", ws_port])
    b.wait_for("ready on")
    w = procs(module("watcher") + [root, "--ws-port", ws_port])
    w.wait_for("watching")
    http = procs(module("http_server") + [root, "--port", "0", "--inject", ws_port])
    url = http.wait_for(r"at (http://\S+/)").group(1)
    open_page(page, url)
    with reloaded(page):
        write(root / "index.html", PAGE.format(name="index", title="injected v2", snippet=""))
    assert title(page) == "injected v2"
    assert "reload.js" not in (root / "index.html").read_text()
