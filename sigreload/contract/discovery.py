"""Finding the broadcaster and signalling it (psutil), and the commands that do
just that: ``sigreload-reload`` (SIGUSR1) and ``sigreload-css`` (SIGUSR2).

A process is the broadcaster when it is ours (same user), its command line
runs the broadcaster, and it listens on the port: all three, or it is not
signalled. psutil refuses to signal a PID that was reused meanwhile.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from sigreload import command_line, interpreter, options, platforms
from sigreload.contract import messages

BROADCASTER_MODULE = "sigreload.broadcaster"
# the console script, and the repository's runnable file (python reload_server.py)
BROADCASTER_NAMES = ("sigreload-broadcast", "reload_server.py")
LOOK_FIRST, LOOKS, LOOK_MOST = 0.05, (1.0, 2.0, 4.0), 5.0  # seconds between looks for a broadcaster
LOOK_GONE = 1.0  # seconds between looks at a running broadcaster, where no pidfd says when it exits
PYTHON_FLAGS = interpreter.PYTHON_FLAGS
# A child's --port-flag starting with MOVES: its port is a default one that sigreload moves when busy.
# Taken meanwhile (another user bound it after sigreload looked), the child exits with PORT_MOVES and
# says nothing: sigreload says the one line and starts them again on the next free port.
MOVES, PORT_MOVES = "moves:", 75

log = logging.getLogger("sigreload.watch")


def runs_broadcaster(cmdline: Sequence[str]) -> bool:
    """True when a command line RUNS the broadcaster (not merely names it):
    ``python -m sigreload.broadcaster`` (or sigreload's own bootstrap of it on
    Python 3.10), ``sigreload-broadcast`` or ``python reload_server.py``."""
    args = list(cmdline)
    if interpreter.runs_module(args, BROADCASTER_MODULE):
        return True
    if args and os.path.basename(args[0]).startswith("python"):
        args = [a for a in args[1:] if a not in PYTHON_FLAGS]
    return bool(args) and os.path.basename(args[0]) in BROADCASTER_NAMES


def listening(conn: Any, port: int | None) -> bool:
    """True when psutil connection ``conn`` is a listening socket on ``port`` (None: any)."""
    return platforms.is_listening(conn, port)


def listens_on(proc: Any, port: int | None) -> bool:
    """True when process ``proc`` (a psutil.Process or a PID) has a listening
    TCP socket on ``port`` (None: any; its own sockets only: cheap). False when it is gone."""
    import psutil

    try:
        proc = psutil.Process(proc) if isinstance(proc, int) else proc
        return any(listening(c, port) for c in proc.net_connections(kind="tcp"))
    except (psutil.Error, OSError):
        return False


def port_owner(port: int, host: str | None = None) -> int | None:
    """PID of this user's process that listens on ``port`` (on ``host``, when
    given); None when none of ours does (another user's, or nothing)."""
    return min(platforms.listeners(port, host), default=None)


def runs_sigreload(cmdline: Sequence[str]) -> bool:
    """True when a command line runs sigreload itself (the command that starts
    the three processes): ``python -m sigreload`` or the ``sigreload`` script."""
    args = list(cmdline)
    if interpreter.runs_module(args, "sigreload"):
        return True
    if args and os.path.basename(args[0]).startswith("python"):
        args = [a for a in args[1:] if a not in PYTHON_FLAGS]
    return bool(args) and os.path.basename(args[0]) == "sigreload"


def sigreload_above(pid: int) -> int | None:
    """The PID of the running ``sigreload`` that started process ``pid`` (its
    broadcaster, HTTP server or watcher), or None."""
    import psutil

    try:
        parent = psutil.Process(pid).parent()
        return parent.pid if parent is not None and runs_sigreload(parent.cmdline()) else None
    except (psutil.Error, OSError):
        return None


def in_use(port: int, flag: str, host: str | None = None) -> str:
    """The one line for a busy port: where (``host``, when only one of the
    addresses is), who holds it (when psutil can tell: not another user's
    process; a running sigreload, not its child, when the holder is one of
    its three processes) and the flag to pass (``--port``), or the setting to change
    (``WS_PORT=``, under ``r``). A flag marked MOVES exits with PORT_MOVES instead.
    """
    from sigreload import listening

    if flag.startswith(MOVES):
        raise SystemExit(PORT_MOVES)
    owner = port_owner(port, host)
    above = sigreload_above(owner) if owner else None  # the PID the user started, not its child's
    by = (f" by sigreload (PID {above})" if above else f" by PID {owner}" if owner
          else " by another process (another user's?)" if host else "")
    on = f" on {host if ':' not in host else f'[{host}]'}" if host else ""
    advice = f"set {flag}<another port>" if flag.endswith("=") else f"pass {flag}"
    if not owner and not listening.listened(host, port):  # no server: a connection's own end holds it
        return f"port {port} is held{on} by a connection's end, not a server; try again in a moment or {advice}"
    return f"port {port} is in use{on}{by}; stop that process or {advice}"


def find_server(port: int | None = command_line.WS_PORT) -> Any:
    """The broadcaster listening on ``port``, as a psutil.Process, or None.

    Same user, a command line that runs the broadcaster, a listening socket
    on ``port``: all three, or it is not ours. Two candidates raise LookupError.
    ``port`` None: this user's one broadcaster on any port (sigreload moves
    off a busy default port) that made its message folder; of several, the
    one started in this folder, else the one on the default port.
    """
    found = find_servers(port)
    if port is None:  # on any port: only one that made its message folder is a broadcaster of ours
        found = [p for p in found if messages.folder_of(p) is not None]  # (a decoy named reload_server.py is not)
    if port is None and len(found) > 1:  # the one started here (another project's may hold the default port)
        found = [p for p in found if started_here(p)] or found
    if port is None and len(found) > 1:
        found = [p for p in found if listens_on(p, command_line.WS_PORT)] or found
    if len(found) > 1:
        pids = ", ".join(str(p.pid) for p in found)
        where = f"two broadcasters listen on port {port}" if port else "broadcasters run on several ports"
        raise LookupError(f"{where} (PIDs {pids})")
    return found[0] if found else None


def started_here(proc: Any) -> bool:
    """Whether process ``proc`` runs in the current folder (False when it is gone)."""
    import psutil

    try:
        return bool(proc.cwd() == os.getcwd())
    except psutil.Error:
        return False


def find_servers(port: int | None) -> list[Any]:
    """This user's broadcasters listening on ``port`` (None: on any), as psutil.Process."""
    import psutil

    found = []
    for proc in psutil.process_iter(["uids", "cmdline"]):
        info = proc.info
        if not info["uids"] or info["uids"].real != os.getuid():
            continue
        if proc.pid != os.getpid() and runs_broadcaster(info["cmdline"] or ()):
            if listens_on(proc, port):
                found.append(proc)
    return found


def signal_server(proc: Any, signum: int) -> bool:
    """Signal ``proc``; False when it is gone (psutil refuses a reused PID)."""
    import psutil

    try:
        proc.send_signal(signum)
        return True
    except psutil.NoSuchProcess:
        return False


class Locator:
    """The broadcaster a watcher signals: the one on ``port``, or only the
    process ``pid`` when given (sigreload passes its own child). Said once
    when there is none; looked for again at the next change.

    ``folder()`` is its message folder (``messages.folder_of``); ``found``
    callbacks run when a broadcaster's folder is first known (a watcher says
    what it watches). ``follow`` keeps looking for one, in a thread, without
    waking while it runs."""

    def __init__(self, port: int, pid: int | None = None) -> None:
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


def trigger(signame: str, argv: Iterable[str] | None = None) -> None:
    """Find the broadcaster and send it one signal; exit 1 when there is none."""
    command_line.require_signals()
    what = "reload every page" if signame == "SIGUSR1" else "refresh every page's stylesheets"
    parser = command_line.parser(f"Send {signame} to the broadcaster: {what}.")
    args = options.add(parser, "signal").parse_args(None if argv is None else list(argv))
    try:
        proc = find_server(args.ws_port)
    except LookupError as exc:
        sys.exit(f"sigreload: {exc}; signal the right one by hand")
    if proc is None or not signal_server(proc, getattr(signal, signame)):
        where = f"on port {args.ws_port}" if args.ws_port else "here"
        sys.exit(f"sigreload: no broadcaster listens {where}; "
                 "start one with `r` or `sigreload-broadcast`")
    print(f"sigreload: sent {signame} to broadcaster PID {proc.pid}")


def reload_main(argv: Iterable[str] | None = None) -> None:
    """sigreload-reload: reload every connected page."""
    trigger("SIGUSR1", argv)


def css_main(argv: Iterable[str] | None = None) -> None:
    """sigreload-css: refresh the stylesheets of every connected page."""
    trigger("SIGUSR2", argv)
