"""The proxy under load from the LAN (issue 36, 3; the reviewer r36a): a LAN
peer's requests never hold the app for this machine's. Run from a network
namespace (tests/apps.py ``network_host``); the figures are the benchmark's
(bench/attacks.py), these tests check behaviour."""

import os
import sys
import threading
import time

import pytest
from test_load import get_42
from test_proxy_field import Upstream, reply

from apps import network_devices
from conftest import SCALE, free_port, module, run_async
from sigreload.serving import forwarding

LAN_TAG = (os.getpid() + 3500) % 10000  # test_broadcast_crowd.py has pid + 2500
DEVICES = 10

# Run on the namespace's host: COUNT connections spread over the source
# addresses, each doing MODE; prints what it saw, then holds (or loops) until killed.
CLIENT = """
import asyncio, sys
host, port, scale, mode, count, sources = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], \\
    int(sys.argv[5]), sys.argv[6:]
seen = {}
async def one(i):
    reader, writer = await asyncio.open_connection(host, port, local_addr=(sources[i % len(sources)], 0))
    head = f"POST /form HTTP/1.1\\r\\nHost: {host}:{port}\\r\\n"
    if mode == "expect":  # a body promised, never sent
        writer.write(f"{head}Content-Length: 10000000\\r\\nExpect: 100-continue\\r\\n\\r\\n".encode())
        try:
            line = await asyncio.wait_for(reader.readline(), 20 * scale)
        except Exception as e:
            line = repr(e).encode()
        seen[line.strip()[:40]] = seen.get(line.strip()[:40], 0) + 1
        await asyncio.sleep(3600)
    while True:  # small posts in a loop on one kept-alive connection
        writer.write(f"{head}Content-Length: 10\\r\\n\\r\\n0123456789".encode())
        status = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\\r\\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        seen[status.strip()] = seen.get(status.strip(), 0) + 1
        if sum(seen.values()) == count:
            print("answered", count, flush=True)
async def main():
    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    if mode == "expect":
        while sum(seen.values()) < count:
            await asyncio.sleep(0.1)
        print("seen", seen, flush=True)
    await asyncio.gather(*tasks)
asyncio.run(main())
"""


@pytest.fixture
def lan_host():
    with network_devices(LAN_TAG, DEVICES) as found:
        yield found


class App:
    """An upstream that answers after ``slow`` seconds, counting the requests it
    computes at once from the LAN (those with an X-Forwarded-For) and the most."""

    def __init__(self, slow=0.0):
        self.slow, self.now, self.most = slow, 0, 0
        self.lock = threading.Lock()
        self.upstream = Upstream(self.answer)

    def answer(self, head, body, conn):
        lan = b"\r\nx-forwarded-for:" in head.lower()
        with self.lock:
            self.now += lan
            self.most = max(self.most, self.now)
        time.sleep(self.slow)
        with self.lock:
            self.now -= lan
        reply("200 OK", [("Content-Type", "text/plain"), ("Content-Length", 2)], b"42", conn)


def lan_proxy(procs, app):
    port = free_port()
    procs(module("http_server") + ["--proxy", f"http://127.0.0.1:{app.upstream.port}", "--port", port, "--lan",
                                   "--inject", free_port()]).wait_for("proxying")
    return port


def test_lan_posts_that_expect_100_continue_and_never_send_a_body_never_reach_the_app(lan_host, procs):
    """600 such POSTs from the LAN locked the developer's page out for about 35 s:
    each held a connection and a thread of the app (which says 100 Continue), and
    the proxy looked at the app's accept queue for each. The proxy now says 100
    Continue itself to a LAN client, as nginx does, and reads the body first."""
    host, sources = lan_host
    app = App()
    port = lan_proxy(procs, app)
    client = procs(["ip", "netns", "exec", host.name, sys.executable, "-c", CLIENT, host.here, port, SCALE,
                    "expect", 600, *sources])
    seen = client.wait_for(r"seen (.*)", seconds=60).group(1)
    assert seen == "{b'HTTP/1.1 100 Continue': 600}"  # before: the app's to say, and this one never does
    for _ in range(5):
        assert get_42(port) == b"HTTP/1.1 200 OK"
    assert not [h for h in app.upstream.heads if h.startswith(b"POST")]  # before: all 600


def test_lan_clients_posting_in_a_loop_leave_this_machines_requests_their_turn(lan_host, procs):
    """300 kept-alive connections from the LAN posting in a loop gave the
    developer's page loads of 9.5 s: the app computed all of them at once and
    every request waited behind them. At most LAN_AT_ONCE are with the app now;
    this machine's requests never wait for a turn."""
    host, sources = lan_host
    app = App(slow=0.02)
    port = lan_proxy(procs, app)
    client = procs(["ip", "netns", "exec", host.name, sys.executable, "-c", CLIENT, host.here, port, SCALE,
                    "posts", 300, *sources])
    client.wait_for(r"answered", seconds=120)
    for _ in range(5):
        assert get_42(port) == b"HTTP/1.1 200 OK"
    assert 1 < app.most <= forwarding.LAN_AT_ONCE  # before: up to 300


def test_answering_windows_are_written_at_once_at_the_edges_and_coalesced_between(tmp_path):
    """300 LAN clients posting in a loop made two writes of the windows per request
    most of the proxy's work (py-spy): while other windows stay open, the latest
    state is written at most every SAY_EVERY seconds; the first window to open and
    the last to end are written at once (what the watcher must see in time)."""
    import asyncio

    from sigreload.contract import answering

    async def run():
        writer = answering.Writer(lambda: tmp_path)
        writer.begin(1, 100.0)
        assert answering.read(tmp_path) == [(100.0, None)]  # the first: at once
        writer.begin(2, 100.1)
        writer.end(1, 100.2)
        assert answering.read(tmp_path) == [(100.0, None)]  # before: a write for each
        await asyncio.sleep(answering.SAY_EVERY * 2)  # the timer that writes the latest state
        assert answering.read(tmp_path) == [(100.0, 100.2), (100.1, None)]
        writer.end(2, 100.3)
        assert answering.read(tmp_path) == [(100.0, 100.2), (100.1, 100.3)]  # the last: at once

    run_async(run())
