"""Linux's TCP tables (/proc/net/tcp and tcp6) read directly: a fraction of a
millisecond where psutil's listings take tens on a busy machine. Callers ask
``platforms.shortcuts()`` first: macOS has no /proc (see platforms.py)."""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterator

TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an address (an IPv4-mapped IPv6 one as IPv4); None when it is none."""
    try:
        found = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
    return (found.ipv4_mapped if isinstance(found, ipaddress.IPv6Address) else None) or found


def endpoint(hexed: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address | None, int]:
    """An address and port as /proc/net/tcp* write them (each 32-bit word in host order)."""
    raw, port = bytes.fromhex(hexed.rsplit(":", 1)[0]), int(hexed.rsplit(":", 1)[1], 16)
    words = [raw[i:i + 4][::-1] if sys.byteorder == "little" else raw[i:i + 4] for i in range(0, len(raw), 4)]
    return address(str(ipaddress.ip_address(b"".join(words)))), port


def rows() -> Iterator[list[str]]:
    """The rows of /proc/net/tcp and tcp6, split in fields."""
    for table in TABLES:
        try:
            with open(table) as f:
                yield from (line.split() for line in f.read().splitlines()[1:])
        except OSError:
            continue


def listening_rows() -> Iterator[list[str]]:
    """The listening rows of /proc/net/tcp and tcp6: the kernel writes them
    first, so the rest is never read (600 connections waiting on an app, and
    thousands in TIME_WAIT, made each look read a large table in the proxy's
    event loop: pages waited seconds)."""
    for table in TABLES:
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) < 5 or fields[3] != "0A":
                        break
                    yield fields
        except OSError:
            continue


def accept_queue_empty(port: int) -> bool:
    """Whether no connection waits in the accept queue of a socket listening on ``port``."""
    for fields in listening_rows():
        local, queues = fields[1], fields[4]
        if int(local.rsplit(":", 1)[1], 16) == port and int(queues.split(":")[1], 16) > 0:
            return False
    return True


def established_on(port: int) -> bool:
    """Whether a connection whose local port is ``port`` is established (a page's socket on the broadcaster's)."""
    suffix = f":{port:04X}"
    for table in TABLES:
        try:
            with open(table) as f:
                next(f, None)  # the header
                if any((fields := line.split())[1].endswith(suffix) and fields[3] == "01" for line in f):
                    return True
        except (OSError, IndexError):
            continue
    return False
