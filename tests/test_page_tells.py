"""The page tells you (issue 35): a runtime error shows as a toast on the
page, its file:line opens the editor, and more. Real processes, real
browsers (the toast in Chromium, Firefox and WebKit).
"""

import json
import os
import sys
import urllib.error
import urllib.request

import pytest

from conftest import HELLO_SEEN, SCALE, free_port, module, until

APP_JS = """function broken() {
  null.boom();
}
window.fail = () => setTimeout(broken);
window.reject = () => setTimeout(() => Promise.reject(new RangeError("nope")));
"""
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>page</title>{head}
<style>div {{ color: red !important; font-size: 40px !important; display: none }}</style></head>
<body><h1 id="title">{title}</h1><input id="field"><script src="app.js"></script></body></html>"""
PASTED = '<script src="http://127.0.0.1:{port}/reload.js"></script>'
TOAST = "document.querySelector('sigreload-toast')"
TOAST_TEXT = f"({TOAST}?.shadowRoot.querySelector('.box').innerText || '')"
CONNECTED = "window[Symbol.for('sigreload')]?.connected === true"


def site(tmp_path, head=""):
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text(PAGE.format(head=head, title="one"))
    (root / "app.js").write_text(APP_JS)
    return root


def serve(procs, root, *extra):
    """sigreload on ``root``: (its Proc, the page's URL, the WebSocket port)."""
    ws_port = free_port()
    main = procs(module("sigreload") + [root, "--port", "0", "--ws-port", ws_port, *extra])
    url = main.wait_seen(r"at (http://\S+/)").group(1)
    main.wait_seen("ready on")
    main.wait_seen("watching")
    return main, url, ws_port


def screenshot(page, tmp_path, name):
    """A picture for the README: SIGRELOAD_SCREENSHOTS=docs writes it there (else beside the test)."""
    page.screenshot(path=os.path.join(os.environ.get("SIGRELOAD_SCREENSHOTS", tmp_path), name))


def stock_server(procs, root):
    """``python -m http.server`` on ``root``: its port."""
    port = free_port()
    procs([sys.executable, "-u", "-m", "http.server", port, "--bind", "127.0.0.1", "--directory", root]
          ).wait_for("Serving HTTP")
    return port


def opened(tab, url):
    tab.goto(url)
    tab.wait_for(CONNECTED, 10 * SCALE)
    tab.wait_for(f"({HELLO_SEEN})()", 10 * SCALE)


@pytest.mark.parametrize("how", ["file server", "pasted"])
def test_an_uncaught_error_and_a_rejection_show_a_toast(procs, tmp_path, tab, how):
    if how == "pasted":  # the page of another server, the snippet from the broadcaster
        ws_port = free_port()
        root = site(tmp_path, PASTED.format(port=ws_port))
        procs(module("broadcaster") + ["--port", ws_port]).wait_for("ready on")
        url = f"http://127.0.0.1:{stock_server(procs, root)}/"
    else:
        _, url, _ = serve(procs, site(tmp_path))
    opened(tab, url)
    tab.evaluate("(document.getElementById('field').focus(), fail(), 1)")
    tab.wait_for(f"{TOAST_TEXT}.includes('app.js:2')", 5 * SCALE)
    text = tab.evaluate(TOAST_TEXT)
    assert "TypeError" in text and "broken" in text, text
    assert tab.evaluate(f"{TOAST}.shadowRoot.mode") == "open"
    assert tab.evaluate("document.activeElement.id") == "field"  # never takes focus
    # a corner: the middle of the page stays visible
    assert tab.evaluate(f"""(() => {{ const r = {TOAST}.shadowRoot.querySelector('.box').getBoundingClientRect();
        const x = innerWidth / 2, y = innerHeight / 2;
        return !(r.left <= x && x <= r.right && r.top <= y && y <= r.bottom) && r.bottom <= innerHeight; }})()""")
    # the page's CSS does not reach it
    assert tab.evaluate(f"getComputedStyle({TOAST}.shadowRoot.querySelector('.box div')).fontSize") != "40px"
    tab.evaluate("(reject(), fail(), 1)")
    tab.wait_for(f"{TOAST_TEXT}.includes('3 errors')", 5 * SCALE)
    text = tab.evaluate(TOAST_TEXT)
    assert "RangeError: nope" in text and "×2" in text, text
    tab.evaluate("(document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape', bubbles: true})), 1)")
    tab.wait_for(f"!{TOAST}", 5 * SCALE)


def test_a_toast_closes_on_a_click_and_is_gone_after_a_reload(procs, tmp_path, page):
    root = site(tmp_path)
    _, url, _ = serve(procs, root)
    page.goto(url)
    page.wait_for_function(HELLO_SEEN)
    page.evaluate("fail()")
    page.wait_for_function(f"{TOAST_TEXT}.includes('app.js:2')")
    page.locator("sigreload-toast .msg").click()
    page.wait_for_function(f"!{TOAST}")
    page.evaluate("fail()")
    page.wait_for_function(f"!!{TOAST}")
    (root / "index.html").write_text(PAGE.format(head="", title="two"))
    page.wait_for_function("document.getElementById('title').textContent === 'two'")
    page.wait_for_function(HELLO_SEEN)
    assert page.evaluate(f"!{TOAST}")


def test_no_overlay_keeps_the_page_clean_and_the_terminal_line(procs, tmp_path, page):
    main, url, _ = serve(procs, site(tmp_path), "--no-overlay")
    page.goto(url)
    page.wait_for_function(HELLO_SEEN)
    page.evaluate("fail()")
    main.wait_for(r"\[\w+ /\] TypeError")
    assert page.evaluate(f"!{TOAST}")
    assert page.evaluate("!document.querySelector('script[src$=\"overlay.js\"]')")  # not even loaded


def test_a_toast_behind_the_proxy(procs, tmp_path, page):
    root = site(tmp_path)
    app_port = stock_server(procs, root)
    _, url, _ = serve(procs, root, "--proxy", f"http://127.0.0.1:{app_port}")
    page.goto(url)
    page.wait_for_function(HELLO_SEEN)
    page.evaluate("fail()")
    page.wait_for_function(f"{TOAST_TEXT}.includes('app.js:2')")


RECORDER = ("import json, os, sys; open(sys.argv[1] + '~', 'w').write(json.dumps(sys.argv[2:])); "
            "os.replace(sys.argv[1] + '~', sys.argv[1])")


def editor_flag(tmp_path):
    """--editor with a command that writes its arguments to a file (and that file)."""
    (tmp_path / "editor.py").write_text(RECORDER)
    record = tmp_path / "opened.json"
    return f"--editor={sys.executable} {tmp_path / 'editor.py'} {record} {{file}} {{line}} {{column}}", record


def test_a_click_on_file_line_opens_the_editor_there(procs, tmp_path, page):
    root = site(tmp_path)
    flag, record = editor_flag(tmp_path)
    _, url, _ = serve(procs, root, flag)
    page.goto(url)
    page.wait_for_function(HELLO_SEEN)
    page.evaluate("fail()")
    page.wait_for_function(f"{TOAST_TEXT}.includes('app.js:2')")
    page.set_viewport_size({"width": 900, "height": 520})
    page.evaluate("reject()")
    page.wait_for_function(f"{TOAST_TEXT}.includes('2 errors')")
    screenshot(page, tmp_path, "toast.png")
    page.locator("sigreload-toast .err:last-child > .at").click()
    until(record.exists, 5, "the editor was started")
    assert json.loads(record.read_text()) == [str(root / "app.js"), "2", "8"]
    assert page.evaluate(f"!!{TOAST}")  # the link opens, it does not close


def token_of(url, headers=None):
    """A fresh token, asked for as a browser's page of ``url`` asks (Sec-Fetch-Site: same-origin)."""
    request = urllib.request.Request(url + "_sigreload/token", headers=headers or {"Sec-Fetch-Site": "same-origin"})
    with urllib.request.urlopen(request, timeout=5 * SCALE) as answer:
        return json.loads(answer.read())["token"]


def post(url, body, origin):
    request = urllib.request.Request(url + "_sigreload/open", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Origin": origin})
    try:
        with urllib.request.urlopen(request, timeout=5 * SCALE) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_editor_opens_only_for_this_origin_this_run_and_files_under_the_root(procs, tmp_path):
    root = site(tmp_path)
    (tmp_path / "secret.txt").write_text("outside")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    flag, record = editor_flag(tmp_path)
    _, url, _ = serve(procs, root, flag)
    token = token_of(url)
    other_site = urllib.request.Request(url + "_sigreload/token", headers={"Sec-Fetch-Site": "cross-site"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(other_site, timeout=5 * SCALE)
    assert refused.value.code == 403
    own = url.rstrip("/")
    good = {"token": token, "path": "/app.js", "line": 2, "column": 8}
    assert post(url, good, "http://evil.example") == 403
    assert post(url, good, "http://localhost:1") == 403  # another loopback origin is another origin too
    assert post(url, {**good, "token": token[:-2] + "xx"}, own) == 403
    assert post(url, {**good, "token": ""}, own) == 403
    for outside in ("/../secret.txt", "/%2e%2e/secret.txt", "/link.txt", "/../../../../etc/passwd"):
        assert post(url, {**good, "token": token_of(url), "path": outside}, own) == 404, outside
    assert not record.exists()
    assert post(url, good, own) == 204
    until(record.exists, 5, "the editor was started")
    assert json.loads(record.read_text())[:2] == [str(root / "app.js"), "2"]


STATUS_ROWS = "document.querySelectorAll('#pages button[data-page]').length"


def test_the_status_page_lists_pages_errors_and_reloads_live_and_its_buttons_reload(procs, tmp_path, browser):
    root = site(tmp_path)
    (root / "other.html").write_text(PAGE.format(head="", title="other").replace("<title>page", "<title>other"))
    _, url, _ = serve(procs, root)
    context = browser.new_context()
    try:
        one, two, status = context.new_page(), context.new_page(), context.new_page()
        for p, where in ((one, url), (two, url + "other.html")):
            p.goto(where)
            p.wait_for_function(HELLO_SEEN)
            p.evaluate("window.marker = 1")
        status.goto(url + "_sigreload/")
        status.wait_for_function(f"{STATUS_ROWS} === 2 && document.body.innerText.includes('other.html')")
        text = status.inner_text("#pages")
        assert "127.0.0.1" in text and "Chrome" in text, text
        one.evaluate("fail()")
        status.wait_for_function("document.getElementById('errors').innerText.includes('TypeError')")
        (root / "index.html").write_text(PAGE.format(head="", title="two"))
        one.wait_for_function("document.getElementById('title').textContent === 'two'")
        status.wait_for_function("/index\\.html[\\s\\S]*saved[\\s\\S]*#\\d+ \\d+ ms/.test("
                                 "document.getElementById('reloads').innerText)")
        assert two.evaluate("window.marker") == 1  # other.html does not use index.html
        row = status.locator("#pages tr", has_text="other.html")
        row.locator("button").click()
        two.wait_for_function("window.marker === undefined")
        two.wait_for_function(HELLO_SEEN)
        status.wait_for_function("document.getElementById('reloads').innerText.includes('reload this one')")
        one.evaluate("window.marker = 1")
        two.evaluate("window.marker = 1")
        status.click("#all")
        for p in (one, two):
            p.wait_for_function("window.marker === undefined")
        status.wait_for_function("document.getElementById('reloads').innerText.includes('reload all')")
        assert "reload all\t2" in status.inner_text("#reloads")  # the status page itself is no page
        two.wait_for_function(HELLO_SEEN)
        two.evaluate("fail()")
        status.wait_for_function("document.getElementById('errors').innerText.includes('other.html')")
        status.set_viewport_size({"width": 1100, "height": 700})
        screenshot(status, tmp_path, "status.png")
    finally:
        context.close()


def test_the_status_socket_is_for_the_same_origins_as_the_pages_socket(procs, tmp_path):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    _, url, ws_port = serve(procs, site(tmp_path))
    relayed = url.replace("http", "ws", 1) + "_sigreload/socket?status"
    for where, origin in ((relayed, "http://evil.example"), (f"ws://127.0.0.1:{ws_port}/sigreload/status",
                                                              "http://evil.example")):
        with pytest.raises(InvalidStatus) as refused:
            connect(where, origin=origin, open_timeout=5 * SCALE)
        assert refused.value.response.status_code == 403
    with connect(relayed, origin=url.rstrip("/"), open_timeout=5 * SCALE) as ws:
        assert json.loads(ws.recv(timeout=5 * SCALE))["type"] == "status"
    with urllib.request.urlopen(url + "_sigreload/", timeout=5 * SCALE) as answer:
        assert answer.headers["X-Frame-Options"] == "DENY"
    request = urllib.request.Request(url + "_sigreload/", headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as refused_page:
        urllib.request.urlopen(request, timeout=5 * SCALE)
    assert refused_page.value.code == 403


LOADS = "<script>sessionStorage.setItem('loads', +(sessionStorage.getItem('loads') || 0) + 1)</script>"


def test_follow_opens_a_saved_page_in_the_tab_focused_last_once(procs, tmp_path, browser):
    root = site(tmp_path)
    (root / "other.html").write_text(PAGE.format(head=LOADS, title="other"))
    (root / "index.html").write_text(PAGE.format(head=LOADS, title="one"))
    _, url, _ = serve(procs, root, "--follow")
    context = browser.new_context()
    try:
        first, second = context.new_page(), context.new_page()
        for p, where in ((first, url), (second, url + "other.html")):
            p.goto(where)
            p.wait_for_function(HELLO_SEEN)
        first.bring_to_front()
        first.evaluate("dispatchEvent(new Event('focus'))")  # headless: no window gets the real event
        first.wait_for_timeout(200 * SCALE)  # (the focus message is on its way: nothing to wait on)
        (root / "new.html").write_text(PAGE.format(head=LOADS, title="new"))
        first.wait_for_function("location.pathname === '/new.html' && document.getElementById('title')"
                                ".textContent === 'new'")
        first.wait_for_function(HELLO_SEEN)
        assert second.evaluate("location.pathname") == "/other.html"
        assert first.evaluate("+sessionStorage.getItem('loads')") == 2  # one navigation
        second.evaluate("dispatchEvent(new Event('focus'))")
        second.wait_for_timeout(200 * SCALE)
        (root / "sub").mkdir()
        (root / "sub" / "index.html").write_text(PAGE.format(head=LOADS, title="sub"))
        second.wait_for_function("location.pathname === '/sub/'")
        first.wait_for_timeout(500 * SCALE)  # nothing more happens: no loop
        assert first.evaluate("location.pathname") == "/new.html"
        assert first.evaluate("+sessionStorage.getItem('loads')") == 2
        assert second.evaluate("+sessionStorage.getItem('loads')") == 2
    finally:
        context.close()


TALL = """<!doctype html><html><head><meta charset="utf-8"><title>tall</title></head>
<body><h1>top</h1><div style="height: 3000px">spacer</div><p id="far">{far}</p><div style="height: 3000px"></div>
</body></html>"""


@pytest.mark.parametrize("how", ["reload", "--morph"])
def test_follow_shows_the_first_element_that_changed(procs, tmp_path, page, how):
    root = site(tmp_path)
    (root / "index.html").write_text(TALL.format(far="first"))
    _, url, _ = serve(procs, root, "--follow", *(["--morph"] if how == "--morph" else []))
    page.goto(url)
    page.wait_for_function(HELLO_SEEN)
    page.wait_for_function("!!window[Symbol.for('sigreload')].marks")  # overlay.js, loaded for --follow
    page.evaluate("window.marker = 1")
    assert page.evaluate("scrollY") == 0
    (root / "index.html").write_text(TALL.format(far="second"))
    page.wait_for_function("document.getElementById('far').textContent === 'second'")
    assert page.evaluate("window.marker") == (1 if how == "--morph" else None)
    page.wait_for_function("window[Symbol.for('sigreload')].changed?.element.id === 'far'")
    assert "3px" in page.evaluate("window[Symbol.for('sigreload')].changed.outline")
    top = page.evaluate("document.getElementById('far').getBoundingClientRect().top")
    assert 0 <= top <= page.evaluate("innerHeight")  # in view
    page.wait_for_function("document.getElementById('far').style.outline === ''")  # for a moment


BUILD = """import pathlib, sys
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for page in src.glob("*.txt"):
    html = f"<!doctype html><title>{page.stem}</title><h1 id=title>{page.read_text()}</h1>"
    target = out / (page.stem + ".html")
    if not target.exists() or target.read_text() != html:
        target.write_text(html)
"""


def test_follow_with_a_build_opens_the_output_page_that_changed(procs, tmp_path, page):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    (src / "index.txt").write_text("home")
    (tmp_path / "build.py").write_text(BUILD)
    build = f"{sys.executable} {tmp_path / 'build.py'} {src} {out}"
    _, url, _ = serve(procs, src, "--exec", build, "--output", out, "--follow")
    page.goto(url)
    page.wait_for_function("document.getElementById('title')?.textContent === 'home'")
    page.wait_for_function(HELLO_SEEN)
    (src / "post.txt").write_text("a post")
    page.wait_for_function("location.pathname === '/post.html' && document.getElementById('title')"
                           ".textContent === 'a post'")


def test_the_files_a_failed_build_names_open_in_the_editor(procs, tmp_path, page):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    (src / "page.txt").write_text("good")
    build = (f"{sys.executable} -c \"import pathlib, sys; t = pathlib.Path('page.txt').read_text(); "
             f"'bad' in t and sys.exit('page.txt:3:5: bad input'); pathlib.Path('{out}/index.html').write_text("
             f"'<h1 id=title>' + t + '</h1>')\"")
    flag, record = editor_flag(tmp_path)
    _, url, _ = serve(procs, src, "--exec", build, "--output", out, flag)
    page.goto(url)
    page.wait_for_function("document.getElementById('title')?.textContent === 'good'")
    page.wait_for_function(HELLO_SEEN)
    (src / "page.txt").write_text("bad")
    page.locator("sigreload-error span.file", has_text="page.txt:3:5").click()
    until(record.exists, 5, "the editor was started")
    assert json.loads(record.read_text()) == [str(src / "page.txt"), "3", "5"]


def test_the_editor_behind_the_proxy_opens_the_app_s_file(procs, tmp_path, page):
    root = site(tmp_path)
    flag, record = editor_flag(tmp_path)
    _, url, _ = serve(procs, root, "--proxy", f"http://127.0.0.1:{stock_server(procs, root)}", flag)
    page.goto(url)
    page.wait_for_function(HELLO_SEEN)
    page.evaluate("fail()")
    page.locator("sigreload-toast .err > .at").click()
    until(record.exists, 5, "the editor was started")
    assert json.loads(record.read_text()) == [str(root / "app.js"), "2", "8"]
    own = url.rstrip("/")
    token = token_of(url)
    assert post(url, {"token": token, "path": "/app.js", "line": 1}, "http://evil.example") == 403
    assert post(url, {"token": "forged", "path": "/app.js", "line": 1}, own) == 403
    assert post(url, {"token": token, "path": "/../secret", "line": 1}, own) == 404


def test_the_broadcaster_serves_the_status_page_for_a_site_of_another_server(procs, tmp_path, browser):
    ws_port = free_port()
    root = site(tmp_path, PASTED.format(port=ws_port))
    procs(module("broadcaster") + ["--port", ws_port]).wait_for("ready on")
    context = browser.new_context()
    try:
        page, status = context.new_page(), context.new_page()
        page.goto(f"http://127.0.0.1:{stock_server(procs, root)}/")
        page.wait_for_function(HELLO_SEEN)
        status.goto(f"http://127.0.0.1:{ws_port}/status")
        status.wait_for_function(f"{STATUS_ROWS} === 1 && document.getElementById('state').textContent === 'live'")
        page.evaluate("window.marker = 1")
        status.click("#all")
        page.wait_for_function("window.marker === undefined")
        status.wait_for_function("document.getElementById('reloads').innerText.includes('reload all')")
    finally:
        context.close()
