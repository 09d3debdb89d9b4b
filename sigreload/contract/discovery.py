"""Following the broadcaster: ``Locator`` finds the one a process signals (or
reads the message folder of), says once when there is none, and follows it
across restarts without waking while it runs (``until_exit``).

Which process is the broadcaster, the busy-port line and the commands that
signal it live in ``finding``; they are importable from here too (their old
home): ``discovery.find_server``, ``discovery.reload_main``, ...
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sigreload import platforms
from sigreload.contract import messages
from sigreload.contract.finding import (
    BROADCASTER_MODULE,
    BROADCASTER_NAMES,
    MOVES,
    PORT_MOVES,
    PYTHON_FLAGS,
    css_main,
    find_server,
    find_servers,
    in_use,
    listening,
    listens_on,
    port_owner,
    reload_main,
    runs_broadcaster,
    runs_sigreload,
    signal_server,
    sigreload_above,
    started_here,
    trigger,
)

__all__ = [
    "Locator", "until_exit", "BROADCASTER_MODULE", "BROADCASTER_NAMES", "MOVES", "PORT_MOVES", "PYTHON_FLAGS",
    "css_main", "find_server", "find_servers", "in_use", "listening", "listens_on", "port_owner", "reload_main",
    "runs_broadcaster", "runs_sigreload", "sigreload_above", "signal_server", "started_here", "trigger",
]

LOOK_FIRST, LOOKS, LOOK_MOST = 0.05, (1.0, 2.0, 4.0), 5.0  # seconds between looks for a broadcaster
LOOK_GONE = 1.0  # seconds between looks at a running broadcaster, where no pidfd says when it exits

log = logging.getLogger("sigreload.watch")


class Locator:
    """The broadcaster a watcher signals: the one on ``port``, or only the
    process ``pid`` when given (sigreload passes its own child). Said once
    when there is none; looked for again at the next change.

    ``folder()`` is its message folder (``messages.folder_of``); ``found``
    callbacks run when a broadcaster's folder is first known (a watcher says
    what it watches). ``follow`` keeps looking for one, in a thread, without
    waking while it runs."""

    def __init__(self, port: int, *, pid: int | None = None) -> None:
        self.port, self.pid = port, pid
        self.server: Any = None
        self.missing_said = False
        self.found: list[Callable[[], None]] = []
        self.folder_for: Any = None  # the process whose folder is known
        self.known: Path | None = None
        self.lock = threading.RLock()  # the watching thread and ``follow``'s
        self.next_look = 0.0  # ``lookup``'s next look
        self.next_folder_look = 0.0  # ``folder``'s next look at a broadcaster found without one

    def locate(self, quiet: bool = False) -> Any:
        """The broadcaster as a psutil.Process, or None (and one warning line unless ``quiet``)."""
        with self.lock:
            return self._locate(quiet)

    def _locate(self, quiet: bool) -> Any:
        # The very process we found (is_running compares create times: no reused PID).
        if self.server and self.server.is_running():
            return self.server
        try:
            self.server = self.given() if self.pid else find_server(self.port)
        except LookupError as exc:
            if not quiet:
                log.error("%s; not signalling either", exc)
            return None
        if self.server is None and not self.missing_said and not quiet:
            which = f"broadcaster PID {self.pid} does not listen" if self.pid else "no broadcaster listens"
            log.warning("%s on port %d; will look again at the next change", which, self.port)
            self.missing_said = True
        elif self.server is not None:
            self.missing_said = False
        return self.server

    def folder(self) -> Path | None:
        """The message folder of the broadcaster found (None: none found, it is
        gone, or it has none yet: it listens before it makes its folder, so a
        broadcaster without one is looked at again, at most every LOOK_FIRST)."""
        with self.lock:
            server = self.server if self.server and self.server.is_running() else None
            if server is None:
                return None
            if server is not self.folder_for and time.monotonic() >= self.next_folder_look:
                known = messages.folder_of(server)
                if known is None:
                    self.next_folder_look = time.monotonic() + LOOK_FIRST
                    return None
                self.folder_for, self.known = server, known
                for callback in self.found:
                    callback()
            return self.known if server is self.folder_for else None

    def lookup(self) -> Path | None:
        """``folder()``; while there is none, looking again (quietly) at most once
        a second: for a process without ``follow`` (the HTTP server, per request)."""
        with self.lock:
            found = self.folder()
            if found is None and time.monotonic() >= self.next_look:
                self.next_look = time.monotonic() + 1.0
                found = self.look()
            return found

    def look(self) -> Path | None:
        """Look for the broadcaster now (quietly); its folder."""
        with self.lock:
            self.locate(quiet=True)
            return self.folder()

    def wait_for(self, seconds: float) -> None:
        """Look for the broadcaster for up to ``seconds`` (both are started at once)."""
        end = time.monotonic() + seconds
        while self.look() is None and time.monotonic() < end:
            time.sleep(LOOK_FIRST)

    def follow(self, stop: threading.Event) -> None:
        """Until ``stop``, in a thread: while a broadcaster runs, sleep until it
        exits (Linux tells: pidfd); then look for the next one after 1, 2, 4,
        then every LOOK_MOST seconds."""
        while not stop.is_set():
            server = self.server if self.folder_for is not None and self.folder_for is self.server else None
            if server is not None and server.is_running():
                until_exit(server.pid, stop)
            for wait in LOOKS:
                if stop.wait(wait):
                    return
                if self.look() is not None:
                    break
            else:
                while self.look() is None:
                    if stop.wait(LOOK_MOST):
                        return


    def given(self) -> Any:
        """The broadcaster named by ``pid``, if it is ours, runs the broadcaster and listens."""
        import psutil

        try:
            proc = psutil.Process(self.pid)
            runs = runs_broadcaster(proc.cmdline()) and proc.uids().real == os.getuid()
        except psutil.Error:
            return None
        return proc if runs and listens_on(proc, self.port) else None


def until_exit(pid: int, stop: threading.Event) -> None:
    """Sleep until process ``pid`` exits (Linux: a pidfd, no polling), or, where
    there is no pidfd, until ``stop`` (looked at with the PID every LOOK_GONE)."""
    fd = platforms.pidfd(pid)
    if fd is None:
        while not stop.wait(LOOK_GONE) and platforms.runs(pid):
            pass
        return
    try:
        select.select([fd], [], [])
    finally:
        os.close(fd)
