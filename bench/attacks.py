"""The benchmark's attack rows (issue 36): while hundreds of slow or idle
sockets sit on a server, how long the developer's page takes to load and its
socket to open; and how long after they go the server is back to its open
files of before. Loopback only; every loop is bounded and stops by itself.

    python3 bench/run.py --attacks-only

Attacks, on the file server, the proxy (before sigreload's file server as its
app) and the broadcaster, each on a fresh process:
- slow: 300 connections that send a request head one byte every 10 s;
- idle: 300 connections that send nothing;
- idle, 3,000 with ``ulimit -n 1024`` (the server's open-files limit);
and on the proxy alone (``proxy_rows``): 600 POSTs that trickle their bodies
a byte a second, and 600 downloads of 50 MB never read (the proxy's RSS
during them and a few seconds after); the broadcaster's RSS with 3,000
open pages and after they went (``pages_rows``); and from a LAN peer (``lan_attacks``,
root only), 600 Expect-100 POSTs that never send a body and 300 kept-alive
POST loops (``--lan-only``: those alone); and what one LAN device may take
(``lan_shares``, root only; ``--shares-only``: those alone); and another
local user's sockets (``other_user``, root only; ``--other-user-only``).
"""

import contextlib
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sigreload import process_life  # noqa: E402

SAMPLES = 20  # page loads and socket opens measured during each attack
TRICKLE_EVERY = 10.0  # seconds between two bytes of a slow head (or body)
ATTACKS = (("300 slow", 300, b"G", None), ("300 idle", 300, b"", None), ("3000 idle, ulimit 1024", 3000, b"", 1024))


def limit_files(n):
    return (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))) if n else None


def start(argv, files, ready):
    """A sigreload process (its open-files limit ``files``), once it printed ``ready``."""
    proc = process_life.spawn([*process_life.module_argv(argv[0]), *argv[1:]], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                              preexec_fn=limit_files(files))
    for line in proc.stdout:
        if ready in line.decode(errors="replace"):
            break
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # the rest, never blocking it
    return proc


class Attack:
    """``count`` connections to ``port``, each sending ``first`` and then (when
    it is not empty) one more byte every TRICKLE_EVERY seconds, until closed."""

    def __init__(self, port, count, first):
        self.socks, self.stop = [], threading.Event()
        for _ in range(count):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            self.socks.append(s)
        if first:
            threading.Thread(target=self.trickle, args=(first,), daemon=True).start()

    def trickle(self, first):
        end = time.monotonic() + 120  # bounded: the rows take far less
        piece = first
        while time.monotonic() < end:
            for s in self.socks:
                with contextlib.suppress(OSError):
                    s.send(piece)
            piece = b"E"
            if self.stop.wait(TRICKLE_EVERY):
                return

    def close(self):
        self.stop.set()
        for s in self.socks:
            s.close()


def page_load(port, timeout=10.0):
    """ms until a whole answer to GET / on a new connection (None: failed)."""
    began = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while data := s.recv(65536):
                answer += data
    except OSError:
        return None
    return (time.perf_counter() - began) * 1000 if answer.startswith(b"HTTP/1.1 200") else None


def socket_open(url, origin, timeout=10.0):
    """ms until a page's socket at ``url`` is open and has its hello (None: failed)."""
    from websockets.sync.client import connect

    began = time.perf_counter()
    try:
        with connect(url, origin=origin, open_timeout=timeout) as ws:
            ws.recv(timeout=timeout)
    except Exception:  # noqa: BLE001  # refused, reset, timed out: a failure, counted
        return None
    return (time.perf_counter() - began) * 1000


def back_after(pid, files_before, most=5.0):
    """ms until process ``pid`` holds no more open files than ``files_before`` + 4."""
    began = time.perf_counter()
    proc = psutil.Process(pid)
    while time.perf_counter() - began < most:
        if proc.num_fds() <= files_before + 4:
            return (time.perf_counter() - began) * 1000
        time.sleep(0.01)
    return None


def measure(results, summary, front, attack, port, target, probe, pid):
    """One row set: ``probe()`` (ms or None) during ``attack`` on ``port``, and
    how long after it the process ``pid`` is back to its open files of before."""
    attack_name, count, first, _files = attack
    before = psutil.Process(pid).num_fds()
    sockets = Attack(port, count, first)
    time.sleep(1.0)  # let them all be accepted and start their heads
    taken = [probe() for _ in range(SAMPLES)]
    sockets.close()
    results[f"{front}, {attack_name}: {target} (ms)"] = summary(taken)
    results[f"{front}, {attack_name}: {target} failed"] = summary([float(taken.count(None))])
    results[f"{front}, {attack_name}: back after its {target.split()[0]} (ms)"] = summary([back_after(pid, before)])
    time.sleep(0.5)


def rows(results, summary, free_port):
    """Each front under each attack, each on fresh processes (the ulimit differs)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 16384)), hard))  # our own 3,000 sockets
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "index.html").write_text("<!doctype html><title>mine</title><h1>mine</h1>")
        for front in ("file server", "proxy", "broadcaster"):
            for attack in ATTACKS:
                one_front(results, summary, free_port, root, front, attack)
        proxy_rows(results, summary, free_port, root)
    pages_rows(results, summary, free_port)
    import lan_attacks  # it imports this module's helpers

    lan_attacks.lan_rows(results, summary, free_port)
    import lan_shares

    lan_shares.share_rows(results, summary, free_port)
    import other_user

    other_user.other_user_rows(results, summary, free_port)


BODIES, DOWNLOADS = 600, 600
DOWNLOAD_SIZE = 50 << 20


def rss(pid):
    return psutil.Process(pid).memory_info().rss / 2**20


def proxy_rows(results, summary, free_port, root):
    """The proxy before sigreload's file server, under trickled bodies, then unread downloads."""
    (root / "big.bin").write_bytes(b"x" * DOWNLOAD_SIZE)
    for name, head, trickled in (
            (f"{BODIES} trickled bodies", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nx", True),
            (f"{DOWNLOADS} unread downloads", "GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", False)):
        ws, web, app = free_port(), free_port(), free_port()
        procs = [start(["sigreload.broadcaster", "--port", str(ws)], None, "ready"),
                 start(["sigreload.http_server", str(root), "--port", str(app)], None, "serving")]
        procs.append(start(["sigreload.http_server", "--proxy", f"http://127.0.0.1:{app}", "--port", str(web),
                            "--inject", str(ws)], None, "proxying"))
        pid = procs[-1].pid
        try:
            before, socks = rss(pid), []
            for _ in range(BODIES if trickled else DOWNLOADS):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.connect(("127.0.0.1", web))
                s.sendall(head.encode())
                socks.append(s)
            sockets = Attack(web, 0, b"")
            sockets.socks = socks
            if trickled:
                threading.Thread(target=sockets.trickle, args=(b"x",), daemon=True).start()
            time.sleep(1.0)
            taken = [page_load(web) for _ in range(SAMPLES)]
            during = rss(pid)
            sockets.close()
            time.sleep(3.0)
            results[f"proxy, {name}: page loads (ms)"] = summary(taken)
            results[f"proxy, {name}: page loads failed"] = summary([float(taken.count(None))])
            results[f"proxy, {name}: RSS before (MB)"] = summary([before])
            results[f"proxy, {name}: RSS during (MB)"] = summary([during])
            results[f"proxy, {name}: RSS 3 s after (MB)"] = summary([rss(pid)])
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait()


def pages_rows(results, summary, free_port, pages=3000):
    """The broadcaster's RSS before, with ``pages`` open page sockets, and 4 s after they went."""
    import asyncio

    from websockets.asyncio.client import connect

    ws = free_port()
    proc = start(["sigreload.broadcaster", "--port", str(ws)], None, "ready")

    async def crowd():
        opened = await asyncio.gather(*(connect(f"ws://127.0.0.1:{ws}/sigreload", open_timeout=30, ping_interval=None)
                                        for _ in range(pages)), return_exceptions=True)
        during = rss(proc.pid)
        for sock in opened:
            if not isinstance(sock, BaseException):
                sock.transport.abort()
        return during, sum(not isinstance(sock, BaseException) for sock in opened)

    try:
        before = rss(proc.pid)
        during, opened = asyncio.run(crowd())
        time.sleep(4.0)  # its collection comes 2 s after the last one went
        name = f"broadcaster, {pages:,} pages ({opened} opened)"
        for when, mb in (("before", before), ("during", during), ("4 s after", rss(proc.pid))):
            results[f"{name}: RSS {when} (MB)"] = summary([mb])
    finally:
        proc.terminate()
        proc.wait()


def one_front(results, summary, free_port, root, front, attack):
    """``front`` (and what it needs) on fresh processes, under ``attack``."""
    ws, web, app = free_port(), free_port(), free_port()
    files = attack[3]
    procs = [start(["sigreload.broadcaster", "--port", str(ws)], files if front == "broadcaster" else None, "ready")]
    try:
        if front == "broadcaster":
            url = f"ws://127.0.0.1:{ws}/sigreload"
            measure(results, summary, front, attack, ws, "socket opens",
                    lambda: socket_open(url, "http://127.0.0.1:8000"), procs[0].pid)
            return
        what = [str(root)]
        if front == "proxy":
            procs.append(start(["sigreload.http_server", str(root), "--port", str(app)], None, "serving"))
            what = ["--proxy", f"http://127.0.0.1:{app}"]
        procs.append(start(["sigreload.http_server", *what, "--port", str(web), "--inject", str(ws)], files,
                           "serving" if front == "file server" else "proxying"))
        url, origin = f"ws://127.0.0.1:{web}/_sigreload/socket", f"http://127.0.0.1:{web}"
        measure(results, summary, front, attack, web, "page loads", lambda: page_load(web), procs[-1].pid)
        measure(results, summary, front, attack, web, "socket opens", lambda: socket_open(url, origin), procs[-1].pid)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()


def main():
    sys.path.insert(0, str(HERE.parent / "tests"))
    import lan_attacks
    from run import summary

    from apps import free_port

    results = {}
    if "--lan-only" in sys.argv:
        lan_attacks.lan_rows(results, summary, free_port)
    elif "--shares-only" in sys.argv:
        import lan_shares

        lan_shares.share_rows(results, summary, free_port)
    elif "--other-user-only" in sys.argv:
        import other_user

        other_user.other_user_rows(results, summary, free_port)
    else:
        rows(results, summary, free_port)
    for name, s in results.items():
        if s:
            print(f"{name:<62} {s['median']:>9.1f} {s['p90']:>9.1f} {s['max']:>9.1f} {s['n']:>4}")


if __name__ == "__main__":
    main()
