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

from attacks import SAMPLES, start

TESTS = Path(__file__).resolve().parent.parent / "tests"

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
    from lan_attacks import during_and_after
    from test_lan_shares import SLOW_HEADS

    procs, web = serving(free_port, root)
    try:
        peer = subprocess.Popen(["ip", "netns", "exec", attacker.name, sys.executable, "-c", SLOW_HEADS,
                                 attacker.here, str(web), "1", "300", *sources], stdout=subprocess.PIPE,
                                start_new_session=True)
        during_and_after(results, summary, "file server --lan, 300 slow heads from 10 LAN addresses", web, peer,
                         lambda: (peer.stdout.readline(), time.sleep(1.0)))  # "open N"; their heads started
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
