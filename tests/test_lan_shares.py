"""What a LAN device may take (issue 36, 3; the reviewer r36a3): the file
server's accept loop never waits for the LAN's share to free, and a request's
head has one deadline. Run from a network namespace (tests/apps.py
``network_devices``); the figures are the benchmark's (bench/attacks.py)."""

import socket
import sys
import time

import pytest

from apps import network_devices
from conftest import SCALE, free_port, module, until, write

LAN_TAG = (__import__("os").getpid() + 4500) % 10000  # test_proxy_lan_load.py has pid + 3500
DEVICES = 10

# Run on the namespace's host: COUNT connections over the source addresses,
# each sending a request line and the start of a header, then a byte every
# EVERY seconds; prints "open N" once all are made, then holds until killed.
SLOW_HEADS = """
import asyncio, sys
host, port, every, count, sources = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
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
            await asyncio.sleep(every)
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


@pytest.fixture
def lan_host():
    with network_devices(LAN_TAG, DEVICES) as found:
        yield found


def get(port, host="127.0.0.1", timeout=3.0, source=None):
    """The status line of GET / on a new connection (bound to ``source``)."""
    with socket.create_connection((host, port), timeout=timeout * SCALE,
                                  source_address=(source, 0) if source else None) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        return s.recv(4096).split(b"\r\n")[0]


def test_300_slow_heads_from_the_lan_never_hold_the_developers_requests(lan_host, procs, tmp_path):
    """300 connections from the LAN, each with a whole request line and a header
    trickling a byte a second: they filled the LAN's share with connections
    "being answered", and the accept loop waited for one to end (a head's
    deadline, twice over) while every new connection, this machine's too,
    queued behind. Now a head in progress is idle (the LAN's longest-idle one
    goes for a new one), and the accept loop never waits."""
    host, sources = lan_host
    write(tmp_path / "index.html", "<!doctype html><title>mine</title><h1>mine</h1>")
    port = free_port()
    server = procs(module("http_server") + [tmp_path, "--port", port, "--lan"])
    server.wait_for("serving")
    attack = procs(["ip", "netns", "exec", host.name, sys.executable, "-c", SLOW_HEADS, host.here, port, 1.0,
                    300, *sources])
    attack.wait_for(r"open \d+", seconds=60)
    for _ in range(10):
        began = time.monotonic()
        assert get(port) == b"HTTP/1.1 200 OK"  # before: timed out (the accept loop waited up to 2 x 15 s)
        assert get(port, host=host.here) == b"HTTP/1.1 200 OK"  # this machine, by its LAN address
        assert time.monotonic() - began < 3 * SCALE
    phone = [None]

    def phone_loads():  # a device of the LAN that is not the attacker's
        phone[0] = host.run([sys.executable, "-c", PHONE, host.here, port], capture_output=True, text=True,
                            timeout=20 * SCALE).stdout.strip()
        return phone[0] == "HTTP/1.1 200 OK"

    until(phone_loads, 20, f"a phone's page did not load: {phone}")


PHONE = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
with socket.create_connection((host, port), timeout=10) as s:
    s.sendall(f"GET / HTTP/1.1\\r\\nHost: {host}:{port}\\r\\nConnection: close\\r\\n\\r\\n".encode())
    print(s.recv(4096).split(b"\\r\\n")[0].decode())
"""


def test_a_heads_deadline_is_not_doubled_by_its_request_line(procs, tmp_path):
    """The deadline for a request's head restarted once its request line came:
    a head could take twice the idle timeout."""
    write(tmp_path / "index.html", "<h1>mine</h1>")
    port = free_port()
    procs(module("http_server") + [tmp_path, "--port", port, "--idle-timeout", 6]).wait_for("serving")
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        began = time.monotonic()
        s.sendall(b"GET / HTTP/1.1")
        time.sleep(5.0)  # the attack's pace: the request line ends five seconds into the head's six
        s.sendall(b"\r\nX-a: ")
        closed = None
        while closed is None and time.monotonic() - began < 30 * SCALE:
            try:
                if s.recv(4096) == b"":
                    closed = time.monotonic() - began
            except TimeoutError:
                try:
                    s.send(b"a")
                except OSError:
                    closed = time.monotonic() - began
            except OSError:
                closed = time.monotonic() - began
    assert closed is not None and closed < 9, closed  # before: 11 s (5 + 6); now 6
