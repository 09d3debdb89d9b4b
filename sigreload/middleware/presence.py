"""What the middleware needs beside the injection rules: whether sigreload
runs (a broadcaster of this user listens on the port), and the snippet's
tag for a page of a given host."""

from __future__ import annotations

import errno
import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from sigreload.contract import wire
from sigreload.serving import answer_headers, snippet

log = logging.getLogger("sigreload.middleware")
WS_PORT = 5678  # as command_line.WS_PORT (not imported: it pulls in argparse's world)
LOOK_EVERY = 1.0  # seconds between two looks for the broadcaster
OTHER_EVERY = 10.0  # ... while another program listens on its port (a psutil look costs 0.1 s to 2 s)
FIRST_WAIT = 5.0  # seconds the first request waits for the first look, at most (once per process)
FRESH = 0.1  # seconds a look's "found" holds without the bind probe's confirmation
WILDCARDS = frozenset(("0.0.0.0", "::"))  # listening there: on every address
LOOPBACKS = frozenset(("127.0.0.1", "::1"))  # where "localhost" leads a browser


def ws_port() -> int:
    """SIGRELOAD_WS_PORT, else the ``ws-port`` of the configuration file that
    ``sigreload`` itself reads from the app's folder, else 5678. A value that is
    not a port, or a file sigreload would refuse, is said once, naming where it
    came from (r32n5: a file's bad value was blamed on the variable), and 5678 used."""
    value = os.environ.get("SIGRELOAD_WS_PORT", "")
    if not value:
        return configured()
    try:
        port = int(value)
        if 0 < port < 65536:
            return port
    except ValueError:
        pass
    log.warning("sigreload: SIGRELOAD_WS_PORT=%r is not a port; using %d", value, WS_PORT)
    return WS_PORT


def configured() -> int:
    """``ws-port`` from sigreload.toml or pyproject's [tool.sigreload] found from
    the current folder upward, checked as sigreload checks it (config.settings: a
    file of another user is not read), else 5678."""
    from sigreload import cli, config

    try:
        port = config.settings(cli.make_parser(), Path.cwd()).values.get("ws_port", WS_PORT)
    except (config.ConfigError, OSError) as exc:
        log.warning("sigreload: %s; using %d", exc, WS_PORT)
        return WS_PORT
    if not port:  # 0: any free port, which no page could find
        log.warning("sigreload: ws-port 0 (any free port) leaves pages no way to find the broadcaster; using %d",
                    WS_PORT)
        return WS_PORT
    return int(port)


def listened(port: int) -> bool:
    """Whether anything listens on ``port`` of a loopback address (a bind
    that fails with EADDRINUSE tells, in microseconds, without connecting)."""
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            with socket.socket(family) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT ones do not count
                probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
    return False


class Presence:
    """Whether the broadcaster listens on ``port``, and on which addresses.

    A daemon thread (started on first use, never at import; anew in a forked
    worker) looks at most once every LOOK_EVERY seconds: a port nobody
    listens on is told at once; a listener there is then checked with psutil
    (same user, runs the broadcaster): once for a broadcaster (then only
    whether it still runs), every OTHER_EVERY seconds while it is someone
    else. A request only reads that answer (``bool``), never looks itself,
    except for the first one, which waits up to FIRST_WAIT for the first look;
    an answer older than FRESH is confirmed by the bind probe (microseconds,
    at most once per FRESH seconds): a broadcaster that just stopped gets no
    tag into pages. Thread-safe."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or ws_port()
        self.found = False
        self.listens: frozenset[str] = frozenset()  # the broadcaster's listening addresses
        self.looked = 0.0  # when the last look ended (monotonic)
        self.confirmed = 0.0  # when a request's bind probe last found the port listened on
        self.first = threading.Event()
        self.lock = threading.Lock()
        self.locator: Any = None
        self.seen: Any = None  # the broadcaster process whose addresses ``listens`` are
        self.pid = 0  # the process the thread runs in

    def __bool__(self) -> bool:
        if self.pid != os.getpid():
            self.start()
        if not self.first.is_set():
            self.first.wait(FIRST_WAIT)
        if not self.found:
            return False
        now = time.monotonic()
        if now - self.looked < FRESH or now - self.confirmed < FRESH:
            return True
        if not listened(self.port):  # stopped since the last look: no tag (asked again until the next look)
            return False
        seen = self.seen  # ... and the listener is not the broadcaster if the broadcaster is gone: another
        if seen is None or not seen.is_running():  # user who listened there at once had their reload.js run in
            return False  # the pages for up to 2.4 s (r33a4); is_running() costs microseconds
        self.confirmed = now  # a probe per FRESH seconds at most, not one per request
        return True

    def start(self) -> None:
        """The looking thread, in this process (once)."""
        with self.lock:
            if self.pid == os.getpid():
                return
            self.pid = os.getpid()
            self.locator = self.seen = None  # a forked worker's copy of the parent's: looked up anew
            threading.Thread(target=self.keep_looking, name="sigreload-presence", daemon=True).start()

    def keep_looking(self) -> None:
        while True:
            try:
                wait = self.look()
            except Exception:  # never let the thread die: an app keeps running without it
                log.exception("sigreload: looking for the broadcaster failed")
                wait = OTHER_EVERY
            self.first.set()
            time.sleep(wait)

    def look(self) -> float:
        """Look now: a listener on the port, then (psutil) whether it is our
        broadcaster, and where it listens; the seconds until the next look."""
        found, wait, listens = False, LOOK_EVERY, frozenset[str]()
        if listened(self.port):
            from sigreload import platforms
            from sigreload.contract import discovery  # here: psutil only when something listens

            if self.locator is None:
                self.locator = discovery.Locator(self.port)
            server = self.locator.locate(quiet=True)
            if server is not None and server is self.seen:  # the same process: the same addresses
                listens = self.listens
            elif server is not None:
                listens = frozenset(c.laddr.ip for c in platforms.own_connections(server)
                                    if platforms.is_listening(c, self.port))
            self.seen = server if listens else None
            found = bool(listens)
            wait = LOOK_EVERY if found else OTHER_EVERY
        if found != self.found:
            log.info("sigreload: %s on port %d", "broadcaster found" if found else "no broadcaster", self.port)
        self.found, self.listens, self.looked = found, listens, time.monotonic()
        return wait

    def folder(self) -> Path | None:
        """The broadcaster's message folder (None: none found yet)."""
        locator = self.locator
        return locator.folder() if locator is not None and self.found else None

    def tag(self, host: str | None, scheme: str, policy: str = "", nonce: str | None = None,
            method: str | None = None) -> bytes:
        """The snippet's <script> for a page of ``host``, from an address the broadcaster listens on
        (marked posted when ``method`` is not GET/HEAD: snippet.posted)."""
        return cached_tag(self.port, host, scheme, policy, nonce, self.listens, snippet.posted(method))


def address(host: str | None, listens: Collection[str] | None) -> str:
    """The name the page's script src gives the broadcaster: the page's
    ``host`` (its Host header, without its port) when the broadcaster
    listens there (or on every address), else a loopback address it listens
    on; never an address where some other program may listen in its stead.
    ``listens`` None: the host as it is."""
    name = (host or "").strip()
    if name.startswith("["):
        name = name[:name.find("]") + 1]
    else:
        name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    if listens is None:
        return name or "127.0.0.1"
    bare = name.strip("[]").lower()
    if WILDCARDS.intersection(listens):
        return name or "127.0.0.1"
    if bare in listens or (bare == "localhost" and LOOPBACKS <= set(listens)):
        return name
    return "[::1]" if "::1" in listens and "127.0.0.1" not in listens else "127.0.0.1"


def tag(port: int, host: str | None, scheme: str, policy: str = "", nonce: str | None = None,
        listens: Collection[str] | None = None, posted: bool = False) -> bytes:
    """The snippet's <script>, from the broadcaster on ``port`` at ``address``
    (of the page's ``host`` and where the broadcaster ``listens``; escaped),
    with the nonce ``policy`` (the answer's Content-Security-Policy headers,
    joined by commas) allows scripts by, else ``nonce``; ``posted``: see snippet.tag."""
    scheme = "https" if scheme in ("https", "wss") else "http"
    name = address(host, listens)
    return snippet.tag(f"{scheme}://{name}:{port}{wire.SNIPPET_PATH}", answer_headers.script_nonce(policy) or nonce,
                       app=True, posted=posted)


@functools.lru_cache(maxsize=64)
def cached_tag(port: int, host: str | None, scheme: str, policy: str, nonce: str | None,
               listens: frozenset[str], posted: bool = False) -> bytes:
    """``tag``, made once per page host and nonce (a few µs less per page)."""
    return tag(port, host, scheme, policy, nonce, listens, posted)


def header(headers: Any, name: bytes) -> bytes | None:
    """The first value of ``name`` (lower case) in a list of (name, value) byte pairs."""
    for key, value in headers:
        if key.lower() == name:
            return bytes(value)
    return None
