"""sigreload --proxy in front of a real app (uvicorn, tests/proxy_app.py), in Chromium.

What passes through untouched (method, body, headers, cookies, status, the
app's WebSockets), what the proxy changes (the snippet in every HTML answer,
decoded, streamed, with the right length and the CSP nonce; redirects to
itself), what it refuses (anything but its app, foreign Host headers), and
what it says while the app is down.
"""

import os
import signal
import socket
import sys
import urllib.request

import pytest

from conftest import HELLO_SEEN, ROOT, SCALE, free_port, module, open_page
from sigreload.serving import snippet

SNIPPET_TAG = snippet.tag("/_sigreload/reload.js").decode().removesuffix("></script>")  # its URL versioned


class Proxied:
    """uvicorn serving tests/proxy_app.py, and sigreload --proxy in front of it."""

    def __init__(self, procs, tmp_path, app_port=None, start_app=True):
        self.procs, self.app_port = procs, app_port or free_port()
        self.ws_port = free_port()
        if start_app:
            self.start_app()
        self.sigreload = procs(module("sigreload") + [tmp_path, "--proxy", f"http://127.0.0.1:{self.app_port}",
                                                     "--port", free_port(), "--ws-port", self.ws_port])
        self.url = self.sigreload.wait_seen(r"proxying \S+ at (http://\S+/)").group(1)
        self.broadcaster = int(self.sigreload.wait_seen(r"ready on \S+ \(pid (\d+)\)").group(1))
        self.sigreload.wait_seen("watching")

    def start_app(self):
        self.app = self.procs([sys.executable, "-u", "-m", "uvicorn", "proxy_app:app", "--app-dir", ROOT / "tests",
                               "--host", "127.0.0.1", "--port", self.app_port, "--lifespan", "off"],
                              env={**os.environ, "APP_PORT": str(self.app_port)})
        self.app.wait_for("Uvicorn running on")


@pytest.fixture
def proxied(procs, tmp_path):
    return Proxied(procs, tmp_path)


def get(url, **kwargs):
    """(status, headers, body bytes) of a plain request, errors included."""
    request = urllib.request.Request(url, **kwargs)
    try:
        with urllib.request.urlopen(request, timeout=10 * SCALE) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def out(page):
    return page.locator("#out").inner_text()


@pytest.mark.parametrize("path, text", [("", "home"), ("gzip", "gzip"), ("deflate", "deflate"),
                                        ("stream", "streamed"), ("unicode", "Grüße, 世界"),
                                        ("error", "Internal Server Error")])
def test_every_html_answer_gets_the_snippet_and_live_reload(proxied, page, path, text):
    open_page(page, proxied.url + path)  # waits for the snippet's hello
    assert out(page) == text
    assert page.locator("#ae").inner_text() == "identity"  # the app was asked not to compress
    with page.expect_event("load"):
        os.kill(proxied.broadcaster, signal.SIGUSR1)
    page.wait_for_function(HELLO_SEEN)


def test_bodies_are_decoded_and_lengths_counted_in_bytes(proxied):
    for path in ("gzip", "deflate", "unicode", ""):
        status, headers, body = get(proxied.url + path)
        assert status == 200 and headers["Content-Encoding"] is None
        assert int(headers["Content-Length"]) == len(body)
        assert body.count(SNIPPET_TAG.encode()) == 1 and body.rstrip().endswith(b"</body></html>")
    status, headers, body = get(proxied.url + "stream")
    assert headers["Transfer-Encoding"] == "chunked" and headers["Content-Length"] is None
    assert body.startswith(b"<!doctype html><html><head>" + SNIPPET_TAG.encode() + b"></script><title>s</title>")
    assert body.endswith(b"</p></body><!-- after --></html>")  # the <head> tag came in two pieces


def test_a_redirect_to_the_app_comes_back_to_the_proxy(proxied, page):
    page.goto(proxied.url + "redirect")
    assert page.url == proxied.url + "landed"
    assert out(page) == "home"


def test_cookies_pass_both_ways(proxied, page):
    page.goto(proxied.url + "cookie")
    page.goto(proxied.url + "whoami")
    assert sorted(out(page).split("; ")) == ["flavor=oat", "size=big"]  # Domain=127.0.0.1 dropped, kept


def test_a_post_form_reaches_the_app_with_its_body(proxied, page):
    page.goto(proxied.url + "form")
    with page.expect_navigation():
        page.click("#go")
    assert out(page) == "got name=ada"
    page.wait_for_function(HELLO_SEEN)


def test_the_apps_own_websocket_passes_through(proxied, page):
    open_page(page, proxied.url)
    echoed = page.evaluate("""() => new Promise((done, fail) => {
        const ws = new WebSocket(`ws://${location.host}/ws`);
        ws.onopen = () => ws.send('hi');
        ws.onmessage = (e) => done(e.data);
        ws.onerror = () => fail('no socket');
    })""")
    assert echoed == "echo: hi"


def test_a_page_whose_csp_allows_scripts_by_nonce_runs_the_snippet(proxied, page):
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    open_page(page, proxied.url + "csp")
    assert page.evaluate("window.appRan") is True
    with page.expect_event("load"):
        os.kill(proxied.broadcaster, signal.SIGUSR1)
    assert violations == []


def raw(url, request):
    """The status line a raw request to ``url``'s host and port gets."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=5 * SCALE) as s:
        s.sendall(request.encode())
        return s.makefile("rb").readline().decode()


def test_never_an_open_proxy_and_only_loopback_names(proxied):
    assert " 400 " in raw(proxied.url, "GET http://example.com/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert " 400 " in raw(proxied.url, "CONNECT example.com:443 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert " 403 " in raw(proxied.url, "GET / HTTP/1.1\r\nHost: attacker.example\r\n\r\n")
    assert " 200 " in raw(proxied.url, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")


def test_a_proxy_to_an_address_off_this_machine_is_refused(tmp_path):
    from conftest import cli

    done = cli("sigreload", tmp_path, "--proxy", "http://10.1.2.3:5000")
    assert done.returncode != 0 and "not a loopback address" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.portable_too
def test_while_the_app_is_down_a_page_says_so_and_comes_back_by_itself(procs, tmp_path, page):
    proxied = Proxied(procs, tmp_path, start_app=False)
    status, headers, body = get(proxied.url)
    assert status == 502 and headers["X-Sigreload-Down"] == "1" and SNIPPET_TAG.encode() in body
    page.goto(proxied.url)
    assert "Your app is starting" in page.content()  # it never answered yet: said at once
    with page.expect_event("load", timeout=30_000 * SCALE):
        proxied.start_app()
    assert out(page) == "home"
