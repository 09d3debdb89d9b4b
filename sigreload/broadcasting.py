"""The broadcaster's sockets: signals become WebSocket messages to every page.

Clients that connect to ``/`` (the original pasted snippet, which reloads on
ANY message) only ever receive the text ``reload`` and nothing on connect.
The sigreload snippet connects to ``/sigreload`` and receives JSON: a hello
with this run's boot id and generation, then ``reload`` and ``css`` events.
``GET /reload.js`` on the same port serves the snippet. The process around
this (its options, its signals held from the first instruction) is
``sigreload.broadcaster``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import signal
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Origin

from sigreload import command_line, process_life
from sigreload.contract import messages
from sigreload.serving import snippet

IDENTIFIED_PATH = "/sigreload"
MIN_GAP = 0.05  # seconds between two broadcasts; later signals merge (trailing edge)
MAX_FRAME = 4096  # clients have little to say: cap what they can send
MAX_USING = 64  # paths one page may report using
# Page origins trusted by default: loopback pages (any port, http or https), and
# clients that send no Origin at all (not browsers: browsers always send one).
# Anything else gets 403, "null" too: file:// pages send it, and so does a
# sandboxed frame of any web site (it would read build errors and file names).
Origins = Sequence[Origin | re.Pattern[str] | None] | None  # websockets' origins: None accepts any
LOOPBACK_ORIGINS: list[Origin | re.Pattern[str] | None] = [
    None,
    re.compile(r"https?://(localhost|[\w.-]+\.localhost|127(\.\d{1,3}){3}|\[::1\])(:\d+)?"),
]

log = logging.getLogger("sigreload.broadcast")


def merge(messages: list[dict[str, Any]]) -> tuple[str | None, list[str] | None, str | None]:
    """One event from the watcher's messages: (error text or None, paths or None, root).

    No message (a bare kill -USR1), or one without paths, means every page;
    an error counts only when no later message brought a good build.
    """
    if messages and "error" in messages[-1]:
        return messages[-1]["error"], None, None
    roots = {m.get("root") for m in messages}
    if not messages or any("paths" not in m for m in messages) or len(roots) != 1:
        return None, None, None
    return None, sorted({p for m in messages for p in m["paths"]}), roots.pop()


class Broadcaster:
    """Turns signals into messages, coalescing a storm into a bounded few.

    The first signal is sent at once; signals that arrive within MIN_GAP of
    a broadcast merge into one more broadcast at the end of the gap, so the
    last change is never lost. What changed (and a failed build's error)
    comes from the watcher's messages (messages.post), read at send time.
    """

    def __init__(self, server_connections: Callable[[], Iterable[ServerConnection]],
                 port: int | None = None) -> None:
        self.connections = server_connections  # a callable: read at send time
        self.port = port  # where the watcher leaves its messages; set once bound
        self.boot = secrets.token_hex(6)
        self.generation = 0
        self.error: str | None = None  # the last failed build's output, until a good one
        self.notice: str | None = None  # what the last good build still reported (its error lines)
        self.pending: str | None = None  # "reload" or "css" waiting for the gap to end
        self.signals = 0  # deliveries merged into the next broadcast
        self.timer: asyncio.TimerHandle | None = None
        self.using: dict[ServerConnection, list[str]] = {}  # connection -> the URL paths its page uses
        self.reported: messages.Used | None = None  # all of them, for the watcher

    def uses(self, connection: ServerConnection, paths: list[str] | None) -> None:
        """Record what a page uses (None: it left), for the watcher to look at first."""
        if paths is None:
            self.using.pop(connection, None)
        else:
            self.using[connection] = paths
        if self.port:
            self.reported = self.reported or messages.Used(self.port, "pages")
            self.reported.replace(p for ps in self.using.values() for p in ps)

    def hello(self) -> str:
        """The first message to a snippet; ``root``: ids of the folders a watcher watches (None: none runs)."""
        hello = {"type": "hello", "boot": self.boot, "generation": self.generation,
                 "root": messages.watched(self.port) if self.port else None}
        if self.error:
            hello["error"] = self.error
        elif self.notice:
            hello["notice"] = self.notice
        return json.dumps(hello)

    def signal(self, kind: str) -> None:
        """Record a trigger; idempotent within one gap ("reload" beats "css")."""
        if self.pending != "reload":
            self.pending = kind
        self.signals += 1
        if self.timer is None:
            self.flush()

    def flush(self) -> None:
        self.timer = None
        kind, self.pending = self.pending, None
        if kind is None:
            return
        self.generation += 1
        collected = messages.collect(self.port) if self.port else []
        error, paths, root = merge(collected)
        if collected:  # a bare kill -USR1 keeps the last build's notice
            self.notice = None if error else collected[-1].get("notice")
        if self.signals > 1:  # signals carry no sender: a bare kill may be among them
            paths = root = None
        self.signals = 0
        plain: list[ServerConnection] = []
        identified: list[ServerConnection] = []
        for connection in self.connections():
            (identified if is_identified(connection) else plain).append(connection)
        event: dict[str, Any] = {"type": "error" if error else kind, "boot": self.boot, "generation": self.generation}
        if error:
            event["text"] = error  # only snippets draw it: plain clients would reload
        elif paths is not None:
            event.update(paths=paths, root=root)
        if self.notice and not error:
            event["notice"] = self.notice
        self.error = error
        broadcast(identified, json.dumps(event))
        if not error:
            broadcast(plain, "reload")
        what = "every file" if paths is None else ", ".join(paths[:3]) + (" ..." if len(paths) > 3 else "")
        log.info("%s sent to %d page(s) (%s)", event["type"], len(identified) + (0 if error else len(plain)),
                 "build failed" if error else what)
        self.timer = asyncio.get_running_loop().call_later(MIN_GAP, self.flush)


def accepting(extra: Iterable[str], file_pages: bool = False) -> list[Origin | re.Pattern[str] | None]:
    """The page origins accepted: loopback pages, ``extra`` (--allow-origin), and
    with ``file_pages`` the "null" origin of file:// pages (--allow-file-pages)."""
    return LOOPBACK_ORIGINS + [Origin(o) for o in extra] + ([Origin("null")] if file_pages else [])


def is_identified(connection: ServerConnection) -> bool:
    """Whether a client is a sigreload snippet (it connected to IDENTIFIED_PATH)."""
    return connection.request is not None and connection.request.path.startswith(IDENTIFIED_PATH)


def snippet_response(connection: ServerConnection, request: Request) -> Response | None:
    """process_request: serve GET /reload.js; let WebSocket handshakes through."""
    if request.path.split("?")[0] != "/reload.js":
        return None
    response = connection.respond(200, snippet.source().decode())
    del response.headers["Content-Type"]  # headers is a multidict: replace, not add
    response.headers["Content-Type"] = "text/javascript; charset=utf-8"
    response.headers["Cache-Control"] = "no-cache"
    return response


def reported(frame: str | bytes) -> list[str] | None:
    """The URL paths a snippet's frame says its page uses, or None for anything
    else: at most MAX_USING, each absolute, short and printable. Nothing else a
    client says is acted on; this only changes what the watcher looks at first."""
    try:
        message = json.loads(frame)
    except (TypeError, ValueError):
        return None
    paths = message.get("paths") if isinstance(message, dict) and message.get("type") == "using" else None
    if not isinstance(paths, list) or len(paths) > MAX_USING:
        return None
    ok = all(isinstance(p, str) and p.startswith("/") and len(p) < 1024 and p.isprintable() for p in paths)
    return paths if ok else None


def make_handler(broadcaster: Broadcaster) -> Callable[[ServerConnection], Awaitable[None]]:
    async def handler(connection: ServerConnection) -> None:
        """Say hello to sigreload snippets, then read only what their pages use."""
        identified = is_identified(connection)
        if identified:
            await connection.send(broadcaster.hello())
        log.debug("client joined from %s", connection.remote_address)
        try:
            async for frame in connection:
                paths = reported(frame) if identified else None
                if paths is not None:
                    broadcaster.uses(connection, paths)
        except ConnectionClosed:
            pass  # a client that vanished, or sent a frame over MAX_FRAME
        if connection in broadcaster.using:
            broadcaster.uses(connection, None)
        log.debug("client left")

    return handler


async def run(host: str | None, port: int, origins: Origins = LOOPBACK_ORIGINS,
              ping_interval: float = 10.0) -> None:
    """Serve the pages until SIGINT, SIGTERM or SIGHUP (each closes every connection with 1001)."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def stopping() -> None:
        if not stop.done():
            stop.set_result(None)

    for name in process_life.STOP_SIGNALS:
        loop.add_signal_handler(getattr(signal, name), stopping)
    server: Server | None = None
    broadcaster = Broadcaster(lambda: server.connections if server else ())
    loop.add_signal_handler(signal.SIGUSR1, broadcaster.signal, "reload")
    loop.add_signal_handler(signal.SIGUSR2, broadcaster.signal, "css")
    # A storm fills asyncio's wakeup socket: the bytes already there stand for the
    # same signals (they merge anyway), so a full buffer is no reason to print.
    signal.set_wakeup_fd(signal.set_wakeup_fd(-1), warn_on_full_buffer=False)
    server = await serve(make_handler(broadcaster), host, port, process_request=snippet_response,
                         origins=origins, compression=None, max_size=MAX_FRAME, max_queue=4,
                         ping_interval=ping_interval, ping_timeout=ping_interval, close_timeout=0.5)
    broadcaster.port = server.sockets[0].getsockname()[1]
    messages.collect(broadcaster.port)  # messages left for a previous run are stale
    broadcaster.reported = messages.Used(broadcaster.port, "pages")  # ... and so is what its pages used
    # Handlers installed, port bound: signals held since our first line arrive now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1, signal.SIGUSR2})
    pid = os.getpid()
    if host is None:
        port = server.sockets[0].getsockname()[1]
        log.warning("LAN mode: any device on your network can connect: %s",
                    ", ".join(f"ws://{a}:{port}" for a in command_line.lan_addresses()))
    for address in sorted({s.getsockname()[:2] for s in server.sockets}):
        log.info("ready on ws://%s:%d (pid %d): kill -USR1 %d reloads every page, "
                 "kill -USR2 %d refreshes stylesheets", *_display(address), pid, pid, pid)
    await stop
    server.close()  # closes every connection with 1001 (going away)
    await server.wait_closed()


def _display(address: tuple[str, int]) -> tuple[str, int]:
    host, port = address
    return (f"[{host}]" if ":" in host else host), port


def serve_until_stopped(host: str | None, port: int, origins: Origins = LOOPBACK_ORIGINS,
                        ping_interval: float = 10.0) -> None:
    """Serve the pages until SIGINT, SIGTERM or SIGHUP; raises OSError when it cannot listen."""
    asyncio.run(run(host, port, origins, ping_interval))
