"""What the middleware needs beside the injection rules: whether sigreload
runs (a broadcaster of this user listens on the port), and the snippet's
tag for a page of a given host."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from sigreload.serving import injection, snippet

log = logging.getLogger("sigreload.middleware")
WS_PORT = 5678  # as command_line.WS_PORT (not imported: it pulls in argparse's world)
LOOK_EVERY = 1.0  # seconds between two looks for the broadcaster


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


class Presence:
    """Whether the broadcaster listens on ``port``: looked at on the first
    question, then at most once every LOOK_EVERY seconds, in a thread (an
    answer never waits for a look but the first one). Thread-safe."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or ws_port()
        self.found: bool | None = None  # None: never looked
        self.next_look = 0.0
        self.looking = False
        self.lock = threading.Lock()
        self.locator: Any = None

    def __bool__(self) -> bool:
        if time.monotonic() >= self.next_look:
            with self.lock:
                if time.monotonic() >= self.next_look and not self.looking:
                    self.next_look = time.monotonic() + LOOK_EVERY
                    self.looking = True
                    if self.found is None:
                        self.look()
                    else:
                        threading.Thread(target=self.look, name="sigreload-look", daemon=True).start()
        return bool(self.found)

    def look(self) -> None:
        """Look for the broadcaster now (psutil: same user, runs the broadcaster, listens on the port)."""
        from sigreload.contract import discovery  # here: psutil only once a page is served

        try:
            if self.locator is None:
                self.locator = discovery.Locator(self.port)
            found = self.locator.locate(quiet=True) is not None
            if found != self.found:
                log.info("sigreload: %s on port %d", "broadcaster found" if found else "no broadcaster",
                         self.port)
            self.found = found
        finally:
            self.looking = False


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
