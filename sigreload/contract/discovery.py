"""Finding the broadcaster and signalling it (psutil), and the commands that do
just that: ``sigreload-reload`` (SIGUSR1) and ``sigreload-css`` (SIGUSR2).

A process is the broadcaster when it is ours (same user), its command line
runs the broadcaster, and it listens on the port: all three, or it is not
signalled. psutil refuses to signal a PID that was reused meanwhile.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from sigreload import command_line

BROADCASTER_MODULE = "sigreload.broadcaster"
# the console script, and the repository's runnable file (python reload_server.py)
BROADCASTER_NAMES = ("sigreload-broadcast", "reload_server.py")
PYTHON_FLAGS = ("-u", "-B", "-E", "-s", "-S", "-P", "-I", "-O", "-OO", "-q")

log = logging.getLogger("sigreload.watch")


def runs_broadcaster(cmdline: Sequence[str]) -> bool:
    """True when a command line RUNS the broadcaster (not merely names it):
    ``python -m sigreload.broadcaster``, ``sigreload-broadcast`` or ``python reload_server.py``."""
    args = list(cmdline)
    if args and os.path.basename(args[0]).startswith("python"):
        args = [a for a in args[1:] if a not in PYTHON_FLAGS]
        if args[:2] == ["-m", BROADCASTER_MODULE]:
            return True
    return bool(args) and os.path.basename(args[0]) in BROADCASTER_NAMES


def listening(conn: Any, port: int) -> bool:
    """True when psutil connection ``conn`` is a listening socket on ``port``."""
    import psutil  # here, not at the top: the HTTP server and supervisor rarely need it

    return conn.status == psutil.CONN_LISTEN and bool(conn.laddr) and conn.laddr.port == port


def listens_on(proc: Any, port: int) -> bool:
    """True when process ``proc`` (a psutil.Process or a PID) has a listening
    TCP socket on ``port`` (its own sockets only: cheap). False when it is gone."""
    import psutil

    try:
        proc = psutil.Process(proc) if isinstance(proc, int) else proc
        return any(listening(c, port) for c in proc.net_connections(kind="tcp"))
    except (psutil.Error, OSError):
        return False


def port_owner(port: int) -> int | None:
    """PID of whatever listens on ``port``, when psutil can tell; else None."""
    import psutil

    try:
        return next((c.pid for c in psutil.net_connections(kind="tcp") if listening(c, port) and c.pid), None)
    except (psutil.Error, OSError):
        return None


def in_use(port: int, flag: str) -> str:
    """The one line for a busy port: who holds it (when psutil can tell) and the
    flag to pass (``--port``), or the setting to change (``WS_PORT=``, under ``r``)."""
    owner = port_owner(port)
    by = f" by PID {owner}" if owner else ""
    advice = f"set {flag}<another port>" if flag.endswith("=") else f"pass {flag}"
    return f"port {port} is in use{by}; stop that process or {advice}"


def find_server(port: int = command_line.WS_PORT) -> Any:
    """The broadcaster listening on ``port``, as a psutil.Process, or None.

    Same user, a command line that runs the broadcaster, a listening socket
    on ``port``: all three, or it is not ours. Two candidates raise LookupError.
    """
    import psutil

    found = []
    for proc in psutil.process_iter(["uids", "cmdline"]):
        info = proc.info
        if not info["uids"] or info["uids"].real != os.getuid():
            continue
        if proc.pid != os.getpid() and runs_broadcaster(info["cmdline"] or ()):
            if listens_on(proc, port):
                found.append(proc)
    if len(found) > 1:
        pids = ", ".join(str(p.pid) for p in found)
        raise LookupError(f"two broadcasters listen on port {port} (PIDs {pids})")
    return found[0] if found else None


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
    when there is none; looked for again at the next change."""

    def __init__(self, port: int, pid: int | None = None) -> None:
        self.port, self.pid = port, pid
        self.server: Any = None
        self.missing_said = False

    def locate(self) -> Any:
        """The broadcaster as a psutil.Process, or None (and one warning line)."""
        # The very process we found (is_running compares create times: no reused PID).
        if self.server and self.server.is_running():
            return self.server
        try:
            self.server = self.given() if self.pid else find_server(self.port)
        except LookupError as exc:
            log.error("%s; not signalling either", exc)
            return None
        if self.server is None and not self.missing_said:
            which = f"broadcaster PID {self.pid} does not listen" if self.pid else "no broadcaster listens"
            log.warning("%s on port %d; will look again at the next change", which, self.port)
        self.missing_said = self.server is None
        return self.server

    def given(self) -> Any:
        """The broadcaster named by ``pid``, if it is ours, runs the broadcaster and listens."""
        import psutil

        try:
            proc = psutil.Process(self.pid)
            runs = runs_broadcaster(proc.cmdline()) and proc.uids().real == os.getuid()
        except psutil.Error:
            return None
        return proc if runs and listens_on(proc, self.port) else None


def trigger(signame: str, argv: Iterable[str] | None = None) -> None:
    """Find the broadcaster and send it one signal; exit 1 when there is none."""
    command_line.require_signals()
    what = "reload every page" if signame == "SIGUSR1" else "refresh every page's stylesheets"
    parser = command_line.parser(f"Send {signame} to the broadcaster: {what}.")
    parser.add_argument("--ws-port", type=int, default=command_line.WS_PORT,
                        help="the broadcaster's port (default: %(default)s)")
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        proc = find_server(args.ws_port)
    except LookupError as exc:
        sys.exit(f"sigreload: {exc}; signal the right one by hand")
    if proc is None or not signal_server(proc, getattr(signal, signame)):
        sys.exit(f"sigreload: no broadcaster listens on port {args.ws_port}; "
                 "start one with `r` or `sigreload-broadcast`")
    print(f"sigreload: sent {signame} to broadcaster PID {proc.pid}")


def reload_main(argv: Iterable[str] | None = None) -> None:
    """sigreload-reload: reload every connected page."""
    trigger("SIGUSR1", argv)


def css_main(argv: Iterable[str] | None = None) -> None:
    """sigreload-css: refresh the stylesheets of every connected page."""
    trigger("SIGUSR2", argv)
