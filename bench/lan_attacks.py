"""The benchmark's attack rows from a LAN peer (issue 36, the reviewer r36a):
the proxy (``--lan``) before a small threaded app, attacked from a network
namespace (a second host: root and iproute2 only; skipped otherwise) while
this machine's page loads and socket opens are measured, during and in the
second after:

- 600 POSTs that say ``Expect: 100-continue`` and never send their body;
- 300 kept-alive connections posting a small body in a loop.

    python3 bench/attacks.py --lan-only
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from attacks import SAMPLES, page_load, socket_open, start

DEVICES = 10  # source addresses of the peer
AFTER = 1.0  # seconds after the attack in which the "after" rows are measured

# The app: GET answers a page, POST reads its body (after saying 100 Continue,
# as Python's server does) and answers; HTTP/1.1, kept alive.
APP = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize, disable_nagle_algorithm = 1 << 16, True  # one write per answer (no 40 ms delayed ACK)
    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.answer(b"<!doctype html><title>mine</title><h1>mine</h1>")
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer(b"ok")
    def log_message(self, *args):
        pass
ThreadingHTTPServer.request_queue_size = 1024
server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), App)
print("app ready", flush=True)
server.serve_forever()
"""

# Run on the peer: COUNT connections over the source addresses, each doing MODE, until killed.
CLIENT = """
import asyncio, sys
host, port, mode, count, sources = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5:]
async def one(i):
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(sources[i % len(sources)], 0))
            head = f"POST /form HTTP/1.1\\r\\nHost: {host}:{port}\\r\\n"
            if mode == "expect":
                writer.write(f"{head}Content-Length: 10000000\\r\\nExpect: 100-continue\\r\\n\\r\\n".encode())
                await reader.read()  # until the proxy cuts it: then again
                continue
            while True:
                writer.write(f"{head}Content-Length: 10\\r\\n\\r\\n0123456789".encode())
                await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\\r\\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError):
            await asyncio.sleep(0.1)
async def main():
    await asyncio.gather(*(one(i) for i in range(count)))
asyncio.run(main())
"""
LAN_ATTACKS = (("600 Expect-100 POSTs, no body", "expect", 600), ("300 kept-alive POST loops", "posts", 300))


def lan_rows(results, summary, free_port):
    """Each LAN attack on a fresh proxy; nothing without root and iproute2."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        print("LAN attack rows skipped: a network namespace needs root and iproute2", file=sys.stderr)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from apps import NetworkHost

    host = NetworkHost(os.getpid() % 10000)
    try:
        host.make()
        net = host.there.rsplit(".", 1)[0]
        sources = [f"{net}.{n}" for n in range(3, 3 + DEVICES)]
        for address in sources:
            host.ip("addr", "add", f"{address}/24", "dev", "eth9", inside=True)
        for name, mode, count in LAN_ATTACKS:
            one_attack(results, summary, free_port, host, sources, f"proxy --lan, {name}", mode, count)
    finally:
        host.delete()


def one_attack(results, summary, free_port, host, sources, name, mode, count):
    ws, web, app = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        procs = [start(["sigreload.broadcaster", "--port", str(ws), "--lan"], None, "ready")]
        try:
            procs.append(subprocess.Popen([sys.executable, "-c", APP, str(app)], stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, cwd=tmp))  # cut connections: tracebacks
            procs[-1].stdout.readline()
            procs.append(start(["sigreload.http_server", "--proxy", f"http://127.0.0.1:{app}", "--port", str(web),
                                "--inject", str(ws), "--lan"], None, "proxying"))
            peer = subprocess.Popen(["ip", "netns", "exec", host.name, sys.executable, "-c", CLIENT, host.here,
                                     str(web), mode, str(count), *sources], start_new_session=True)
            during_and_after(results, summary, name, web, peer, lambda: time.sleep(2.0))  # all made, and sending
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait()


def during_and_after(results, summary, name, web, peer, settle):
    """This machine's page loads and socket opens on port ``web`` while ``peer``
    (an attacking process, killed here) attacks, once ``settle()`` returned,
    and in the AFTER seconds after it is killed: ``name``'s rows."""
    url, origin = f"ws://127.0.0.1:{web}/_sigreload/socket", f"http://127.0.0.1:{web}"
    probes = (("page loads", lambda: page_load(web)), ("socket opens", lambda: socket_open(url, origin)))
    try:
        settle()
        during = {target: [] for target, _ in probes}
        for _ in range(SAMPLES):
            for target, probe in probes:
                during[target].append(probe())
    finally:
        peer.kill()
        peer.wait()
    stopped, after = time.monotonic(), {target: [] for target, _ in probes}
    while time.monotonic() - stopped < AFTER:
        for target, probe in probes:
            after[target].append(probe())
    for target, _ in probes:
        results[f"{name}: {target} (ms)"] = summary(during[target])
        results[f"{name}: {target} failed"] = summary([float(during[target].count(None))])
        results[f"{name}: {target} in the second after (ms)"] = summary(after[target])
