"""Another local user on loopback is a client like a LAN device (issue 36, 3:
"caps per client"; the reviewer r36a3, as ``nobody``): loopback was this
machine's room, uncapped, so 600 unread downloads held the proxy and 1,000
sockets kept every new page out of the broadcaster. The user owning a
loopback client's socket is asked of the kernel (``peer_user``: Linux's
sock_diag); another user's connections get a share (limits.PER_ADDRESS)."""

import os
import shutil
import socket

import pytest
from test_hardening import limit_fds
from test_load import get_42, opens

from conftest import free_port, module

OTHER = 65534  # nobody: another user, made by no test

# Run as the other user (the system's python: the venv may not be theirs to read):
# COUNT connections to PORT, each sending HEAD (\\n for newlines) and reading
# the status of its answer, then nothing; prints "held N" and the statuses once
# all are answered (or closed), then holds them until killed.
HOLD = """
import socket, sys, time
port, count, head = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].replace("\\\\n", "\\r\\n").encode()
held = []
for _ in range(count):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(head)
    except OSError:
        continue
    held.append(s)
seen = {}
for s in held:  # each one's first answer (or its end): the server took them all
    s.settimeout(30)
    try:
        said = s.recv(12)[9:12].decode() or "closed"
    except OSError as e:
        said = type(e).__name__
    seen[said] = seen.get(said, 0) + 1
print("held", len(held), sorted(seen.items()), flush=True)
time.sleep(3600)
"""


def as_other_user(argv):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("another user's process needs root and setpriv")
    return ["setpriv", "--reuid", OTHER, "--regid", OTHER, "--clear-groups", *argv]


def test_the_kernel_says_which_user_holds_a_loopback_client(procs):
    from sigreload.serving import peer_user

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as mine:
            conn, peer = server.accept()
            with conn:
                assert peer_user.client(peer, conn.getsockname()) == "127.0.0.1"
                assert peer_user.owner(peer, conn.getsockname()) == os.getuid()
            assert mine
        holder = procs(as_other_user(["/usr/bin/python3", "-c", HOLD, port, 1, "x"]))
        conn, peer = server.accept()
        with conn:  # its socket is open: it waits for an answer (30 s; "held 1" only then)
            assert peer_user.client(peer, conn.getsockname()) == f"user:{OTHER}"
        holder.wait_for("held 1")  # it was that user's: the answer it waited for was our close
    assert peer_user.client(("192.0.2.7", 5000), ("192.0.2.1", 80)) == "192.0.2.7"  # the LAN: its address


def test_another_users_600_unread_downloads_leave_the_developer_the_proxy(procs):
    """Before: 600 connections of another user, each a download it never reads,
    each holding a connection (and a thread) of the app: the developer's
    requests hung. Now that user has a device's share of the proxy's
    connections, and waits for a turn with the app as the LAN does."""
    from test_load import BIG
    from test_proxy_field import Upstream, pages

    def answer(head, body, conn):
        if head.startswith(b"GET /big "):
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(BIG)}\r\n\r\n".encode())
            conn.sendall(BIG)
            return None
        return pages(head, body, conn)

    upstream = Upstream(answer)
    try:
        port = free_port()
        procs(module("http_server") + ["--proxy", f"http://127.0.0.1:{upstream.port}", "--port", port,
                                       "--inject", free_port()], preexec_fn=limit_fds(1024)).wait_for("proxying")
        holder = procs(as_other_user(["/usr/bin/python3", "-c", HOLD, port, 600,
                                      f"GET /big HTTP/1.1\\nHost: 127.0.0.1:{port}\\n\\n"]))
        print(holder.wait_for(r"held \d+.*", 120).group(0))
        for _ in range(5):
            assert get_42(port, timeout=10) == b"HTTP/1.1 200 OK"  # before: timed out
    finally:
        upstream.close()


def test_another_users_1000_sockets_leave_pages_the_broadcaster_under_1024_open_files(procs):
    """Before: loopback was uncapped: 1,000 handshakes of another user filled
    the broadcaster's file table with open sockets, never let go, and every
    new page of the developer was refused."""
    port = free_port()
    procs(module("broadcaster") + ["--port", port], preexec_fn=limit_fds(1024)).wait_for("ready")
    handshake = (f"GET /sigreload HTTP/1.1\\nHost: 127.0.0.1:{port}\\nOrigin: http://127.0.0.1:8000\\n"
                 "Upgrade: websocket\\nConnection: Upgrade\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\n"
                 "Sec-WebSocket-Version: 13\\n\\n")
    holder = procs(as_other_user(["/usr/bin/python3", "-c", HOLD, port, 1000, handshake]))
    print(holder.wait_for(r"held \d+.*", 120).group(0))
    for _ in range(3):
        assert opens(port, seconds=10) is True  # before: refused
