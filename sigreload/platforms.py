"""What differs between Linux and macOS, in one place: every Linux-only
shortcut, and the portable path that an ordinary macOS user gets.

The shortcuts (Linux only): the system-wide connection listing
(``psutil.net_connections()``: root-only on macOS, psutil#1219), reads from
``/proc``, pidfds, ``PR_SET_PDEATHSIG`` with ``SIGRTMIN``. Everything else in
sigreload asks this module, so one switch turns them all off:
``SIGRELOAD_PORTABLE=1`` in the environment (the tests run the app-server,
discovery, busy-port, stop and watcher-end tests a second time with it) makes
Linux take the paths macOS takes, with the system-wide listing denied as it
is there for a user who is not root. On macOS the portable paths are simply
what runs.

The portable paths look only at this user's own processes
(``Process.net_connections()`` works for them everywhere); the ones that
listened on a port last are looked at first, so a look is a few ms.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

from sigreload import tcp_table

PORTABLE_ENV = "SIGRELOAD_PORTABLE"  # "1": no Linux shortcut, as on macOS
POLL = 0.25  # seconds between two looks at a process whose exit no pidfd announces


def shortcuts() -> bool:
    """Whether the Linux shortcuts may be taken (Linux, and the switch is off).
    Read at each call: a test sets the switch for what it starts."""
    return sys.platform.startswith("linux") and os.environ.get(PORTABLE_ENV, "") in ("", "0")


def net_connections() -> list[Any]:
    """Every TCP socket on the machine (psutil.net_connections). Raises
    psutil.AccessDenied where a user may not list them: macOS without root,
    and anywhere with the switch on."""
    import psutil

    if not shortcuts():
        raise psutil.AccessDenied(msg="the system-wide connection listing needs root on macOS")
    return list(psutil.net_connections(kind="tcp"))


def is_listening(conn: Any, port: int | None) -> bool:
    """True when psutil connection ``conn`` is a listening socket on ``port`` (None: any)."""
    import psutil

    return conn.status == psutil.CONN_LISTEN and bool(conn.laddr) and port in (None, conn.laddr.port)


def own_connections(proc: Any) -> list[Any]:
    """The TCP sockets of process ``proc`` (a psutil.Process or a PID); [] when gone or not ours."""
    import psutil

    try:
        proc = psutil.Process(proc) if isinstance(proc, int) else proc
        return list(proc.net_connections(kind="tcp"))
    except (psutil.Error, OSError):
        return []


_seen: dict[int, set[int]] = {}  # port -> who listened there at the last look (looked at first next time)


def listeners(port: int, host: str | None = None) -> set[int]:
    """PIDs of this user's processes listening on TCP ``port`` (on ``host``,
    when given). Linux: from the system-wide listing (PIDs of other users'
    sockets are not shown to us). Elsewhere: the processes that listened at
    the last look, and their children, when one of them still listens (a
    few ms); otherwise every process of this user (a few ms each)."""
    import psutil

    def on(conn: Any) -> bool:
        return is_listening(conn, port) and host in (None, conn.laddr.ip)

    if shortcuts():
        try:
            return {c.pid for c in net_connections() if c.pid and on(c)}
        except (psutil.Error, OSError):
            return set()
    found = {pid for pid in _seen.get(port, ()) if any(on(c) for c in own_connections(pid))}
    if found:
        found |= {kid for pid in found for kid in children(pid) if any(on(c) for c in own_connections(kid))}
    else:
        uid = os.getuid()
        found = {p.pid for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid
                 and any(on(c) for c in own_connections(p))}
    if host is None:
        _seen[port] = found
    return found


def started_at(pid: int) -> float | None:
    """When process ``pid`` started, as time.time() would have said; None when gone.

    Linux: from its start in clock ticks since boot (/proc; psutil adds a boot
    time rounded to whole seconds: off by up to 1 s, so with the switch on its
    time since boot is used). macOS: psutil's create_time is exact.
    """
    if shortcuts():
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
        except (OSError, IndexError, ValueError):
            return None
        return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK"))
    import psutil

    try:
        proc = psutil.Process(pid)
        if sys.platform.startswith("linux"):
            since_boot = float(proc.create_time()) - float(psutil.boot_time())  # psutil's whole-second boot time out
            return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot)
        return float(proc.create_time())
    except psutil.Error:
        return None


def children(pid: int) -> set[int]:
    """PIDs of ``pid``'s children (Linux: read from /proc in a fraction of a ms)."""
    if shortcuts():
        try:
            found: set[int] = set()
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    found.update(int(c) for c in f.read().split())
            return found
        except (OSError, ValueError):
            pass
    import psutil

    try:
        return {c.pid for c in psutil.Process(pid).children()}
    except psutil.Error:
        return set()


def accepting(port: int) -> bool:
    """False when the app's listening socket on ``port`` has connections that
    nothing accepts; True otherwise (and when we cannot tell).

    Linux: its accept queue in /proc/net/tcp*. Elsewhere: our own connections
    to ``port`` (the proxy's, waiting for an answer) each have their other
    end in a process of this user that listens there, or wait in its queue.
    """
    import psutil

    if shortcuts():
        return tcp_table.accept_queue_empty(port)
    ours = {c.laddr for c in own_connections(os.getpid()) if c.raddr and c.raddr.port == port
            and c.status == psutil.CONN_ESTABLISHED}
    if not ours:
        return True
    pids = listeners(port)
    if not pids:
        return True  # another user's app: we cannot tell
    # Whoever accepts holds the listening socket too (Werkzeug's and uvicorn's children, gunicorn's workers).
    held = {c.raddr for pid in pids for c in own_connections(pid) if c.raddr and c.laddr.port == port}
    return ours <= held


def taken(port: int, client_port: int) -> bool:
    """Whether our loopback connection from ``client_port`` to ``port`` was
    accepted by the app (not waiting in its listening socket's queue).

    Linux: accepted sockets are listed in /proc/net/tcp* with an inode, queued
    ones without. Elsewhere: a process of this user that listens on ``port``
    holds the connection's other end (psutil, per process).
    """
    if shortcuts():
        for fields in tcp_table.rows():
            if (int(fields[1].rsplit(":", 1)[1], 16) == port and int(fields[2].rsplit(":", 1)[1], 16) == client_port
                    and fields[3] == "01"):
                return fields[9] != "0"
        return False
    return any(c.raddr and c.laddr.port == port and c.raddr.port == client_port
               for pid in listeners(port) for c in own_connections(pid))


def same_user(host: str, port: int, server_port: int) -> bool:
    """Whether the client at (``host``, ``port``) of our ``server_port`` is on loopback and a process of this
    user holds its socket. Linux: its row's uid in /proc/net/tcp*. Elsewhere: this user's processes' sockets."""
    import psutil
    client = tcp_table.address(host)
    if client is None or not client.is_loopback:
        return False
    if shortcuts():
        return any(fields[3] == "01" and tcp_table.endpoint(fields[1]) == (client, port)
                   and int(fields[2].rsplit(":", 1)[1], 16) == server_port and int(fields[7]) == os.getuid()
                   for fields in tcp_table.rows())
    return any(p.info["uids"] and p.info["uids"].real == os.getuid() and any(
        c.laddr and c.laddr.port == port and tcp_table.address(c.laddr.ip) == client for c in own_connections(p))
        for p in psutil.process_iter(["uids"]))


def pidfd(pid: int) -> int | None:
    """A pidfd of process ``pid`` (readable once it exits: Linux), or None:
    then poll ``runs`` every POLL seconds."""
    if not shortcuts() or not hasattr(os, "pidfd_open"):
        return None
    try:
        return int(os.pidfd_open(pid))
    except OSError:
        return None


def runs(proc: Any) -> bool:
    """Whether process ``proc`` (a psutil.Process, safe from PID reuse, or a
    PID) still runs: it exists and is not a zombie."""
    import psutil

    try:
        proc = psutil.Process(proc) if isinstance(proc, int) else proc
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def on_exit(pid: int, callback: Callable[[], None]) -> Callable[[], None]:
    """Have the running asyncio loop call ``callback`` once process ``pid``
    exits (at once: a pidfd; elsewhere within POLL seconds, psutil looking
    at the very process, safe from PID reuse). Returns what stops that
    (idempotent; ``callback`` may call it)."""
    import asyncio  # here: only the broadcaster needs it

    import psutil

    loop = asyncio.get_running_loop()
    fd = pidfd(pid)
    if fd is not None:
        def close() -> None:
            if loop.remove_reader(fd):
                os.close(fd)

        def exited() -> None:
            close()
            callback()
        loop.add_reader(fd, exited)
        return close
    try:
        proc: Any = psutil.Process(pid)
    except psutil.Error:
        proc = None
    timers: list[Any] = []  # asyncio.TimerHandle

    def look() -> None:
        if proc is not None and runs(proc):
            timers.append(loop.call_later(POLL, look))
        else:
            callback()
    timers.append(loop.call_later(POLL, look))
    return lambda: timers[-1].cancel()


def parent_death_signal() -> int | None:
    """The signal the kernel can send us when our parent exits (Linux:
    PR_SET_PDEATHSIG with SIGRTMIN), or None: then the lifeline or polling."""
    import signal

    return getattr(signal, "SIGRTMIN", None) if shortcuts() else None
