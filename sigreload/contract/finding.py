"""Which process is the broadcaster, and whose is a busy port (psutil); the
commands that find it and send it one signal: ``sigreload-reload`` (SIGUSR1)
and ``sigreload-css`` (SIGUSR2).

A process is the broadcaster when it is ours (same user), its command line
runs the broadcaster, and it listens on the port: all three, or it is not
signalled. psutil refuses to signal a PID that was reused meanwhile.
``discovery`` follows the broadcaster over time (``Locator``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from sigreload import command_line, config, interpreter, options, platforms
from sigreload.contract import messages

BROADCASTER_MODULE = "sigreload.broadcaster"
# the console script, and the repository's runnable file (python reload_server.py)
BROADCASTER_NAMES = ("sigreload-broadcast", "reload_server.py")
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


def trigger(signame: str, argv: Iterable[str] | None = None) -> None:
    """Find the broadcaster (on the port the command line or the configuration file
    names, as sigreload reads it) and send it one signal; exit 1 when there is none."""
    command_line.require_signals()
    what = "reload every page" if signame == "SIGUSR1" else "refresh every page's stylesheets"
    parser = command_line.parser(f"Send {signame} to the broadcaster: {what}.")
    sigreload = options.add(command_line.parser(None), "sigreload")  # the file's keys are its options
    args = config.parse("sigreload", options.add(parser, "signal"), sys.argv[1:] if argv is None else list(argv),
                        full=sigreload)[0]  # the file's ws-port, as sigreload reads it
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
