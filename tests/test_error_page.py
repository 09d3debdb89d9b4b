"""The pasted snippet shows an app's 5xx answer over the page (its error page
carries no snippet): as text unless the answer says text/html, and then in a
sandboxed frame without scripts. An error that reflects a query never runs
in the app's origin. In Chromium, against a real app server (a thread here)."""

import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import open_page

REFLECTED = ("<script>parent.ran = 'script'; parent.postMessage('ran', '*')</script>"
             "<img src=x onerror=\"parent.ran = 'img'; parent.postMessage('ran', '*')\">")
LISTEN = "addEventListener('message', (e) => { if (e.data === 'ran') window.ran = 'message'; });"


class App(BaseHTTPRequestHandler):
    """A page with the pasted line, until ``broken``: then a 500 that reflects the query."""

    ws_port = 0
    broken: str | None = None  # the error's Content-Type

    def do_GET(self):
        if self.broken:
            body = f"Internal error: no such item {REFLECTED}".encode()
            self.send_response(500)
            self.send_header("Content-Type", self.broken)
            self.send_header("X-Content-Type-Options", "nosniff")
        else:
            body = (f"<!doctype html><html><head><title>app</title><script>{LISTEN}</script></head><body>"
                    f"<h1>app</h1><script src=\"http://127.0.0.1:{self.ws_port}/reload.js\"></script>"
                    "</body></html>").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def app(broadcaster):
    handler = type("Handler", (App,), {"ws_port": broadcaster[1]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}/?q=x"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("ctype", ["text/plain; charset=utf-8", "application/json", "text/html; charset=utf-8"])
def test_a_5xx_that_reflects_a_script_runs_nothing(broadcaster, app, page, ctype):
    handler, url = app
    open_page(page, url)
    handler.broken = ctype
    os.kill(broadcaster[0].pid, signal.SIGUSR1)
    page.wait_for_selector("sigreload-error", state="attached")
    shown = page.evaluate("""(() => {
      const fill = document.querySelector("sigreload-error").shadowRoot.lastElementChild;
      return { tag: fill.localName, sandbox: fill.getAttribute("sandbox"), text: fill.textContent };
    })()""")
    if ctype.startswith("text/html"):
        assert shown["tag"] == "iframe" and shown["sandbox"] == ""
        frame = page.frame_locator("sigreload-error iframe").locator("body")
        frame.get_by_text("no such item").wait_for()
    else:
        assert shown["tag"] == "pre" and "no such item <script>" in shown["text"]
    page.wait_for_timeout(500)  # what the reflected markup would do, done by now
    assert page.evaluate("window.ran") is None
    assert page.title() == "app"
