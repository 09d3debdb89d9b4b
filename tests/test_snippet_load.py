"""What the snippet costs a page's load (a reload's time is the new page's load
event): it opens its socket and first looks at sessionStorage only after the
page's load; a page whose load never comes (an image that hangs) still
connects, a second after the snippet ran, and still reloads."""

import os
import signal
import socket

from conftest import HELLO_SEEN, SCALE, module

# What the page's side did, and whether the page had loaded by then (the
# bench's kind of probe: the same in every page of the context).
PROBE = """(() => {
  window.__seen = [];
  const note = (what) => window.__seen.push([what, document.readyState, Boolean(window.__loaded)]);
  addEventListener("load", () => { window.__loaded = true; });
  for (const name of ["getItem", "setItem"]) {
    const real = Storage.prototype[name];
    Storage.prototype[name] = function (...args) { note(`sessionStorage.${name}`); return real.apply(this, args); };
  }
  const Real = window.WebSocket;
  window.WebSocket = function (...args) { note("WebSocket"); return new Real(...args); };
  window.WebSocket.prototype = Real.prototype;
})();"""
CONNECTED = "() => Boolean(window[Symbol.for('sigreload')] && window[Symbol.for('sigreload')].connected)"


def serve(procs, site, ws_port):
    proc = procs(module("http_server") + [site, "--port", "0", "--inject", str(ws_port)])
    return proc.wait_for(r"at (http://\S+/)").group(1)


def test_the_socket_and_sessionstorage_wait_for_the_pages_load(procs, site, broadcaster, page):
    proc, port = broadcaster
    (site / "p.html").write_text('<!doctype html><html><head><title>t</title></head><body><h1 id="t">one</h1>'
                                 '<img src="missing.png"></body></html>')
    page.context.add_init_script(PROBE)
    url = serve(procs, site, port) + "p.html"
    for _ in range(2):  # a first visit, then a reload sigreload caused (state kept, a hello to replay)
        page.goto(url)
        page.wait_for_function(HELLO_SEEN)
        seen = page.evaluate("window.__seen")
        assert seen and all(loaded for _, _, loaded in seen), seen
        assert any(what == "WebSocket" for what, _, _ in seen), seen
        with page.expect_event("load", timeout=10_000 * SCALE):
            os.kill(proc.pid, signal.SIGUSR1)
        page.wait_for_function(HELLO_SEEN)
        seen = page.evaluate("window.__seen")
        assert all(loaded for _, _, loaded in seen), seen


def test_a_page_whose_load_never_comes_still_connects_and_reloads(procs, site, broadcaster, page):
    proc, port = broadcaster
    hang = socket.create_server(("127.0.0.1", 0))  # accepts (the backlog), never answers: the image hangs
    try:
        (site / "h.html").write_text('<!doctype html><html><head><title>t</title></head><body><h1 id="t">one</h1>'
                                     f'<img src="http://127.0.0.1:{hang.getsockname()[1]}/x.png"></body></html>')
        page.goto(serve(procs, site, port) + "h.html", wait_until="domcontentloaded")
        page.wait_for_function(CONNECTED)
        assert page.evaluate("document.readyState") != "complete"
        (site / "h.html").write_text((site / "h.html").read_text().replace("one", "two"))
        with page.expect_event("domcontentloaded", timeout=10_000 * SCALE):
            os.kill(proc.pid, signal.SIGUSR1)
        page.wait_for_function("document.getElementById('t') && document.getElementById('t').textContent === 'two'")
    finally:
        hang.close()
