"""The broadcaster keeps room for this machine (issue 36, 3): devices on the LAN
together never hold every connection its open-files limit allows. The cap per
device (limits.PER_ADDRESS) did not bound many devices: 3,000 sockets from 59
addresses with ``ulimit -n 1024`` filled the table with open pages (never let
go for a newcomer), and every page of this machine was refused."""

import os
import sys

import pytest
from test_hardening import limit_fds
from test_load import opens

from apps import lan_stack, network_devices
from conftest import SCALE, free_port, module
from sigreload.serving import limits
from sigreload.serving.limits import Crowd

LAN_TAG = (os.getpid() + 2500) % 10000  # test_devices.py has pid % 10000, test_lan.py pid + 5000
DEVICES, SOCKETS = 59, 3000

# Run on the namespace's host: SOCKETS pages' sockets spread over DEVICES source
# addresses, at most 200 handshakes at once; prints how many opened, then holds them.
CLIENT = """
import asyncio, resource, sys
from websockets.asyncio.client import connect
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
host, port, scale, count, sources = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
held, errors = [], {}
async def one(i, turns):
    async with turns:
        try:
            held.append(await connect(f"ws://{host}:{port}/sigreload", origin=f"http://{host}:8000",
                                      local_addr=(sources[i % len(sources)], 0), open_timeout=20 * scale))
        except Exception as e:
            errors[repr(e)[:120]] = errors.get(repr(e)[:120], 0) + 1
async def main():
    turns = asyncio.Semaphore(200)
    await asyncio.gather(*(one(i, turns) for i in range(count)))
    print("errors", sorted(errors.items(), key=lambda kv: -kv[1])[:5], flush=True)
    print("opened", len(held), flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


def test_lan_devices_together_leave_room_for_this_machine():
    c = Crowd(100, room=20)
    for i in range(80):  # 80 open pages from 59 devices: under each one's cap
        assert c.join(("lan", i), f"10.0.{i % 59}.2") == []
        c.busy(("lan", i))
    assert c.join("one more", "10.0.7.2") is None  # the LAN's share is full of open pages
    for i in range(20):
        assert c.join(("here", i), "127.0.0.1") == []  # the room kept
    c.leave(("lan", 0))
    assert c.join("newcomer", "10.0.9.2") == [] and c.lan == 80


def test_a_lan_newcomer_lets_go_of_a_lan_connection_idle_longest_never_of_this_machines():
    c = Crowd(100, room=20)
    assert c.join("mine", "::1") == []  # idle: the longest
    for i in range(80):
        assert c.join(("lan", i), f"10.0.{i % 59}.2") == []
    assert c.join("newcomer", "10.0.9.2") == [("lan", 0)]
    assert "mine" in c.members and c.lan == 80
    small = Crowd(8)  # a tiny table: a quarter of it at most is kept
    assert small.lan_most == 6 and limits.PER_ADDRESS > 6


@pytest.fixture
def crowded_host():
    with network_devices(LAN_TAG, DEVICES) as found:
        yield found


def test_3000_lan_sockets_from_59_devices_under_1024_open_files_leave_pages_of_this_machine_room(
        crowded_host, procs):
    host, sources = crowded_host
    port = free_port()
    b = procs(module("broadcaster") + ["--port", port, "--lan"], preexec_fn=limit_fds(1024))
    b.wait_for("ready")
    client = procs(["ip", "netns", "exec", host.name, sys.executable, "-c", CLIENT, host.here, port, SCALE, SOCKETS,
                    *sources])
    opened = int(client.wait_for(r"opened (\d+)", seconds=240).group(1))
    assert 500 < opened < SOCKETS  # the LAN's share, held open
    for _ in range(3):
        assert opens(port, seconds=10) is True  # before: refused, every time
    assert "Traceback" not in b.output()


RELAYED = CLIENT.replace('f"ws://{host}:{port}/sigreload", origin=f"http://{host}:8000"',
                         'f"ws://{host}:{port}/_sigreload/socket", origin=f"http://{host}:{port}"')


@pytest.mark.parametrize("server", ["files", "proxy"])
def test_lan_devices_on_the_relay_keep_no_page_of_this_machine_out(crowded_host, procs, tmp_path, server):
    """The reviewer r32a: the LAN's share held at the broadcaster's own port, but pages
    use the HTTP port's relay, which reaches the broadcaster from loopback: 600
    sockets from 8 devices filled the HTTP server's file table (each relay holds two
    files), and this machine's page and socket were refused."""
    host, sources = crowded_host
    stack, port = lan_stack(procs, tmp_path, server, preexec_fn=limit_fds(1024))
    client = procs(["ip", "netns", "exec", host.name, sys.executable, "-c", RELAYED, host.here, port, SCALE, 600,
                    *sources[:8]])
    opened = int(client.wait_for(r"opened (\d+)", seconds=240).group(1))
    assert 0 < opened <= limits.LAN_RELAYS  # the LAN's share of the relay
    import urllib.request

    from websockets.sync.client import connect

    for _ in range(3):  # this machine's page and its socket: before, a 404 or a reset, and 502s
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10 * SCALE) as answer:
            assert b"mine" in answer.read()
        with connect(f"ws://127.0.0.1:{port}/_sigreload/socket", origin=f"http://127.0.0.1:{port}",
                     open_timeout=10 * SCALE) as page:
            assert '"hello"' in page.recv(timeout=10 * SCALE)
    assert "Traceback" not in stack.output()
