"""How many connections a server holds, and which one goes first when it is
full: a few hundred slow or idle sockets must cost the developer nothing.

``Crowd`` is the policy, a pure object (no sockets, no clock): at most
``most`` connections in all (below the open-files limit: ``most_connections``),
at most ``per_address`` from one address that is not loopback (a device on
the LAN; another local user's loopback client is "user:UID", as
``peer_user.client`` names it); a connection that would pass either cap lets
go of the connection that has been idle longest (one that waits for a
request, or for the rest of its head), else of the one whose answer has
waited longest for its client to take it (a download never read), never of
one being answered at speed, and is refused at once only when there is none.
The servers (the file server's threads, the proxy, the broadcaster) tell it when a
connection starts and ends an answer, and close what it lets go.

``Reads`` gives a connection's reads a deadline that no trickled byte puts
off. ``quiet_accept_errors`` keeps asyncio's "accept() out of system resource" (a
full file table) to one line per second instead of a traceback per accept.
"""

from __future__ import annotations

import asyncio
import ctypes
import io
import ipaddress
import logging
import os
import resource
import socket
import time
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

from sigreload.serving.peer_user import USER_PREFIX

log = logging.getLogger("sigreload.limits")
SPARE_FILES = 40  # open files kept free besides those open at start: a pass of accepts (16), those let go meanwhile
PER_ADDRESS = 64  # connections from one LAN device (a browser opens 6 per site; tabs add one socket each)
RELAYS_PER_ADDRESS = 16  # relayed page sockets from one LAN device (a tab each)
LAN_RELAYS = 128  # relayed page sockets from the LAN together (fewer where the open-files limit is low)
ROOM = 64  # connections kept for this machine (the developer's pages, the relays) when the LAN takes the rest
SAID_EVERY = 1.0  # seconds between two lines about a full file table
TRIM_AFTER = 1.0  # seconds after connections went before freed memory is given back to the system
PATIENCE = 60.0  # seconds a request's head may take where a server sets no timeout


def most_connections(wanted: int) -> int:
    """``wanted``, or fewer where the open-files limit (ulimit -n) is lower:
    a connection that would pass it is never accepted, so it could let
    nobody go (asked at start: the files open then count)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(8, min(wanted, soft - open_files() - SPARE_FILES))


def open_files() -> int:
    """How many files this process has open (Linux and macOS list them in /dev/fd)."""
    try:
        return len(os.listdir("/dev/fd"))
    except OSError:
        return 16


def loopback(address: str) -> bool:
    """Whether ``address`` (a peer's) is this machine's room: no per-address cap
    there; ``peer_user.client``'s "user:UID" (another user's loopback client) is not."""
    if address.startswith(USER_PREFIX):
        return False
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return True  # a Unix socket, or nothing known: this machine


class Crowd:
    """The connections of one server; keys are anything hashable (a socket, a protocol)."""

    def __init__(self, most: int, per_address: int = PER_ADDRESS, *, room: int = ROOM) -> None:
        self.most, self.per_address = most, per_address
        self.lan_most = most - min(room, most // 4)  # the LAN together: the rest is kept for this machine
        self.lan = 0  # connections from the LAN now
        self.members: dict[Hashable, str] = {}  # connection -> its peer's address
        self.idle: dict[Hashable, None] = {}  # the idle ones, longest idle first (insertion order)
        self.stuck: dict[Hashable, None] = {}  # those whose write waits for their client, longest first
        self.addresses: Counter[str] = Counter()

    def join(self, key: Hashable, address: str) -> list[Hashable] | None:
        """Let ``key`` (from ``address``, idle until ``busy``) in: the connections
        to close for it (none, or the one idle longest), or None when it is
        refused (everyone is being answered)."""
        from_lan = not loopback(address)
        if from_lan and self.lan >= self.lan_most and self.addresses[address] < self.per_address \
                and len(self.members) < self.most:  # the LAN's share is full: one of the LAN's goes, or none
            victim = next((k for k in (*self.idle, *self.stuck) if not loopback(self.members[k])), None)
            if victim is None:
                return None
            self.leave(victim)
            return [victim, *(self.join(key, address) or ())]  # under every cap now: let in
        crowded = from_lan and self.addresses[address] >= self.per_address
        if crowded or len(self.members) >= self.most:
            victim = next((k for k in (*self.idle, *self.stuck) if not crowded or self.members[k] == address), None)
            if victim is None:
                return None
            self.leave(victim)
            gone = [victim]
        else:
            gone = []
        self.members[key] = address
        self.addresses[address] += 1
        self.lan += from_lan
        self.idle[key] = None
        return gone

    def busy(self, key: Hashable) -> bool:
        """``key`` is being answered: it is never let go meanwhile (False: it
        was let go already, and is to be closed)."""
        self.idle.pop(key, None)
        return key in self.members

    def rest(self, key: Hashable) -> None:
        """``key`` waits again (for its next request): the last to go among the idle."""
        if key in self.members:
            self.idle.pop(key, None)
            self.idle[key] = None

    def writing(self, key: Hashable, waits: bool) -> None:
        """``key``'s write starts (``waits``: its client has yet to take it) or is done."""
        if waits and key in self.members:
            self.stuck[key] = None
        else:
            self.stuck.pop(key, None)

    def leave(self, key: Hashable) -> None:
        """``key`` is closed (idempotent)."""
        address = self.members.pop(key, None)
        self.idle.pop(key, None)
        self.stuck.pop(key, None)
        if address is not None:
            self.lan -= not loopback(address)
            self.addresses[address] -= 1
            if self.addresses[address] <= 0:
                del self.addresses[address]

    def longest_idle(self, count: int) -> list[Hashable]:
        """Let go of up to ``count`` of the connections idle longest: which to close."""
        gone = list(self.idle)[:count]
        for key in gone:
            self.leave(key)
        return gone

    def __len__(self) -> int:
        return len(self.members)


class Reads(io.RawIOBase):
    """Reads from ``sock``, each within what is left until ``deadline()``
    (time.monotonic()), and within ``timeout`` of silence: the socket's own
    timeout restarts with every byte (130 clients trickling one byte every
    10 s held every thread of the file server for good)."""

    def __init__(self, sock: socket.socket, deadline: Callable[[], float], timeout: float | None) -> None:
        super().__init__()
        self.sock, self.deadline, self.timeout = sock, deadline, timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline() - time.monotonic()
        if left <= 0:
            raise TimeoutError("no whole request in time")
        self.sock.settimeout(min(left, self.timeout or left))
        try:
            return int(self.sock.recv_into(buffer))
        finally:
            self.sock.settimeout(self.timeout)


class Writes(io.BufferedIOBase):
    """Writes to ``sock``, each said to ``waiting`` (True, then False once the
    client took it): a full server lets go of the one that waited longest."""

    def __init__(self, sock: socket.socket, waiting: Callable[[bool], None]) -> None:
        super().__init__()
        self.sock, self.waiting = sock, waiting

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.waiting(True)
        try:
            self.sock.sendall(data)
        finally:
            self.waiting(False)
        return memoryview(data).nbytes


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, full: Callable[[], None] = lambda: None,
                        clock: Any = time.monotonic) -> None:
    """Install an exception handler on ``loop`` that says a full file table
    (EMFILE, ENFILE, ENOBUFS on accept: asyncio retries a second later) in one
    line per SAID_EVERY seconds and calls ``full`` (to let the connections idle
    longest go), and passes everything else to the default."""
    said = [-SAID_EVERY]

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "out of system resource" not in str(context.get("message", "")):
            loop.default_exception_handler(context)
            return
        full()
        if clock() - said[0] >= SAID_EVERY:
            said[0] = clock()
            error = context.get("exception")
            why = getattr(error, "strerror", None) or error
            log.warning("cannot accept a connection (%s): new ones wait; "
                        "raise the open-files limit (ulimit -n) if this lasts", why)

    loop.set_exception_handler(handler)


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, which gives the free memory at the top of the
    heap and in free pages back to the system; None where there is no glibc."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


class Trimmer:
    """Gives freed memory back to the system (``malloc_trim``) TRIM_AFTER
    seconds after the last connection went: glibc keeps what 600 paused
    downloads' buffers freed (450-660 MB) for the process otherwise."""

    def __init__(self) -> None:
        self.handle: asyncio.TimerHandle | None = None
        self.trim = malloc_trim()

    def soon(self) -> None:
        """Trim once no connection went for TRIM_AFTER seconds (idempotent)."""
        if self.trim is None:
            return
        if self.handle is not None:
            self.handle.cancel()
        self.handle = asyncio.get_running_loop().call_later(TRIM_AFTER, self.trim, 0)
