"""Where sigreload's servers listen: every address a page's URL may reach.

``localhost`` resolves to 127.0.0.1 and to ::1, and browsers try both. A
server on 127.0.0.1 alone leaves [::1] at its port to anyone: another local
user listening there would serve your pages, or their script in them. So a
loopback server listens on both loopbacks (a LAN server on both families'
wildcards), and a port that someone else holds on either is refused at start.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

LOOPBACKS = ("127.0.0.1", "::1", "localhost")
WILDCARDS = ("", "0.0.0.0", "::")


def has_ipv6_loopback() -> bool:
    """Whether this machine has ::1 (a container may have no IPv6 at all)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def hosts(host: str | None) -> list[str]:
    """The addresses a server asked to listen on ``host`` binds, the asked one first."""
    host = host or ""
    if host in WILDCARDS or unspecified(host):
        return ["0.0.0.0", "::"] if has_ipv6_loopback() else ["0.0.0.0"]
    if host in LOOPBACKS:
        return ["127.0.0.1", "::1"] if has_ipv6_loopback() else ["127.0.0.1"]
    return [host]


def unspecified(host: str) -> bool:
    """Whether ``host`` is "every address" however spelled: ``0``, ``0.0``, ``::0``,
    ``000.000.000.000`` bound every address without LAN mode's warning (r32a5)."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        pass
    try:
        return socket.inet_aton(host) == bytes(4)
    except OSError:
        return False


def shown(host: str) -> str:
    """An address as a URL shows it: [::1]."""
    return f"[{host}]" if ":" in host else host


def taken(exc: OSError, host: str) -> OSError:
    """``exc`` (from binding ``host``), naming the address: the one line says which."""
    return OSError(exc.errno, exc.strerror, host) if exc.errno == errno.EADDRINUSE else exc


def bind(host: str | None | list[str], port: int, backlog: int = 128) -> list[socket.socket]:
    """Listening sockets on ``port`` of every address ``host`` stands for (or
    of each of a list of ``hosts``; port 0: one free port, the same on each).
    Raises OSError, naming the address (its ``filename``) when one is taken."""
    retries = 5 if port == 0 else 0  # a free port picked on one address may be taken on the other
    while True:
        sockets: list[socket.socket] = []
        try:
            for address in host if isinstance(host, list) else hosts(host):
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # [::] beside 0.0.0.0
                try:
                    sock.bind((address, port))
                except OSError as exc:
                    raise taken(exc, address) from None
                sock.listen(backlog)
                port = port or sock.getsockname()[1]
        except OSError as exc:
            for sock in sockets:
                sock.close()
            if exc.errno != errno.EADDRINUSE or len(sockets) < 2 or retries == 0:
                raise
            retries, port = retries - 1, 0
            continue
        return sockets


def probe(host: str | None, port: int) -> OSError | None:
    """Whether a server could listen on ``port`` of every address ``host``
    stands for, now: None, or the error ``bind`` raises (naming the address)."""
    try:
        sockets = bind(host, port)
    except OSError as exc:
        return exc
    for sock in sockets:
        sock.close()
    return None


def listened(host: str | None, port: int) -> bool:
    """Whether a server accepts connections on ``port`` of ``host`` (loopback
    for a wildcard): False when the port is only some connection's own end
    (an outgoing connection, one closing), which no one can be asked to stop."""
    address = "::1" if host in ("::", "::1") else "127.0.0.1" if host in (None, *WILDCARDS, "localhost") else host
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False
