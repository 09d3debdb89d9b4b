"""What the middleware needs beside the injection rules: whether sigreload
runs (a broadcaster of this user listens on the port), and the snippet's
tag for a page of a given host."""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from typing import Any

from sigreload.serving import injection, snippet

log = logging.getLogger("sigreload.middleware")
WS_PORT = 5678  # as command_line.WS_PORT (not imported: it pulls in argparse's world)
LOOK_EVERY = 1.0  # seconds between two looks for the broadcaster
OTHER_EVERY = 10.0  # ... while another program listens on its port (a psutil look costs 0.1 s)


def ws_port() -> int:
    """SIGRELOAD_WS_PORT, or 5678 (a value that is not a port: said once, 5678)."""
    value = os.environ.get("SIGRELOAD_WS_PORT", "")
    try:
        port = int(value) if value else WS_PORT
        if 0 < port < 65536:
            return port
    except ValueError:
        pass
    log.warning("sigreload: SIGRELOAD_WS_PORT=%r is not a port; using %d", value, WS_PORT)
    return WS_PORT


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
    """Whether the broadcaster listens on ``port``, looked at at most once
    every LOOK_EVERY seconds, by the request that finds the last look too
    old (the others keep its answer). A port nobody listens on is told at
    once; a listener there is then checked with psutil (same user, runs the
    broadcaster): once for a broadcaster (then only whether it still runs),
    every OTHER_EVERY seconds while it is someone else. Thread-safe."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or ws_port()
        self.found = False
        self.next_look = 0.0
        self.lock = threading.Lock()
        self.locator: Any = None

    def __bool__(self) -> bool:
        if time.monotonic() >= self.next_look and self.lock.acquire(blocking=False):
            try:
                self.look()
            finally:
                self.lock.release()
        return self.found

    def look(self) -> None:
        """Look now: a listener on the port, then (psutil) whether it is our broadcaster."""
        found, wait = False, LOOK_EVERY
        if listened(self.port):
            from sigreload.contract import discovery  # here: psutil only when something listens

            if self.locator is None:
                self.locator = discovery.Locator(self.port)
            found = self.locator.locate(quiet=True) is not None
            wait = LOOK_EVERY if found else OTHER_EVERY
        if found != self.found:
            log.info("sigreload: %s on port %d", "broadcaster found" if found else "no broadcaster", self.port)
        self.found, self.next_look = found, time.monotonic() + wait


def tag(port: int, host: str | None, scheme: str, policy: str = "", nonce: str | None = None) -> bytes:
    """The snippet's <script>, from the broadcaster on ``port`` of the page's
    ``host`` (its Host header; escaped), with the nonce ``policy`` (the
    answer's Content-Security-Policy) allows scripts by, else ``nonce``."""
    name = (host or "127.0.0.1").strip()
    if name.startswith("["):
        name = name[:name.find("]") + 1] or "127.0.0.1"
    else:
        name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    found = injection.NONCE.search(policy)
    scheme = "https" if scheme in ("https", "wss") else "http"
    return snippet.tag(f"{scheme}://{name or '127.0.0.1'}:{port}/reload.js", found.group(1) if found else nonce)


def header(headers: Any, name: bytes) -> bytes | None:
    """The first value of ``name`` (lower case) in a list of (name, value) byte pairs."""
    for key, value in headers:
        if key.lower() == name:
            return bytes(value)
    return None
