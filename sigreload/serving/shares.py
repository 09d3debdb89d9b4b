"""Who may have a relayed page socket (the file server's and the proxy's
``/_sigreload/socket``): each holds two files (the page's, the broadcaster's),
and is busy for as long as its page is open, so no ``limits.Crowd`` lets it
go. This machine's pages always get one; the LAN's at most ``lan_most``
together, and ``limits.RELAYS_PER_ADDRESS`` from one device.

A device is an on-link peer's hardware address where the system says it
(Linux's neighbour table, IPv4), an IPv6 peer's /64 (its addresses are
free to make), else its address: r36a3 held all 128 of the
LAN's relays from one machine with 60 addresses of its own, and a phone's
page got 503. And when the LAN's share is full, a device with fewer relays
than the one holding most takes that one's oldest (max-min fair): however
many addresses and hardware addresses an attacker makes up, a phone's few
tabs get theirs.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable

from sigreload.serving import limits

ARP_TABLE = "/proc/net/arp"  # Linux: IP address, HW type, flags, HW address, mask, device
ASK_EVERY = 0.25  # seconds between two reads of the neighbour table for an address it did not hold


class Neighbours:
    """IPv4 address -> hardware address of the peers on this machine's links
    (Linux's /proc/net/arp; nothing elsewhere). An off-link peer (behind a
    router) is not in it: it is keyed by its address, never by the router's."""

    def __init__(self, path: str = ARP_TABLE) -> None:
        self.path, self.table, self.read_at = path, dict[str, str](), -ASK_EVERY

    def hardware(self, address: str) -> str | None:
        if address not in self.table and time.monotonic() - self.read_at >= ASK_EVERY:
            self.read_at = time.monotonic()
            self.table = read_neighbours(self.path)
        return self.table.get(address)


def read_neighbours(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="ascii", errors="replace") as table:
            rows = [line.split() for line in table.readlines()[1:]]
    except OSError:
        return {}
    return {row[0]: row[3].lower() for row in rows
            if len(row) >= 4 and row[3] not in ("00:00:00:00:00:00", "") and int(row[2], 16) & 0x2}  # complete


def device(address: str, neighbours: Neighbours) -> str:
    """What stands for the device at ``address`` (an IPv4-mapped one too)."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    plain = str(mapped or ip)
    if (mapped or ip).version == 6:  # no hardware address known here: its /64, where addresses are free to make
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))  # (r36a4: 200 of one device shut phones out)
    hardware = neighbours.hardware(plain)
    return f"hw {hardware}" if hardware else plain


class Shares:
    """The relays of one server; thread-safe. ``take`` gives a ticket (or None:
    refused) that ``give`` returns when the relay closes."""

    def __init__(self, lan_most: int, neighbours: Neighbours | None = None) -> None:
        self.lan_most, self.neighbours = lan_most, neighbours or Neighbours()
        self.held: dict[str, dict[object, Callable[[], None]]] = {}  # device -> its relays' closers, oldest first
        self.devices: dict[object, str] = {}  # ticket -> its device
        self.lock = threading.Lock()

    def take(self, address: str, close: Callable[[], None]) -> object | None:
        """A ticket for a relay of a page at ``address`` (``close`` ends it, should
        a device with fewer relays need its place), or None when refused."""
        ticket = object()
        if limits.loopback(address):
            return ticket
        with self.lock:
            key = device(address, self.neighbours)
            mine = self.held.get(key, {})
            if len(mine) >= limits.RELAYS_PER_ADDRESS:
                return None
            close_victim: Callable[[], None] | None = None
            if len(self.devices) >= self.lan_most:
                biggest = max(self.held, key=lambda k: len(self.held[k]))
                if len(self.held[biggest]) <= len(mine) + 1:
                    return None  # as fair as it gets: no one has more than one more than this device
                close_victim = self.forget(next(iter(self.held[biggest])))
            self.held.setdefault(key, {})[ticket] = close
            self.devices[ticket] = key
        if close_victim is not None:
            close_victim()
        return ticket

    def give(self, ticket: object) -> None:
        """The relay of ``ticket`` closed (idempotent)."""
        with self.lock:
            self.forget(ticket)

    def forget(self, ticket: object) -> Callable[[], None]:
        key = self.devices.pop(ticket, None)
        if key is None:
            return lambda: None
        close = self.held[key].pop(ticket)
        if not self.held[key]:
            del self.held[key]
        return close

    def __len__(self) -> int:
        return len(self.devices)


def lan_relays() -> Shares:
    """The relay shares of one server: at most a quarter of the connections the open-files limit allows."""
    return Shares(max(limits.RELAYS_PER_ADDRESS,
                      min(limits.LAN_RELAYS, limits.most_connections(4 * limits.LAN_RELAYS) // 4)))
