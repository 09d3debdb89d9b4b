"""A few hundred slow or idle sockets cost the developer nothing (issue 36, 3):
each request's head has a deadline no trickled byte puts off, a full server
lets go of the connection idle longest, the broadcaster reads a handshake only
once its head is whole, one LAN device holds at most so many sockets, and a
full file table is one line a second. The figures are the benchmark's
(bench/attacks.py); these tests check behaviour."""

import asyncio
import logging
import os
import signal
import socket
import threading
import time

import psutil
import pytest
from test_hardening import limit_fds

from conftest import SCALE, deadline, free_port, module, run_async, until, write


class Tricklers:
    """``count`` connections to ``port`` that each send ``first``, then one more
    byte every ``every`` seconds, until stopped (or ``most`` seconds)."""

    def __init__(self, port, count, first=b"G", every=2.0, most=60.0, host="127.0.0.1"):
        self.socks = []
        for _ in range(count):
            s = socket.create_connection((host, port), timeout=5 * SCALE)
            s.sendall(first)
            self.socks.append(s)
        self.every, self.stop, self.closed = every, threading.Event(), 0
        self.end = time.monotonic() + most
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while not self.stop.wait(self.every) and time.monotonic() < self.end:
            for s in self.socks:
                try:
                    s.send(b"E")
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        for s in self.socks:
            s.close()


def get(port, host="127.0.0.1", timeout=5):
    """The status line of GET / on a new connection."""
    with socket.create_connection((host, port), timeout=timeout * SCALE) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        return s.recv(4096).split(b"\r\n")[0]


@pytest.fixture
def files(procs, tmp_path):
    def start(*flags):
        write(tmp_path / "index.html", "<!doctype html><title>mine</title><h1>mine</h1>")
        port = free_port()
        procs(module("http_server") + [tmp_path, "--port", port, *flags]).wait_for("serving")
        return port

    return start


def test_the_file_server_serves_the_developer_while_140_connections_trickle_their_heads(files):
    """Each trickler sends a byte every 2 s (well within the idle timeout): they
    held every thread for good; now a new connection lets the one idle longest go."""
    port = files()
    attack = Tricklers(port, 140)
    try:
        for _ in range(10):
            assert get(port) == b"HTTP/1.1 200 OK"
    finally:
        attack.close()


def test_the_file_server_serves_the_developer_while_140_downloads_are_never_read(files, tmp_path):
    """Each holds a thread in a write its client never takes: a full server lets
    go of the one that waited longest (it waited the idle timeout: 60 s here)."""
    port = files("--idle-timeout", "60")
    (tmp_path / "big.bin").write_bytes(bytes(8 << 20))
    stalled = []
    try:
        for _ in range(140):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", port))
            s.sendall(f"GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            stalled.append(s)
        for _ in range(5):
            assert get(port) == b"HTTP/1.1 200 OK"
    finally:
        for s in stalled:
            s.close()


def test_a_head_trickled_a_byte_at_a_time_is_cut_at_its_deadline(files):
    port = files("--idle-timeout", "2")
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(b"GET / HTTP/1.1\r\n")
        end = deadline(8)
        closed = False
        while not closed and time.monotonic() < end:
            try:
                closed = s.recv(4096) == b"" or closed
            except TimeoutError:
                pass
            except ConnectionError:
                closed = True
            try:
                s.send(b"X")  # one byte a second: each within the idle timeout
            except OSError:
                closed = True
        assert closed, "a head that never ends kept its connection past its deadline"


@pytest.fixture
def ws_server(procs):
    def start(*flags, **kwargs):
        port = free_port()
        procs(module("broadcaster") + ["--port", port, *flags], **kwargs).wait_for("ready")
        return port

    return start


def opens(port, host="127.0.0.1", origin="http://127.0.0.1:8000", seconds=5):
    """Whether a page's socket opens (and gets its hello) within ``seconds``."""
    from websockets.sync.client import connect

    try:
        with connect(f"ws://{host}:{port}/sigreload", origin=origin, open_timeout=seconds * SCALE) as ws:
            return '"hello"' in ws.recv(timeout=seconds * SCALE)
    except (OSError, TimeoutError, Exception) as exc:  # noqa: BLE001  # refused, reset, timed out: not open
        return repr(exc)


def test_idle_and_trickling_sockets_keep_no_page_out_of_the_broadcaster(ws_server):
    """They held the handshake turns (32 at once) until their 10 s deadline:
    pages queued behind 200 of them (2 opened, 5 failed in 50 s)."""
    port = ws_server()
    idle = Tricklers(port, 200, first=b"", every=30)
    slow = Tricklers(port, 50, first=b"G", every=1)
    try:
        for _ in range(5):
            assert opens(port) is True
    finally:
        idle.close()
        slow.close()


def test_one_lan_device_holds_at_most_so_many_sockets_and_pages_still_open(ws_server):
    from sigreload import command_line
    from sigreload.serving import limits

    here = command_line.lan_addresses()[0]
    if "(" in here:
        pytest.skip("no LAN address on this machine")
    port = ws_server("--lan")

    async def crowd():
        from websockets.asyncio.client import connect

        opened, refused = [], 0
        for _ in range(limits.PER_ADDRESS + 20):
            try:
                opened.append(await connect(f"ws://{here}:{port}/",
                                            origin=f"http://{here}:8000", open_timeout=5 * SCALE))
            except (OSError, asyncio.TimeoutError, Exception):  # noqa: BLE001
                refused += 1
        assert await asyncio.to_thread(opens, port) is True  # a page of this machine still gets in
        for ws in opened:
            await ws.close()
        return len(opened), refused

    opened, refused = run_async(crowd())  # Playwright owns the main thread's loop after a browser test
    assert opened == limits.PER_ADDRESS and refused == 20


def test_a_full_file_table_is_one_line_a_second_not_a_traceback_per_accept(ws_server, procs):
    port = free_port()
    b = procs(module("broadcaster") + ["--port", port], preexec_fn=limit_fds(64))
    b.wait_for("ready")
    socks = []
    try:
        for _ in range(300):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=1))
            except OSError:
                break
        # Let in once those idle longest went: behind up to 300 queued in the kernel, which asyncio
        # accepts 16 a pass per address, each pass that finds the table full waiting a second (asyncio's)
        assert opens(port, seconds=20) is True
    finally:
        for s in socks:
            s.close()
    assert "Traceback" not in b.output()


def test_a_full_file_table_said_once_a_second(caplog):
    from sigreload.serving import limits

    now = [0.0]
    loop = asyncio.new_event_loop()
    try:
        full = []
        limits.quiet_accept_errors(loop, lambda: full.append(1), clock=lambda: now[0])
        with caplog.at_level(logging.WARNING, logger="sigreload.limits"):
            for i in range(1000):  # 1000 failed accepts in 10 s
                now[0] = i / 100
                loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                             "exception": OSError(24, "Too many open files")})
    finally:
        loop.close()
    lines = [r for r in caplog.records if r.name == "sigreload.limits"]
    assert len(lines) == 10 and "Too many open files" in lines[0].getMessage()
    assert len(full) == 1000  # each time, the connections idle longest are let go


def test_a_crowd_lets_go_of_the_connection_idle_longest_and_never_of_one_answered():
    from sigreload.serving.limits import Crowd

    crowd = Crowd(most=3, per_address=2)
    assert crowd.join("a", "127.0.0.1") == [] and crowd.join("b", "127.0.0.1") == []
    crowd.busy("a")
    assert crowd.join("c", "127.0.0.1") == []
    assert crowd.join("d", "127.0.0.1") == ["b"]  # a is being answered
    crowd.busy("c")
    crowd.busy("d")
    assert crowd.join("e", "127.0.0.1") is None  # everyone answered: wait
    crowd.rest("a")
    assert crowd.join("e", "127.0.0.1") == ["a"]
    crowd.leave("c")
    crowd.leave("c")  # idempotent
    assert len(crowd) == 2
    assert crowd.join("p1", "192.0.2.7") == [] and crowd.join("p2", "192.0.2.7") == ["e"]  # full: idle e goes
    crowd.busy("p1")
    crowd.busy("p2")
    crowd.leave("d")
    assert crowd.join("p3", "192.0.2.7") is None  # its device's two are answered
    assert crowd.join("x", "10.0.0.9") == []
    crowd.busy("x")
    crowd.writing("p1", True)  # its client takes nothing
    crowd.writing("p2", True)
    crowd.writing("p2", False)  # taken
    assert crowd.join("y", "127.0.0.1") == ["p1"]  # no one idle: the write that waited longest
    assert crowd.longest_idle(5) == ["y"] and len(crowd) == 2


# --- The proxy ------------------------------------------------------------------------------------------


@pytest.fixture
def proxy(procs):
    """proxy(*flags, **popen) -> port: sigreload's proxy before a raw upstream that answers /42
    (test_proxy_field) and /big (a download of BIG bytes); ``proxy.proc`` is the last one started."""
    from test_proxy_field import Upstream, pages

    made = []

    def answer(head, body, conn):
        if head.startswith(b"GET /big "):
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         f"Content-Length: {len(BIG)}\r\n\r\n".encode())
            conn.sendall(BIG)  # one shared buffer: the test's own memory stays small
            return None
        return pages(head, body, conn)

    def start(*flags, **kwargs):
        upstream = Upstream(answer)
        made.append(upstream)
        port = free_port()
        start.proc = procs(module("http_server") + ["--proxy", f"http://127.0.0.1:{upstream.port}", "--port", port,
                                                    "--inject", free_port(), *flags], **kwargs)
        start.proc.wait_for("proxying")
        return port

    yield start
    for upstream in made:
        upstream.close()


BIG = b"x" * (20 << 20)


def get_42(port, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout * SCALE) as s:
        s.sendall(f"GET /42 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        return s.recv(4096).split(b"\r\n")[0]


def test_the_proxy_answers_while_300_posts_never_send_their_body_and_cuts_them(proxy):
    """They held every connection to the app (256): every request hung."""
    port = proxy("--idle-timeout", "3")
    stalled = Tricklers(port, 300, first=f"POST /form HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 100"
                        "\r\n\r\n".encode(), every=1, most=30)
    try:
        for _ in range(5):
            assert get_42(port) == b"HTTP/1.1 200 OK"
        cut = stalled.socks[0]  # a byte a second: its deadline moves on by 1/16384 s for each
        cut.settimeout(20 * SCALE)
        try:
            answer = cut.recv(4096)
        except ConnectionError:
            answer = b""
        assert answer == b"", answer
    finally:
        stalled.close()


def test_the_proxy_answers_while_600_posts_trickle_their_bodies_with_the_default_timeout(proxy):
    """Each POST sends a byte a second of the 100,000 it promised: the app
    held a connection (and a thread, as a WSGI server does) for each until
    its deadline, 15 s; now the app sees a request only once its body came."""
    port = proxy()
    stalled = Tricklers(port, 600, first=f"POST /form HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                        "Content-Length: 100000\r\n\r\nx".encode(), every=1, most=30)
    try:
        for _ in range(8):
            assert get_42(port) == b"HTTP/1.1 200 OK"
    finally:
        stalled.close()


def test_unread_downloads_are_paused_with_small_buffers_and_their_memory_given_back(proxy):
    """300 downloads of 20 MB that their clients never read: the proxy read on
    from the app into its buffers (1.4 MB each, 884 MB for 600) and kept it.
    Now it reads only as fast as each client takes, and gives memory back."""
    port = proxy()
    process = psutil.Process(proxy.proc.pid)
    before = process.memory_info().rss
    downloads = []
    try:
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", port), timeout=5 * SCALE)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(f"GET /big HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            downloads.append(s)
        for _ in range(8):
            assert get_42(port) == b"HTTP/1.1 200 OK"
        during = process.memory_info().rss
    finally:
        for s in downloads:
            s.close()
    print(f"\n300 unread downloads: proxy RSS {before / 2**20:.0f} -> {during / 2**20:.0f} MB")
    assert during - before < 300 * (400 << 10), "more than 400 KB held for each paused download"
    until(lambda: process.memory_info().rss - before < 30 << 20, 10, "the paused downloads' memory given back")


def test_the_proxy_answers_while_3000_sockets_sit_idle_with_1024_open_files(proxy):
    port = proxy("--idle-timeout", "120", preexec_fn=limit_fds(1024))
    idle = []
    try:
        for _ in range(3000):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            idle.append(s)
        for _ in range(5):
            assert get_42(port, timeout=10) == b"HTTP/1.1 200 OK"
    finally:
        for s in idle:
            s.close()


PING = bytes([0x89, 0x80 | 125]) + b"\0\0\0\0" + b"p" * 125  # a masked ping (mask 0: the payload as is)


def test_sockets_that_never_read_their_pongs_keep_no_page_from_its_broadcasts(procs, tmp_path):
    """The reviewer r36a: one thread relays every page's socket, and it waited up to
    5 s on each socket that took nothing (pings sent, pongs never read): 20 such
    sockets kept broadcasts from every page and new sockets from opening."""
    from websockets.sync.client import connect

    (tmp_path / "index.html").write_text("<h1>mine</h1>")
    port, ws = free_port(), free_port()
    stack = procs(module("sigreload") + [tmp_path, "--port", port, "--ws-port", ws])
    broadcaster = int(stack.wait_seen(r"ready on \S+ \(pid (\d+)\)").group(1))
    stack.wait_stack()
    deaf = []
    for _ in range(20):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.connect(("127.0.0.1", int(port)))
        sock.sendall(f"GET /_sigreload/socket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13"
                     f"\r\nOrigin: http://127.0.0.1:{port}\r\n\r\n".encode())
        assert b" 101 " in sock.recv(1024)
        deaf.append(sock)
    stop = threading.Event()

    def ping(sock):
        sock.settimeout(0.5)
        while not stop.is_set():
            try:
                sock.sendall(PING * 64)
            except TimeoutError:
                continue
            except OSError:
                return

    threads = [threading.Thread(target=ping, args=(s,), daemon=True) for s in deaf]
    for t in threads:
        t.start()
    try:
        with connect(f"ws://127.0.0.1:{port}/_sigreload/socket", origin=f"http://127.0.0.1:{port}",
                     open_timeout=5 * SCALE) as page:
            assert '"hello"' in page.recv(timeout=5 * SCALE)
            for _ in range(3):
                os.kill(broadcaster, signal.SIGUSR1)
                assert '"reload"' in page.recv(timeout=3 * SCALE)  # before: 15 s, then the socket closed
    finally:
        stop.set()
        for sock in deaf:
            sock.close()
        for t in threads:
            t.join(5)
