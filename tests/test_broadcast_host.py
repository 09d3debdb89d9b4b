"""The broadcaster's port checks Host as the file server and the proxy do
(issue 36, 1: "Host is checked as on loopback, with the LAN addresses
allowed"): its HTTP answers (the snippet, the status page) and its WebSocket
handshakes, on loopback and from a LAN device (tests/apps.py ``network_host``)."""

import os
import socket
import sys

import pytest

from apps import network_host
from conftest import SCALE, free_port, module

LAN_TAG = (os.getpid() + 5500) % 10000  # test_lan_shares.py has pid + 4500

# Run on the namespace's host: the status line of one request (argv: address, port, Host, path, Origin).
ASK = """
import socket, sys
address, port, host, path, origin = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
head = f"GET {path} HTTP/1.1\\r\\nHost: {host}\\r\\nOrigin: {origin}\\r\\n" \\
       "Upgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\n" \\
       "Sec-WebSocket-Version: 13\\r\\n\\r\\n"
with socket.create_connection((address, port), timeout=10) as s:
    s.sendall(head.encode())
    print(s.recv(4096).split(b"\\r\\n")[0].decode())
"""


def ask(port, host, path="/sigreload", origin="http://127.0.0.1:8000", upgrade=True, address="127.0.0.1"):
    """The status line of one request (a WebSocket handshake when ``upgrade``) with these Host headers."""
    hosts = "".join(f"Host: {h}\r\n" for h in ([host] if isinstance(host, str) else host))
    upgrading = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n") if upgrade else ""
    with socket.create_connection((address, port), timeout=5 * SCALE) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\n{hosts}Origin: {origin}\r\n{upgrading}\r\n".encode())
        return s.recv(4096).split(b"\r\n")[0]


def test_the_broadcasters_port_answers_only_a_host_of_this_machine_or_an_allowed_name(procs):
    """Before: any Host got the snippet, the status page and the socket (a DNS
    rebinding's name, a Host with userinfo, two of them)."""
    port = free_port()
    procs(module("broadcaster") + ["--port", port, "--allow-host", "box.example"]).wait_for("ready")
    for path, upgrade in (("/sigreload", True), ("/reload.js", False), ("/status", False)):
        ok = b"HTTP/1.1 101 Switching Protocols" if upgrade else b"HTTP/1.1 200 OK"
        assert ask(port, f"127.0.0.1:{port}", path, upgrade=upgrade) == ok
        assert ask(port, f"localhost:{port}", path, upgrade=upgrade) == ok
        assert ask(port, f"box.example:{port}", path, upgrade=upgrade) == ok  # --allow-host
        assert ask(port, f"rebind.attacker.example:{port}", path, upgrade=upgrade) == b"HTTP/1.1 403 Forbidden"
        for malformed in (f"evil.example@127.0.0.1:{port}", f"127.0.0.1:{port}, evil.example",
                          [f"127.0.0.1:{port}", "evil.example"]):
            assert ask(port, malformed, path, upgrade=upgrade) == b"HTTP/1.1 400 Bad Request", malformed


@pytest.fixture
def lan_host():
    with network_host(LAN_TAG) as host:
        yield host


def test_with_lan_the_broadcaster_answers_the_lan_addresses_and_refuses_other_names(lan_host, procs):
    """--lan widens who connects, never what is checked: a page of this machine's
    LAN address (an origin served) opens its socket by that address; the same
    page by a rebinding name gets 403 (before: 101, the hello, build output)."""
    host = lan_host
    port = free_port()
    procs(module("broadcaster") + ["--port", port, "--lan"]).wait_for("ready")
    origin = f"http://{host.here}:8000"

    def asked(name, path="/sigreload"):
        return host.run([sys.executable, "-c", ASK, host.here, port, name, path, origin], capture_output=True,
                        text=True, timeout=20 * SCALE).stdout.strip()

    assert asked(f"{host.here}:{port}") == "HTTP/1.1 101 Switching Protocols"
    assert asked(f"rebind.attacker.example:{port}") == "HTTP/1.1 403 Forbidden"
    assert asked(f"rebind.attacker.example:{port}", "/reload.js") == "HTTP/1.1 403 Forbidden"
    assert asked(f"evil.example@{host.here}:{port}") == "HTTP/1.1 400 Bad Request"
