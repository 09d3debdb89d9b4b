"""What a LAN device may take (issue 36, 3; the reviewer r36a3): the file
server's accept loop never waits for the LAN's share to free, and a request's
head has one deadline. Run from a network namespace (tests/apps.py
``network_devices``); the figures are the benchmark's (bench/attacks.py)."""

import os
import socket
import sys
import time

import pytest

from apps import lan_stack, network_devices
from conftest import SCALE, free_port, module, until, write

LAN_TAG = (os.getpid() + 4500) % 10000  # test_proxy_lan_load.py has pid + 3500
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


# --- The relay's shares (the LAN's 128 page sockets) ---------------------------------------------------

# Run on a host: one page socket through the relay; prints "hello" or what went wrong.
PHONE_SOCKET = """
import sys
from websockets.sync.client import connect
host, port = sys.argv[1], int(sys.argv[2])
try:
    with connect(f"ws://{host}:{port}/_sigreload/socket", origin=f"http://{host}:{port}", open_timeout=10) as page:
        print("hello" if '"hello"' in page.recv(timeout=10) else "no hello")
except Exception as e:
    print(repr(e)[:200])
"""


@pytest.fixture
def attacker_and_phone():
    """Two LAN devices: one with 60 addresses of its own (r36a3's), and a phone (its own link, its own MAC)."""
    from apps import network_host

    with network_devices(LAN_TAG, 60) as attacker, network_host((LAN_TAG + 1) % 10000) as phone:
        yield attacker, phone


@pytest.mark.parametrize("server", ["files", "proxy"])
def test_one_device_with_60_addresses_leaves_a_phone_its_page_socket(attacker_and_phone, procs, tmp_path, server):
    """r36a3 opened 1,000 relayed sockets from 60 addresses of one machine: each
    address was a device (16 each), so it held all 128 of the LAN's, and a
    phone's page got 503. A device is its hardware address now (the neighbour
    table), and a device with fewer relays takes the biggest holder's oldest."""
    from test_broadcast_crowd import RELAYED

    (attacker, sources), phone = attacker_and_phone
    stack, port = lan_stack(procs, tmp_path, server)
    client = procs(["ip", "netns", "exec", attacker.name, sys.executable, "-c", RELAYED, attacker.here, port, SCALE,
                    1000, *sources])
    opened = int(client.wait_for(r"opened (\d+)", seconds=240).group(1))
    said = phone.run([sys.executable, "-c", PHONE_SOCKET, phone.here, port], capture_output=True, text=True,
                     timeout=30 * SCALE).stdout.strip()
    assert said == "hello", said  # before: 502 (the file server) or 503 (the proxy)
    assert 0 < opened <= 16, opened  # before: 128, the LAN's whole share
    assert "Traceback" not in stack.output()


class NoNeighbours:
    def hardware(self, address):
        return None  # every address a device (macOS, IPv6, or made-up hardware addresses)


def test_when_the_lans_share_is_full_a_device_with_fewer_relays_takes_the_biggest_holders_oldest():
    from sigreload.serving.shares import Shares

    cut = []
    shares = Shares(8, NoNeighbours())
    tickets = [shares.take(f"10.0.0.{i % 2 + 2}", lambda i=i: cut.append(i)) for i in range(8)]  # two devices, 4 each
    assert None not in tickets and len(shares) == 8
    phone = shares.take("10.0.0.9", lambda: cut.append("phone"))
    assert phone is not None and cut == [0]  # the oldest of a biggest holder (4 relays; the phone had none)
    assert shares.take("10.0.0.9", lambda: cut.append("phone 2")) is not None and cut == [0, 1]
    assert shares.take("10.0.0.9", lambda: None) is None  # 3 against 3 and 3: as fair as it gets
    shares.give(tickets[0])  # given back after its cut: nothing changes
    assert len(shares) == 8
    shares.give(phone)
    assert len(shares) == 7 and shares.take("127.0.0.1", lambda: None) is not None and len(shares) == 7
    assert cut == [0, 1]


def test_a_device_is_its_hardware_address_when_the_neighbour_table_has_it(tmp_path):
    from sigreload.serving.shares import Neighbours, device

    table = tmp_path / "arp"
    table.write_text("IP address       HW type     Flags       HW address            Mask     Device\n"
                     "10.0.0.2         0x1         0x2         AA:bb:cc:dd:ee:01     *        eth0\n"
                     "10.0.0.3         0x1         0x2         aa:bb:cc:dd:ee:01     *        eth0\n"
                     "10.0.0.4         0x1         0x0         00:00:00:00:00:00     *        eth0\n")
    neighbours = Neighbours(str(table))
    assert device("10.0.0.2", neighbours) == device("::ffff:10.0.0.3", neighbours) == "hw aa:bb:cc:dd:ee:01"
    assert device("10.0.0.4", neighbours) == "10.0.0.4"  # incomplete: its address
    assert device("192.0.2.9", neighbours) == "192.0.2.9"  # off-link (behind a router): never the router's
    # IPv6 addresses are free to make (r36a4: 200 from one device took the LAN's 128 relays): its /64
    assert device("2001:db8::1", neighbours) == device("2001:db8::c9", neighbours) == "2001:db8::/64"
    assert device("2001:db8:0:1::1", neighbours) != device("2001:db8::1", neighbours)
