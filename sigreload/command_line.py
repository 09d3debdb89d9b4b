"""What every sigreload command shares: its defaults, its parser (with
``--version``), its logging, and the check that the platform has the signals.

Nothing here starts a process or touches a socket: each command's ``main()``
calls these first, then does its one job.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import select
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

from sigreload import __version__

HOST = "127.0.0.1"
HTTP_PORT = 8000
WS_PORT = 5678
IDLE_TIMEOUT = 15.0  # seconds the file server lets a connection send nothing (idle keep-alive, half-sent request)
INTERVAL = 0.05  # seconds between the watcher's ticks: what pages use reaches them in 150 ms (p90) polling
FILE_PAGES_HELP = ("also accept pages opened from files (file://): they send Origin: null, as a sandboxed frame "
                   "of any web site does, which could then read what pages are told (build errors, file names)")
# --poll's help, with the benchmark's figures (README, Speed)
POLL_HELP = ("never use kernel change notifications (Docker, WSL, NFS; automatic after a missed one): an edit of "
             "what pages use shows in 0.13 to 0.14 s (p90), any other file within 1.2 to 1.3 s on 10,000 files "
             "and 11 s on 100,000, for under 3%% of a core (bench/run.py on 2 cores)")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose error is one line (not the usage block first: 13
    lines for a port of -1, where the same value in a file is one, r32n5)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def parser(description: str | None) -> argparse.ArgumentParser:
    """An ArgumentParser with ``--version``."""
    made = OneLineParser(description=description, allow_abbrev=False)  # --http was --https
    made.add_argument("--version", action="version", version=f"sigreload {__version__}")
    return made


def add_port_flag(parser: argparse.ArgumentParser) -> None:
    """``--port-flag``: what the busy-port line tells to change. Hidden: the
    all-in-one command passes its own (``--ws-port``), the rfile its setting."""
    parser.add_argument("--port-flag", default="--port", help=argparse.SUPPRESS)


@contextlib.contextmanager
def quiet_closed_stdout() -> Iterator[None]:
    """A reader of our stdout that goes away (``sigreload config | head -1``) ends
    the command quietly, as the shell's tools end: status 141 (128 + SIGPIPE), no
    traceback. Standard output then points at /dev/null, so the exit's own flush
    writes nowhere (the Python docs' recipe for SIGPIPE)."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(141) from None


def require_signals() -> None:
    """Exit with one line where the platform has no SIGUSR1 (Windows)."""
    if not hasattr(signal, "SIGUSR1"):
        sys.exit("sigreload: this platform has no SIGUSR1 (Windows?); "
                 "sigreload runs on Linux and macOS (and in WSL)")


def setup_logging(verbose: bool = False) -> None:
    """Configure logging once, for a process's main()."""
    handler = Unblocked(sys.stdout)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    logging.getLogger("websockets").setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose:  # websockets 16 (the newest for 3.10) logs a client gone before its handshake as an
        # error with three tracebacks; 17 does not: it is expected (a tab closed, a port scan, a cap)
        logging.getLogger("websockets.server").addFilter(lambda r: r.getMessage() != "opening handshake failed")
    # The terminal may go away (stdout closed): never loop on tracebacks.
    logging.raiseExceptions = False


class Unblocked(logging.StreamHandler):  # type: ignore[type-arg]
    """Lines to a stream that never holds the process: where nobody reads the
    other end (a full pipe: a program that started sigreload read its first
    lines only; a terminal stopped by Ctrl-S) a line is counted, not written,
    and the count is said once lines go out again. Written, a full pipe held
    the process at its next line, and every page with it (after about 500
    edits' lines). A line goes out when the stream takes PIPE_BUF bytes at once."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.unread = 0  # lines not written since the last one that was

    def emit(self, record: logging.LogRecord) -> None:
        if not takes_a_line(self.stream):
            self.unread += 1
            return
        if self.unread:
            self.stream.write(f"sigreload: {self.unread} line(s) not shown: nothing read this output meanwhile\n")
            self.unread = 0
        super().emit(record)


def takes_a_line(stream: Any) -> bool:
    """Whether ``stream`` takes a write of PIPE_BUF bytes without waiting
    (always, for a file; a stream with no descriptor: yes)."""
    try:  # select, not poll: macOS's poll answers nothing true for a terminal
        return bool(select.select([], [stream.fileno()], [], 0)[1])
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return True


def folder_or_exit(path: str, prog: str) -> None:
    """Exit with one line unless ``path`` is a folder (a file, or nothing there)."""
    if not os.path.isdir(path):
        what = "is a file, not a folder" if os.path.exists(path) else "no such folder"
        sys.exit(f"{prog}: {path}: {what}")


def qr_code(text: str) -> str | None:
    """``text`` as a QR code drawn with block characters (segno), for a terminal
    with a dark background; None where the terminal cannot show them."""
    import io

    import segno

    out = io.StringIO()
    segno.make(text, error="m").terminal(out=out, compact=True, border=2)
    drawn = out.getvalue().rstrip("\n")
    try:
        drawn.encode(sys.stderr.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return None
    return drawn


def lan_addresses() -> list[str]:
    """This machine's non-loopback addresses, as a URL would show them: IPv4
    first (what a phone on the same Wi-Fi reaches), then IPv6."""
    import psutil

    found = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            ip = a.address.split("%")[0]
            if a.family == socket.AF_INET and not ip.startswith("127."):
                found.append(ip)
            elif a.family == socket.AF_INET6 and ip != "::1" and not ip.startswith("fe80"):
                found.append(f"[{ip}]")
    found.sort(key=lambda a: a.startswith("["))  # stable: each family in the system's order
    return found or ["(no network address)"]
