"""The page tells you (issue 35): a runtime error shows as a toast on the
page, its file:line opens the editor, and more. Real processes, real
browsers (the toast in Chromium, Firefox and WebKit).
"""

import json
import re
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


RECORDER = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"


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
    page.locator("sigreload-toast .err > .at").click()
    until(record.exists, 5, "the editor was started")
    assert json.loads(record.read_text()) == [str(root / "app.js"), "2", "8"]
    assert page.evaluate(f"!!{TOAST}")  # the link opens, it does not close


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
    with urllib.request.urlopen(url, timeout=5 * SCALE) as answer:
        token = re.search(r'data-token="([^"]+)"', answer.read().decode()).group(1)
    own = url.rstrip("/")
    good = {"token": token, "path": "/app.js", "line": 2, "column": 8}
    assert post(url, good, "http://evil.example") == 403
    assert post(url, good, "http://localhost:1") == 403  # another loopback origin is another origin too
    assert post(url, {**good, "token": token[:-2] + "xx"}, own) == 403
    assert post(url, {**good, "token": ""}, own) == 403
    for outside in ("/../secret.txt", "/%2e%2e/secret.txt", "/link.txt", "/../../../../etc/passwd"):
        assert post(url, {**good, "path": outside}, own) == 404, outside
    assert not record.exists()
    assert post(url, good, own) == 204
    until(record.exists, 5, "the editor was started")
    assert json.loads(record.read_text())[:2] == [str(root / "app.js"), "2"]
