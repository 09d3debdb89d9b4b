"""Faults a long soak found (issue 36, point 11): what pages see when
sigreload stops, reloads that are not owed, a full message folder."""

import os
import signal

from conftest import SCALE, free_port, module, open_page


def test_pages_on_the_one_port_relay_say_the_watcher_stopped_when_sigreload_stops(procs, site, page):
    """The README's promise ("The watcher stopped" within a second) through
    /_sigreload/socket on the HTTP port: the file server stopped at the same
    moment as the broadcaster and cut the pages off before its goodbye."""
    port, ws_port = free_port(), free_port()
    s = procs(module("sigreload") + [site, "--port", port, "--ws-port", ws_port])
    assert {s.wait_for(r"(serving|watching) ").group(1) for _ in range(2)} == {"serving", "watching"}
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    open_page(page, f"http://127.0.0.1:{port}/index.html")
    assert sockets == [f"ws://127.0.0.1:{port}/_sigreload/socket"]  # the relayed one
    page.evaluate("window.marker = 'kept'")
    os.kill(s.pid, signal.SIGINT)
    notice = page.locator("sigreload-notice pre")
    notice.wait_for(timeout=5000 * SCALE)
    assert notice.inner_text().startswith("The watcher stopped: saving a file no longer reloads this page")
    assert page.evaluate("window.marker") == "kept"
    assert s.exit_code(10) == 0
