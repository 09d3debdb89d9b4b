"""Who is a loopback client: the user owning its end of the connection.

Loopback is "this machine's room" in ``limits.Crowd`` (no per-client cap): but
another local user on loopback is no more the developer than a LAN device
(r36a3, as ``nobody``: 600 unread downloads held the proxy; 1,000 sockets
kept every new page out of the broadcaster). ``client(peer, local)`` names a
connection for the crowd: its address, or for a loopback client of another
user ``user:UID``, which the crowd and the relay shares count as a device.

Linux answers in one netlink request per connection (sock_diag: the client's
socket by its four-tuple; /proc/net/tcp would be read whole for each). Where
that cannot be asked (macOS, a kernel without sock_diag), every loopback
client is this user's, as before.
"""

from __future__ import annotations

import os
import socket
import struct

from sigreload import tcp_table

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
NO_COOKIE = 0xFFFFFFFF
USER_PREFIX = "user:"
HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
REQUEST = struct.Struct("=BBBBI")  # inet_diag_req_v2: family, protocol, extensions, pad, states
SOCKID = struct.Struct(">HH16s16s")  # inet_diag_sockid: source port, destination port, addresses (network order)
REST = struct.Struct("=III")  # ... its interface, its cookie (two words)
MESSAGE = struct.Struct("=BBBB")  # inet_diag_msg: family, state, timer, retransmits; the sockid; then
TAIL = struct.Struct("=IIIII")  # expires, receive queue, send queue, uid, inode
asking = hasattr(socket, "AF_NETLINK")


def owner(client: tuple[str, int], server: tuple[str, int]) -> int | None:
    """The uid owning the socket at ``client`` (address, port) connected to
    ``server``, on this machine; None when it cannot be told."""
    global asking
    if not asking:
        return None
    source, destination = tcp_table.address(client[0]), tcp_table.address(server[0])
    if source is None or destination is None:
        return None
    family = socket.AF_INET if source.version == 4 else socket.AF_INET6
    sockid = SOCKID.pack(client[1], server[1], source.packed.ljust(16, b"\0"), destination.packed.ljust(16, b"\0"))
    body = REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid + REST.pack(0, NO_COOKIE, NO_COOKIE)
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as netlink:
            netlink.settimeout(0.5)
            netlink.sendto(HEADER.pack(HEADER.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0) + body,
                           (0, 0))
            answer = netlink.recv(8192)
    except OSError:
        asking = False  # no sock_diag here: never asked again
        return None
    if len(answer) < HEADER.size + MESSAGE.size + SOCKID.size + REST.size + TAIL.size:
        return None  # an error (no such socket: it went away)
    _, kind, _, _, _ = HEADER.unpack_from(answer)
    if kind != SOCK_DIAG_BY_FAMILY:
        return None
    return int(TAIL.unpack_from(answer, HEADER.size + MESSAGE.size + SOCKID.size + REST.size)[3])


def client(peer: object, local: object) -> str:
    """What the crowds and shares call the client at ``peer`` of our socket at
    ``local`` (both as getpeername/getsockname give them): its address, or
    ``user:UID`` for a loopback client another user's process holds."""
    if not isinstance(peer, tuple) or len(peer) < 2:
        return ""  # a Unix socket: this machine, this user's (its folder's mode)
    address = str(peer[0])
    found = tcp_table.address(address)
    if found is None or not found.is_loopback or not isinstance(local, tuple):
        return address
    uid = owner((address, int(peer[1])), (str(local[0]), int(local[1])))
    return address if uid is None or uid == os.getuid() else f"{USER_PREFIX}{uid}"
