"""A pasted snippet whose page's server is down asks it again less often: each
failed request is a line in the browser's console (it was ten a second), and
it says so once; the page still reloads once the server is back."""

import os
import signal
import sys
import time

from conftest import SCALE, free_port, open_page

PAGE = ('<!doctype html><html><head><meta charset="utf-8"><title>t</title></head><body><h1 id="t">{text}</h1>'
        '<script src="http://127.0.0.1:{port}/reload.js"></script></body></html>')
SLOWER = "does not answer: asking again less often"


def stock(procs, root, port):
    server = procs([sys.executable, "-u", "-m", "http.server", port, "--bind", "127.0.0.1"], cwd=root)
    server.wait_for("Serving HTTP")
    return server


def test_a_server_that_is_down_is_asked_less_often_and_said_once(procs, tmp_path, broadcaster, page):
    proc, ws_port = broadcaster
    (tmp_path / "index.html").write_text(PAGE.format(text="one", port=ws_port))
    port = free_port()
    server = stock(procs, tmp_path, port)
    lines = []
    page.on("console", lambda m: lines.append((time.monotonic(), m.text)))
    open_page(page, f"http://127.0.0.1:{port}/")
    server.kill()
    os.kill(proc.pid, signal.SIGUSR1)  # a reload, with the page's server down: asked until it answers
    # (Playwright's sync API hands over console events only while it is called)
    page.wait_for_event("console", predicate=lambda m: SLOWER in m.text, timeout=20_000 * SCALE)
    said = next(at for at, text in lines if SLOWER in text)
    page.wait_for_timeout(3000)  # the window counted (3 s: 250, 500, 1000 ms and 2 s apart: 4 tries)
    assert any("ERR_CONNECTION_REFUSED" in text for at, text in lines if at <= said)  # what is counted: seen
    failed = [text for at, text in lines if said < at < said + 3 and "ERR_CONNECTION_REFUSED" in text]
    assert len(failed) <= 8, f"{len(failed)} failed requests in 3 s (every 100 ms: 30)"
    assert sum(SLOWER in text for _, text in lines) == 1
    (tmp_path / "index.html").write_text(PAGE.format(text="two", port=ws_port))
    with page.expect_event("load", timeout=20_000 * SCALE):  # back: asked within 5 s
        stock(procs, tmp_path, port)
    assert page.locator("#t").inner_text() == "two"
