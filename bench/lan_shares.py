"""The benchmark's rows for what one LAN device may take (issue 36, 3; the
reviewer r36a3), from network namespaces (root and iproute2 only):

- the file server (``--lan``) while 300 connections from 10 LAN addresses
  each trickle a header (their request line whole): this machine's page loads
  and socket opens, during and in the second after;
- the file server's relay while one machine with 60 addresses holds 1,000
  page sockets: how many it got, and a phone's (a second host's) socket opens.

    python3 bench/attacks.py --shares-only
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from attacks import SAMPLES, page_load, socket_open, start

AFTER = 1.0  # seconds after the attack in which the "after" rows are measured
TESTS = Path(__file__).resolve().parent.parent / "tests"

# On the attacker: COUNT connections over the source addresses, each a request line
# and a header trickled a byte a second; prints "open N", then holds until killed.
SLOW_HEADS = """
import asyncio, sys
host, port, count, sources = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
made = []
async def one(i):
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(sources[i % len(sources)], 0))
    except OSError:
        return
    made.append(writer)
    writer.write(f"GET / HTTP/1.1\\r\\nHost: {host}:{port}\\r\\nX-a: ".encode())
    try:
        while True:
            await asyncio.sleep(1)
            writer.write(b"a")
            await writer.drain()
    except OSError:
        pass
async def main():
    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    while len(made) < count and not all(t.done() for t in tasks):
        await asyncio.sleep(0.05)
    print("open", len(made), flush=True)
    await asyncio.gather(*tasks)
asyncio.run(main())
"""

# On the phone: SAMPLES socket opens through the relay, a line of ms each ("None": failed).
PHONE = """
import sys, time
from websockets.sync.client import connect
host, port, samples = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(samples):
    began = time.perf_counter()
    try:
        with connect(f"ws://{host}:{port}/_sigreload/socket", origin=f"http://{host}:{port}", open_timeout=10) as c:
            c.recv(timeout=10)
        print((time.perf_counter() - began) * 1000, flush=True)
    except Exception:
        print("None", flush=True)
"""


def share_rows(results, summary, free_port):
    """Both rows, each on fresh processes; nothing without root and iproute2."""
    import shutil

    if os.geteuid() != 0 or not shutil.which("ip"):
        print("LAN share rows skipped: a network namespace needs root and iproute2", file=sys.stderr)
        return
    sys.path.insert(0, str(TESTS))
    from apps import NetworkHost

    tag = (os.getpid() + 7000) % 10000
    attacker, phone = NetworkHost(tag), NetworkHost((tag + 1) % 10000)
    try:
        for host in (attacker, phone):
            host.make()
        net = attacker.there.rsplit(".", 1)[0]
        sources = [f"{net}.{n}" for n in range(3, 63)]
        for address in sources:
            attacker.ip("addr", "add", f"{address}/24", "dev", "eth9", inside=True)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "index.html").write_text("<!doctype html><title>mine</title><h1>mine</h1>")
            slow_heads(results, summary, free_port, attacker, sources[:10], tmp)
            one_device(results, summary, free_port, attacker, phone, sources, tmp)
    finally:
        for host in (attacker, phone):
            host.delete()


def serving(free_port, root):
    """A broadcaster and the file server (--lan) before it: (processes, its port)."""
    ws, web = free_port(), free_port()
    procs = [start(["sigreload.broadcaster", "--port", str(ws), "--lan"], None, "ready")]
    procs.append(start(["sigreload.http_server", root, "--port", str(web), "--inject", str(ws), "--lan"], None,
                       "serving"))
    return procs, web


def slow_heads(results, summary, free_port, attacker, sources, root):
    name = "file server --lan, 300 slow heads from 10 LAN addresses"
    procs, web = serving(free_port, root)
    try:
        url, origin = f"ws://127.0.0.1:{web}/_sigreload/socket", f"http://127.0.0.1:{web}"
        probes = (("page loads", lambda: page_load(web)), ("socket opens", lambda: socket_open(url, origin)))
        peer = subprocess.Popen(["ip", "netns", "exec", attacker.name, sys.executable, "-c", SLOW_HEADS,
                                 attacker.here, str(web), "300", *sources], stdout=subprocess.PIPE,
                                start_new_session=True)
        try:
            peer.stdout.readline()  # "open N"
            time.sleep(1.0)  # their heads started
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
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()


def one_device(results, summary, free_port, attacker, phone, sources, root):
    from test_broadcast_crowd import RELAYED

    name = "relay --lan, one machine of 60 addresses holds 1,000 sockets"
    procs, web = serving(free_port, root)
    try:
        peer = subprocess.Popen(["ip", "netns", "exec", attacker.name, sys.executable, "-c", RELAYED, attacker.here,
                                 str(web), "1", "1000", *sources], stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            opened = None
            for line in peer.stdout:
                if line.startswith("opened "):
                    opened = float(line.split()[1])
                    break
            said = subprocess.run(["ip", "netns", "exec", phone.name, sys.executable, "-c", PHONE, phone.here,
                                   str(web), str(SAMPLES)], capture_output=True, text=True, timeout=600).stdout
        finally:
            peer.kill()
            peer.wait()
        taken = [None if v == "None" else float(v) for v in said.split()]
        results[f"{name}: its sockets opened"] = summary([opened])
        results[f"{name}: a phone's socket opens (ms)"] = summary(taken)
        results[f"{name}: a phone's socket opens failed"] = summary([float(taken.count(None))])
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
