"""An open tab, once sigreload stopped: another local user who listens on the
freed port (or a sigreload of another folder) gets nothing from it: the tab
never reloads into their page, tells them nothing, and its typed state is
never kept for them. Passwords are never kept at all. In Chromium, with a
second Unix user made here (trust*: CI runs as root) and removed after."""

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys

import pytest

from apps import fetch
from conftest import SCALE, free_port, module, open_page, until

USER = "trustsquat"
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")  # the other user cannot read our venv
# Run as the other user on the freed HTTP port: every page is theirs, and its
# socket (/_sigreload/socket) says hello as a new sigreload would, proves
# what it can (nothing), and asks the tab to reload.
SQUATTER = r'''
import asyncio, base64, hashlib, json, os, socket, sys
EVIL = b"<!doctype html><title>theirs</title><h1 id=theirs>their page</h1>"
def frame(text):
    data = text.encode()
    head = bytes([0x81, len(data)]) if len(data) < 126 else bytes([0x81, 126]) + len(data).to_bytes(2, "big")
    return head + data
async def serve(reader, writer):
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    if "/_sigreload/socket" not in head.split("\r\n")[0]:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(EVIL) + EVIL)
        print("served their page", flush=True)
        await writer.drain(); writer.close(); return
    key = [l.split(":", 1)[1].strip() for l in head.split("\r\n") if l.lower().startswith("sec-websocket-key")][0]
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    writer.write(frame(json.dumps({"type": "hello", "boot": "squatter", "generation": 99, "root": None})))
    writer.write(frame(json.dumps({"type": "proof", "proof": "0" * 64})))
    writer.write(frame(json.dumps({"type": "reload", "boot": "squatter", "generation": 100})))
    await writer.drain()
    print("said hello", flush=True)
    while True:
        first = await reader.read(2)
        if len(first) < 2:
            return
        n = first[1] & 0x7F
        n = int.from_bytes(await reader.readexactly(2 if n == 126 else 8), "big") if n >= 126 else n
        mask = await reader.readexactly(4)
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(await reader.readexactly(n)))
        print("got", data.decode(errors="replace"), flush=True)
async def main():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
    server = await asyncio.start_server(serve, sock=s)
    print("listening", flush=True)
    await server.serve_forever()
asyncio.run(main())
'''
FORM = """<!doctype html><html><head><meta charset="utf-8"><title>ours</title></head><body>
<h1 id="ours">our page</h1>
<input id="name"><input id="shown" type="password"><input id="pw2" autocomplete="new-password">
<input id="code" name="login" autocomplete="section-a current-password">
</body></html>"""
TYPE = """(() => {
  for (const [id, v] of [["name", "Ada"], ["shown", "hunter2"], ["pw2", "s3cret!"], ["code", "letmein"]]) {
    document.getElementById(id).value = v;
  }
  document.getElementById("shown").type = "text";  // a "show password" button
})()"""
VALUES = "(() => ['name', 'shown', 'pw2', 'code'].map((id) => document.getElementById(id).value))()"


@pytest.fixture
def squatter_user():
    """A second Unix user, made for this test and removed after it (even on failure)."""
    if os.geteuid() != 0:
        pytest.skip("making a second user needs root (CI runs as root)")
    subprocess.run(["userdel", "-r", USER], capture_output=True)  # a leftover of a killed run
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
                   check=True, capture_output=True)
    try:
        yield pwd.getpwnam(USER)
    finally:  # after the test's processes ended (ask for this fixture first): a user with one is kept
        gone = subprocess.run(["userdel", "-r", USER], capture_output=True, text=True)
        if USER in {p.pw_name for p in pwd.getpwall()}:
            pytest.fail(f"could not remove the user {USER}: {gone.stderr}")


def as_user(user, *argv):
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *argv]


def start(procs, root, web, ws, state, cwd=None):
    proc = procs(module("sigreload") + [root, "--port", web, "--ws-port", ws],
                 env={**os.environ, "XDG_STATE_HOME": str(state)}, cwd=cwd or root)
    proc.wait_stack()  # (before, not the watcher's line: an edit before its first look was no change)
    proc.wait_seen(r"ready on ws://")
    return proc


def stop(proc):
    os.kill(proc.pid, signal.SIGINT)
    assert proc.exit_code(10 * SCALE) == 0


FOREIGN = "not the sigreload this page came from"


def heard(page, said, text, seconds=20):
    """Wait until the page said ``text`` in its console (Playwright delivers
    console events while it is called: a wait in the page, not a sleep)."""
    for _ in range(int(seconds * SCALE * 10)):
        if any(text in line for line in said):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"the page never said {text!r}; it said {said}")


def typed_and_stored(page):
    """What the tab typed, and whether any of it is in its sessionStorage."""
    values = page.evaluate(VALUES)
    stored = page.evaluate("sessionStorage.getItem('sigreload') || ''")
    return values, [v for v in ("Ada", "hunter2", "s3cret!", "letmein") if v in stored]


def test_a_squatter_on_the_freed_port_gets_nothing_and_the_tab_stays(squatter_user, procs, tmp_path, page):
    # squatter_user first: made before, removed after its processes are ended (procs)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text(FORM)
    web, ws = free_port(), free_port()
    said = []
    page.on("console", lambda m: said.append(m.text))
    loads = []
    page.on("load", lambda: loads.append(page.url))
    ours = start(procs, tmp_path / "site", web, ws, tmp_path / "state")
    open_page(page, f"http://127.0.0.1:{web}/")
    page.evaluate(TYPE)
    stop(ours)
    theirs = procs(as_user(squatter_user, SYSTEM_PYTHON, "-c", SQUATTER, web))
    theirs.wait_for("listening")
    theirs.wait_for("said hello", 20)  # the tab came to them (its reconnect: 5 s at most)
    heard(page, said, FOREIGN)
    page.wait_for_timeout(1000)  # a reload would have begun by now: the old snippet's came at once
    assert loads == [f"http://127.0.0.1:{web}/"] and page.locator("#ours").count() == 1
    assert not [line for line in theirs.seen if "\"type\"" in line and "challenge" not in line], theirs.seen
    assert "served their page" not in theirs.seen
    values, stored = typed_and_stored(page)
    assert values == ["Ada", "hunter2", "s3cret!", "letmein"] and stored == []


def test_a_reload_keeps_typed_text_for_the_same_sigreload_never_passwords(procs, tmp_path, page):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text(FORM)
    web, ws = free_port(), free_port()
    start(procs, tmp_path / "site", web, ws, tmp_path / "state")
    open_page(page, f"http://127.0.0.1:{web}/")
    page.evaluate(TYPE)
    with page.expect_event("load", timeout=10_000 * SCALE):
        (tmp_path / "site" / "index.html").write_text(FORM.replace("our page", "our page, edited"))
    page.wait_for_function("() => document.getElementById('name').value === 'Ada'")
    assert page.evaluate(VALUES) == ["Ada", "", "", ""]
    assert json.loads(page.evaluate("sessionStorage.getItem('sigreload')"))["trust"]["proof"]


def test_a_sigreload_of_another_folder_on_the_same_ports_is_a_stranger(procs, tmp_path, page):
    """The same user, another project on the ports: the tab neither reloads
    into it nor gives it typed state; the same folder again is trusted."""
    for name in ("site", "other"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "index.html").write_text(FORM.replace("our page", name))
    web, ws = free_port(), free_port()
    said = []
    page.on("console", lambda m: said.append(m.text))
    first = start(procs, tmp_path / "site", web, ws, tmp_path / "state")
    open_page(page, f"http://127.0.0.1:{web}/")
    page.evaluate(TYPE)
    stop(first)
    other = start(procs, tmp_path / "other", web, ws, tmp_path / "state")
    heard(page, said, FOREIGN)
    page.wait_for_timeout(500)
    assert page.locator("h1").inner_text() == "site"
    stop(other)
    with page.expect_event("load", timeout=15_000 * SCALE):  # "missed while disconnected", into its own
        start(procs, tmp_path / "site", web, ws, tmp_path / "state")  # the same folder again: trusted
    page.wait_for_function("() => window[Symbol.for('sigreload')].connected")
    assert page.locator("h1").inner_text() == "site"


def test_the_same_folder_served_from_another_folder_is_the_same_sigreload(procs, tmp_path, page):
    """``sigreload site`` then ``cd site; sigreload``: the tab trusts it (r36n4:
    its key was the folder run from, and the tab said the watcher had stopped)."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text(FORM)
    web, ws = free_port(), free_port()
    first = start(procs, "site", web, ws, tmp_path / "state", cwd=tmp_path)
    open_page(page, f"http://127.0.0.1:{web}/")
    page.evaluate(TYPE)
    stop(first)
    with page.expect_event("load", timeout=15_000 * SCALE):  # "missed while disconnected": trusted
        start(procs, ".", web, ws, tmp_path / "state", cwd=tmp_path / "site")
    page.wait_for_function("() => window[Symbol.for('sigreload')].connected")
    with page.expect_event("load", timeout=10_000 * SCALE):
        (tmp_path / "site" / "index.html").write_text(FORM.replace("our page", "our page, edited"))
    page.wait_for_function("() => document.getElementById('name').value === 'Ada'")


SCRIPT_SQUATTER = r'''
import http.server, sys
class Theirs(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print("asked", self.path, flush=True)
        body = b"document.title = 'theirs';"
        self.send_response(200)
        self.send_header("Content-Type", "text/javascript")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Theirs)
print("listening", flush=True)
server.serve_forever()
'''
OWN_PAGE = ("<!doctype html><html><head><title>ours</title><script src='http://127.0.0.1:{ws}/reload.js'></script>"
            "</head><body><button id='broken' onclick='notDefinedAnywhere()'>go</button></body></html>")


def test_a_server_on_the_freed_port_never_runs_a_script_in_the_page(procs, tmp_path, page):
    """A pasted snippet (or the middleware's) loads the toast's script from the
    broadcaster's address when the page first errs: once sigreload stopped,
    from whatever listened there then, into the page's origin (r33a4: the
    page's title became the other user's)."""
    ws = free_port()
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text(OWN_PAGE.format(ws=ws))
    web = free_port()
    procs([sys.executable, "-m", "http.server", web, "--bind", "127.0.0.1"], cwd=tmp_path / "site")
    until(lambda: fetch(f"http://127.0.0.1:{web}/") is not None, 10, "the page's own server answers")
    broadcaster = procs(module("broadcaster") + ["--port", ws])
    broadcaster.wait_for("ready on")
    open_page(page, f"http://127.0.0.1:{web}/")
    broadcaster.kill()
    theirs = procs([sys.executable, "-c", SCRIPT_SQUATTER, ws])
    theirs.wait_for("listening")
    page.click("#broken")  # the page's first error: the toast would load now
    page.wait_for_timeout(1000)  # the script would have come and run by now
    assert page.title() == "ours" and "overlay" not in theirs.output(), theirs.output()
