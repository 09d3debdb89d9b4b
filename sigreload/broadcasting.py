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
import gc
import json
import logging
import os
import re
import secrets
import signal
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Origin

from sigreload import command_line, consoles, listening, livereload, page_status, process_life
from sigreload.contract import messages
from sigreload.serving import snippet

IDENTIFIED_PATH = "/sigreload"
MIN_GAP = 0.05  # seconds between two broadcasts; later signals merge (trailing edge)
MAX_FRAME = 4096  # clients have little to say: cap what they can send
MAX_USING = 64  # paths one page may report using
ACCEPTS_AT_ONCE = 16  # connections asyncio accepts in one pass of its loop (its backlog argument)
BACKLOG = 1024  # connections the kernel holds until they are accepted
HANDSHAKES_AT_ONCE = 32  # read at once (Gate): a pass of the loop over them takes a few ms
COLLECT_AFTER = 2.0  # seconds without a client joining or leaving before the old generation is collected
COLLECT_MOST = 60.0  # ... or at most this long after the last time, while clients keep coming and going
REPORT_GAP = 0.1  # seconds between two writes of what pages use
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

    def __init__(self, server_connections: Callable[[], Iterable[ServerConnection]]) -> None:
        self.connections = server_connections  # a callable: read at send time
        self.port = 0  # set once bound
        self.folder: Path | None = None  # where the watcher leaves its messages (messages.Mailbox)
        self.watched: list[str] | None = None  # what its watcher watches (None: none runs)
        self.watcher_said: tuple[int, int] | None = None  # the stamp of what the watcher said, when read
        self.watcher_exit: int | None = None  # a pidfd of the watcher: readable once it exits
        self.stop_told = False  # pages were told the watcher stopped
        self.boot = secrets.token_hex(6)
        self.generation = 0
        self.error: str | None = None  # the last failed build's output, until a good one
        self.notice: str | None = None  # what the last good build still reported (its error lines)
        self.pending: str | None = None  # "reload" or "css" waiting for the gap to end
        self.signals = 0  # deliveries merged into the next broadcast
        self.timer: asyncio.TimerHandle | None = None
        self.using: dict[ServerConnection, list[str]] = {}  # connection -> the URL paths its page uses
        self.counts: Counter[str] = Counter()  # path -> how many pages use it
        self.reported = messages.Used(lambda: self.folder, "pages")  # their paths, for the watcher
        self.report_due: asyncio.TimerHandle | None = None
        self.collect_due: asyncio.TimerHandle | None = None
        self.last_busy = self.busy_since = 0.0  # the last join or leave; the first since a collection
        self.livereload: set[ServerConnection] = set()  # LiveReload clients that said hello (--livereload)
        self.console: consoles.Consoles | None = consoles.Consoles()  # pages' errors in the terminal (None: off)
        self.morph = False  # --morph: pages apply HTML edits in place
        self.overlay = True  # a page's runtime errors shown on it (--no-overlay: False)
        self.follow = False  # --follow: a saved page opens in a tab; what changed is shown
        self.status = page_status.Status(broadcast)  # what the status page (/_sigreload/) shows
        self.status.later = lambda delay, f: asyncio.get_running_loop().call_later(delay, f)
        self.status.reload_one = lambda c: broadcast([c], json.dumps(
            {"type": "reload", "boot": self.boot, "generation": self.generation}))

    def uses(self, connection: ServerConnection, paths: list[str] | None) -> None:
        """Record what a page uses (None: it left), for the watcher to look at first.
        Work per page, not per page open: thousands may leave at once."""
        old = self.using.pop(connection, None) if paths is None else self.using.get(connection)
        if paths is not None:
            self.using[connection] = paths
        self.counts.update(paths or ())
        self.counts.subtract(old or ())
        for path in old or ():
            if self.counts[path] <= 0:
                del self.counts[path]
        if self.report_due is None:  # the list, written at most every REPORT_GAP
            self.report_due = asyncio.get_running_loop().call_later(REPORT_GAP, self.report)

    def busy(self) -> None:
        """A client joined or left: collect the old generation once the comings
        and goings settle (COLLECT_AFTER), or at least every COLLECT_MOST while
        they go on; never in the middle of a crowd (``run`` keeps the automatic
        collector to the young generations: with thousands of clients a full
        pass takes hundreds of milliseconds, and no page hears a thing meanwhile)."""
        loop = asyncio.get_running_loop()
        self.last_busy = loop.time()
        if self.collect_due is None:
            self.busy_since = self.last_busy
            self.collect_due = loop.call_later(COLLECT_AFTER, self.collect)

    def collect(self) -> None:
        loop = asyncio.get_running_loop()
        settled = self.last_busy + COLLECT_AFTER
        if loop.time() < settled and loop.time() < self.busy_since + COLLECT_MOST:
            self.collect_due = loop.call_at(settled, self.collect)  # still coming and going
            return
        self.collect_due = None
        gc.collect()

    def report(self) -> None:
        self.report_due = None
        self.reported.replace(self.counts)

    def look_at_watcher(self) -> None:
        """Whether a watcher runs, as it said in the folder (a stat; read when it
        changed). Its exit is an event (a pidfd): the pages are told at once, and
        again when a watcher is back. Nothing is polled."""
        said = messages.stamp(self.folder / messages.WATCHER) if self.folder else None
        if said == self.watcher_said and (self.watched is None or self.watcher_exit is not None):
            return
        self.watcher_said = said
        found = messages.watcher(self.folder)
        self.watched = found[0] if found else None
        self.forget_watcher()
        if found and hasattr(os, "pidfd_open"):
            try:
                self.watcher_exit = os.pidfd_open(found[1])
                asyncio.get_running_loop().add_reader(self.watcher_exit, self.watcher_stopped)
            except OSError:
                self.watcher_exit = None
        if found and self.stop_told:
            self.stop_told = False
            self.tell_pages()

    def forget_watcher(self) -> None:
        if self.watcher_exit is not None:
            asyncio.get_running_loop().remove_reader(self.watcher_exit)
            os.close(self.watcher_exit)
            self.watcher_exit = None

    def watcher_stopped(self) -> None:
        self.forget_watcher()
        self.watched, self.watcher_said, self.stop_told = None, None, True
        log.info("the watcher stopped: pages are told")
        self.tell_pages()

    def tell_pages(self) -> None:
        """The hello again, to every snippet: what changed is whether a watcher runs."""
        broadcast([c for c in self.connections() if is_identified(c)], self.hello(look=False))

    def hello(self, look: bool = True) -> str:
        """The first message to a snippet; ``root``: ids of the folders a watcher watches (None: none runs)."""
        if look:
            self.look_at_watcher()
        hello = {"type": "hello", "boot": self.boot, "generation": self.generation, "root": self.watched,
                 "console": self.console is not None, "morph": self.morph, "overlay": self.overlay,
                 "follow": self.follow}
        if self.error:
            hello["error"] = self.error
        elif self.notice:
            hello["notice"] = self.notice
        return json.dumps(hello)

    def follow_saved(self, identified: list[ServerConnection], paths: list[str]) -> None:
        """--follow: a saved page that no page shows opens in the tab focused last (taken out of ``identified``)."""
        chosen = self.status.to_follow(identified, paths)
        if chosen:
            identified.remove(chosen[0])
            broadcast([chosen[0]], json.dumps({"type": "follow", "path": chosen[1], "boot": self.boot,
                                               "generation": self.generation}))
            log.info("a tab follows to %s", chosen[1])

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
        self.look_at_watcher()
        self.generation += 1
        collected = messages.collect(self.folder)
        error, paths, root = merge(collected)
        if collected:  # a bare kill -USR1 keeps the last build's notice
            self.notice = None if error else collected[-1].get("notice")
        if self.signals > 1:  # signals carry no sender: a bare kill may be among them
            paths = root = None
        self.signals = 0
        plain: list[ServerConnection] = []
        identified: list[ServerConnection] = []
        for connection in self.connections():
            if is_identified(connection):
                identified.append(connection)
            elif connection not in self.livereload and not is_livereload_port(connection) \
                    and not page_status.is_status(connection):
                plain.append(connection)
        event: dict[str, Any] = {"type": "error" if error else kind, "boot": self.boot, "generation": self.generation}
        if error:
            event["text"] = error  # only snippets draw it: plain clients would reload
        elif paths is not None:
            event.update(paths=paths, root=root)
        if self.notice and not error:
            event["notice"] = self.notice
        self.error = error
        if self.follow and paths is not None and not error and kind == "reload":
            self.follow_saved(identified, paths)
        broadcast(identified, json.dumps(event))
        if not error:
            broadcast(plain, "reload")
            for command in livereload.commands(kind, paths) if self.livereload else ():
                broadcast(self.livereload, command)
        what = "every file" if paths is None else ", ".join(paths[:3]) + (" ..." if len(paths) > 3 else "")
        told = len(identified) + (0 if error else len(plain) + len(self.livereload))
        log.info("%s sent to %d page(s) (%s)", event["type"], told, "build failed" if error else what)
        self.status.reloaded(self.generation, kind, paths, bool(error), told)
        self.timer = asyncio.get_running_loop().call_later(MIN_GAP, self.flush)


class Gate:
    """At most ``most`` WebSocket handshakes read at once; later connections
    wait, unread (reading paused), in the order they came. asyncio handles
    every socket that is ready in one pass: a crowd of thousands joining at
    once would otherwise hold the loop, and every signal and ping, for
    hundreds of milliseconds."""

    def __init__(self, most: int) -> None:
        self.free = most
        self.queue: deque[GatedConnection] = deque()

    def enter(self, connection: GatedConnection) -> None:
        if self.free:
            self.free -= 1
            connection.slot = "held"
        else:
            connection.slot = "waiting"
            connection.transport.pause_reading()
            self.queue.append(connection)

    def leave(self, connection: GatedConnection) -> None:
        """``connection``'s handshake is over (done, refused, or it went away)."""
        held, connection.slot = connection.slot == "held", "done"
        if not held:
            return  # a waiting one is skipped when its turn comes
        while self.queue:
            turn = self.queue.popleft()
            if turn.slot == "waiting":
                turn.slot = "held"
                turn.transport.resume_reading()
                return
        self.free += 1


class GatedConnection(ServerConnection):
    """A connection whose handshake waits for its turn at ``gate`` (set per
    server), and that ends cheaply when its client is gone: thousands of
    pages may go at once (a browser quits, a laptop sleeps), and the loop
    must stay free for signals meanwhile."""

    gate: Gate
    slot = "new"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.gate.enter(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate.leave(self)
        super().connection_lost(exc)

    def eof_received(self) -> None:
        """The client went away without a closing handshake: there is nothing
        left to say to it (websockets would shut down the write side first)."""
        if self.protocol.state is State.OPEN:
            self.transport.abort()
        else:
            super().eof_received()

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """As websockets' close, without its wait for a connection already lost."""
        if self.protocol.state is not State.CLOSED or not self.connection_lost_waiter.done():
            await super().close(code, reason)


def accepting(extra: Iterable[str], file_pages: bool = False) -> list[Origin | re.Pattern[str] | None]:
    """The page origins accepted: loopback pages, ``extra`` (--allow-origin), and
    with ``file_pages`` the "null" origin of file:// pages (--allow-file-pages)."""
    return LOOPBACK_ORIGINS + [Origin(o) for o in extra] + ([Origin("null")] if file_pages else [])


def is_livereload_port(connection: ServerConnection) -> bool:
    """Whether a client came to the LiveReload port (it gets only that protocol's commands)."""
    return connection.request is not None and connection.request.path.split("?")[0] == livereload.PATH


def is_identified(connection: ServerConnection) -> bool:
    """Whether a client is a sigreload snippet (it connected to IDENTIFIED_PATH)."""
    return (connection.request is not None and connection.request.path.startswith(IDENTIFIED_PATH)
            and not page_status.is_status(connection))


def snippet_response(connection: ServerConnection, request: Request) -> Response | None:
    """process_request: serve GET /reload.js (/idiomorph.js, for --morph; /overlay.js,
    the error toast; /status, the status page); let WebSocket handshakes through."""
    name = request.path.split("?")[0][1:]
    if name not in snippet.SERVED and name != "status":
        return None
    page = name == "status"  # the status page, for a site served by another server (--no-http)
    response = connection.respond(200, (snippet.status_page() if page else snippet.served(name)).decode())
    del response.headers["Content-Type"]  # headers is a multidict: replace, not add
    response.headers["Content-Type"] = "text/html; charset=utf-8" if page else "text/javascript; charset=utf-8"
    for header, value in snippet.STATUS_HEADERS if page else [("Cache-Control", "no-cache")]:
        response.headers[header] = value
    return response


def parsed(frame: str | bytes) -> dict[str, Any] | None:
    """A snippet's frame: a JSON object, or None."""
    try:
        message = json.loads(frame)
    except (TypeError, ValueError):
        return None
    return message if isinstance(message, dict) else None


def reported(message: dict[str, Any]) -> list[str] | None:
    """The URL paths a snippet's message says its page uses, or None for anything
    else: at most MAX_USING, each absolute, short and printable. This only
    changes what the watcher looks at first."""
    paths = message.get("paths") if message.get("type") == "using" else None
    if not isinstance(paths, list) or len(paths) > MAX_USING:
        return None
    ok = all(isinstance(p, str) and p.startswith("/") and len(p) < 1024 and p.isprintable() for p in paths)
    return paths if ok else None


def make_handler(broadcaster: Broadcaster) -> Callable[[ServerConnection], Awaitable[None]]:
    async def handler(connection: ServerConnection) -> None:
        """Say hello to sigreload snippets, then read only what their pages use."""
        if isinstance(connection, GatedConnection):
            connection.gate.leave(connection)  # its handshake is over: the next one's turn
        if page_status.is_status(connection):
            return await page_status.watch(broadcaster.status, connection, lambda: broadcaster.signal("reload"),
                                           lambda: broadcaster.generation)
        identified = is_identified(connection)
        if identified:
            await connection.send(broadcaster.hello())
        if identified or not is_livereload_port(connection):  # a plain client: its origin only
            broadcaster.status.joined(connection, identified)
        broadcaster.busy()
        log.debug("client joined from %s", connection.remote_address)
        try:
            async for frame in connection:
                message = parsed(frame) if identified else None
                if message is None:
                    continue
                paths = reported(message)
                if paths is not None:
                    broadcaster.uses(connection, paths)
                elif message.get("type") == "console" and broadcaster.console:
                    broadcaster.console.said(connection, message)
                if message.get("type") in ("page", "focus", "console"):
                    broadcaster.status.said(connection, message)
        except ConnectionClosed:
            pass  # a client that vanished, or sent a frame over MAX_FRAME
        if connection in broadcaster.using:
            broadcaster.uses(connection, None)
        if broadcaster.console:
            broadcaster.console.left(connection)
        broadcaster.status.left(connection)
        broadcaster.busy()
        log.debug("client left")

    return handler


async def run(hosts: list[str], port: int, origins: Origins = LOOPBACK_ORIGINS,
              ping_interval: float = 10.0, livereload_port: int | None = None, console: bool = True,
              morph: bool = False, overlay: bool = True, follow: bool = False) -> None:
    """Serve the pages until SIGINT, SIGTERM or SIGHUP (each closes every connection with 1001)."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def stopping() -> None:
        if not stop.done():
            stop.set_result(None)

    for name in process_life.STOP_SIGNALS:
        loop.add_signal_handler(getattr(signal, name), stopping)
    servers: list[Server] = []
    broadcaster = Broadcaster(lambda: (c for server in servers for c in server.connections))
    if not console:
        broadcaster.console = None
    broadcaster.morph, broadcaster.overlay, broadcaster.follow = morph, overlay, follow
    loop.add_signal_handler(signal.SIGUSR1, broadcaster.signal, "reload")
    loop.add_signal_handler(signal.SIGUSR2, broadcaster.signal, "css")
    # A storm fills asyncio's wakeup socket: the bytes already there stand for the
    # same signals (they merge anyway), so a full buffer is no reason to print.
    signal.set_wakeup_fd(signal.set_wakeup_fd(-1), warn_on_full_buffer=False)
    servers += await listen(make_handler(broadcaster), hosts, port, origins, ping_interval)
    broadcaster.port = servers[0].sockets[0].getsockname()[1]
    if livereload_port is not None:
        try:
            servers += await listen(livereload.make_handler(broadcaster.livereload, broadcaster.busy), hosts,
                                    livereload_port, origins, ping_interval, livereload.respond)
        except OSError as exc:
            exc.port = livereload_port  # type: ignore[attr-defined]  # main names the port that is taken
            raise
        livereload_port = servers[-1].sockets[0].getsockname()[1]
    if refused := messages.runtime_refused():
        log.warning("%s; messages go to a private folder in %s", refused, messages.base())
    try:
        mailbox: messages.Mailbox | None = messages.Mailbox(broadcaster.port)
    except OSError as exc:
        mailbox = None
        log.warning("cannot make a message folder in %s (%s): pages reload on every change, "
                    "and no build error reaches them", messages.base(), exc.strerror)
    broadcaster.folder = mailbox.folder if mailbox else None
    # Handlers installed, port bound: signals held since our first line arrive now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1, signal.SIGUSR2})
    gc.collect()
    gc.freeze()  # what start-up made lives as long as the process: never looked at again
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 1 << 30)  # the oldest generation: once joins and leaves settle (busy)
    pid = os.getpid()
    if "0.0.0.0" in hosts:
        log.warning("LAN mode: any device on your network can connect: %s",
                    ", ".join(f"ws://{a}:{port}" for a in command_line.lan_addresses()))
    also = "".join(f"; also on {listening.shown(h)}" for h in hosts[1:])
    if livereload_port is not None:
        also += f"; LiveReload protocol on port {livereload_port} (/livereload.js)"
    log.info("ready on ws://%s:%d (pid %d): kill -USR1 %d reloads every page, kill -USR2 %d refreshes "
             "stylesheets%s", listening.shown(hosts[0]), broadcaster.port, pid, pid, pid, also)
    try:
        await stop
        for server in servers:
            server.close()  # closes every connection with 1001 (going away)
        for server in servers:
            await server.wait_closed()
    finally:
        if mailbox:
            mailbox.close()


async def listen(handler: Callable[[ServerConnection], Awaitable[None]], hosts: list[str], port: int,
                 origins: Origins, ping_interval: float,
                 respond: Callable[[ServerConnection, Request], Response | None] | None = None) -> list[Server]:
    """The WebSocket server on ``port`` of every one of ``hosts`` (port 0: one
    free port, the same on each), a server per socket; raises OSError, naming
    the address (``filename``), when one is taken."""
    gated = type("Connection", (GatedConnection,), {"gate": Gate(HANDSHAKES_AT_ONCE)})
    sockets = listening.bind(hosts, port, BACKLOG)
    servers = [await serve(handler, sock=sock, process_request=respond or snippet_response, create_connection=gated,
                           backlog=ACCEPTS_AT_ONCE, origins=origins, compression=None, max_size=MAX_FRAME,
                           max_queue=4, ping_interval=ping_interval, ping_timeout=ping_interval, close_timeout=0.5)
               for sock in sockets]
    for sock in sockets:  # asyncio accepts ``backlog`` connections in one pass; the kernel holds more
        sock.listen(BACKLOG)
    return servers


def serve_until_stopped(hosts: list[str], port: int, origins: Origins = LOOPBACK_ORIGINS,
                        ping_interval: float = 10.0, livereload_port: int | None = None,
                        console: bool = True, morph: bool = False, overlay: bool = True,
                        follow: bool = False) -> None:
    """Serve the pages until SIGINT, SIGTERM or SIGHUP; raises OSError when it cannot listen."""
    asyncio.run(run(hosts, port, origins, ping_interval, livereload_port, console, morph, overlay, follow))
