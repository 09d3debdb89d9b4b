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
import ipaddress
import json
import logging
import os
import re
import secrets
import signal
import time
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

from sigreload import command_line, consoles, listening, livereload, page_status, platforms, process_life, secret
from sigreload.contract import messages
from sigreload.serving import limits, snippet

IDENTIFIED_PATH = "/sigreload"
MIN_GAP = 0.05  # seconds between two broadcasts; later signals merge (trailing edge)
MAX_FRAME = 4096  # clients have little to say: cap what they can send
MAX_USING = 64  # paths one page may report using
ACCEPTS_AT_ONCE = 16  # connections asyncio accepts in one pass of its loop (its backlog argument)
BACKLOG = 1024  # connections the kernel holds until they are accepted
HANDSHAKES_AT_ONCE = 32  # read at once (Gate): a pass of the loop over them takes a few ms
HANDSHAKE_DEADLINE = 10.0  # seconds from connecting to an open socket (websockets' open_timeout), queue included
MAX_HEAD = 16 << 10  # bytes of a handshake's request head
MOST_CONNECTIONS = 10_000  # in all (fewer below the open-files limit); limits.PER_ADDRESS from one LAN device
COLLECT_AFTER = 2.0  # seconds without a client joining or leaving before the old generation is collected
COLLECT_MOST = 60.0  # ... or at most this long after the last time, while clients keep coming and going
REPORT_GAP = 0.1  # seconds between two writes of what pages use
CREDIT_WINDOW = 0.1  # seconds a message collected before its signal came stands for that signal
RECENT_MOST, RECENT_AGE, RECENT_PATHS = 16, 60.0, 32  # broadcasts a hello recalls: how many, how old, their paths
# Page origins trusted by default: loopback pages (any port, http or https), and
# clients that send no Origin at all (not browsers: browsers always send one)
# from this machine only: from another, no Origin gets 403 (``from_this_machine``).
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
        return str(messages[-1]["error"]), None, None
    if not all(isinstance(m.get("root"), str) and isinstance(m.get("paths"), list)
               and all(isinstance(p, str) for p in m["paths"]) for m in messages):
        return None, None, None  # not what a watcher writes: every page
    roots = {m["root"] for m in messages}
    if not messages or len(roots) != 1:
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
        self.watcher_exit: Callable[[], None] | None = None  # stops following the watcher's exit
        self.stop_told = False  # pages were told the watcher stopped
        self.boot = secrets.token_hex(6)
        self.generation = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_MOST)  # the last broadcasts, for the hello
        self.error: str | None = None  # the last failed build's output, until a good one
        self.notice: str | None = None  # what the last good build still reported (its error lines)
        self.pending: str | None = None  # "reload" or "css" waiting for the gap to end
        self.signals = 0  # deliveries merged into the next broadcast
        self.credit, self.credit_until = 0, 0.0  # messages collected before their signals came (flush)
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
        self.key = b""  # what a tab's challenge is answered with (secret.folder_key; set by run)
        self.overlay = True  # a page's runtime errors shown on it (--no-overlay: False)
        self.follow = False  # --follow: a saved page opens in a tab; what changed is shown
        self.navigate = True  # --follow may open a saved page (False: ROOT holds an app's sources)
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
        changed). Its exit is an event (platforms.on_exit: a pidfd, or its PID
        looked at every 0.25 s): the pages are told, and again when a watcher is back."""
        said = messages.stamp(self.folder / messages.WATCHER) if self.folder else None
        if said == self.watcher_said and (self.watched is None or self.watcher_exit is not None):
            return
        self.watcher_said = said
        found = messages.watcher(self.folder)
        self.watched = found[0] if found else None
        self.forget_watcher()
        if found:
            self.watcher_exit = platforms.on_exit(found[1], self.watcher_stopped)
        if found and self.stop_told:
            self.stop_told = False
            self.tell_pages()

    def forget_watcher(self) -> None:
        if self.watcher_exit is not None:
            self.watcher_exit()
            self.watcher_exit = None

    def watcher_stopped(self) -> None:
        self.forget_watcher()
        self.watched, self.watcher_said, self.stop_told = None, None, True
        log.info("the watcher stopped: pages are told")
        self.tell_pages()

    def goodbye(self) -> None:
        """Stopping: pages that saw a watcher are told none runs now (nothing reloads
        them), before their sockets close: the relay and the proxy pass it on too."""
        if self.watched is not None:
            self.forget_watcher()
            self.watched = None
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
                 "follow": self.follow, "now": now_ms(), "recent": self.recalled()}
        if self.error:
            hello["error"] = self.error
        elif self.notice:
            hello["notice"] = self.notice
        return json.dumps(hello)

    def recalled(self) -> list[dict[str, Any]]:
        """The broadcasts of the last RECENT_AGE seconds: a page that was away (reloading,
        reconnecting) replays those that concern it, and only those, instead of a reload."""
        while self.recent and self.recent[0]["at"] < now_ms() - 1000 * RECENT_AGE:
            self.recent.popleft()
        return list(self.recent)

    def remember(self, event: dict[str, Any]) -> None:
        """Keep a broadcast for the hello: its generation, kind, time and paths (None: every file)."""
        paths = event.get("paths")
        paths = paths if paths is not None and len(paths) <= RECENT_PATHS else None
        self.recent.append({"type": event["type"], "generation": event["generation"], "at": now_ms(),
                            "paths": paths, "root": event.get("root") if paths is not None else None})

    def follow_saved(self, identified: list[ServerConnection], paths: list[str]) -> None:
        """--follow: a saved page that no page shows opens in the tab focused last (taken out of ``identified``)."""
        if not self.navigate:  # --proxy, --app: saved files are sources (templates), not pages
            return
        chosen = self.status.to_follow(identified, paths, (p for used in self.using.values() for p in used))
        if chosen:
            identified.remove(chosen[0])
            broadcast([chosen[0]], json.dumps({"type": "follow", "path": chosen[1], "boot": self.boot,
                                               "generation": self.generation}))
            log.info("a tab follows to %s", consoles.escaped(chosen[1]))

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
        collected = messages.collect(self.folder)
        if not collected and self.signals <= (self.credit if time.monotonic() < self.credit_until else 0):
            self.credit -= self.signals  # these signals' messages went out with the last broadcast
            self.signals = 0
            return
        self.generation += 1
        error, paths, root = merge(collected)
        if collected:  # a bare kill -USR1 keeps the last build's notice
            self.notice = None if error else collected[-1].get("notice")
        # Signals carry no sender: more of them than messages means a bare kill among them. (The
        # watcher posts before each signal, and merged signals count once: never more than its messages.)
        # A message can be collected a flush before its own signal arrives (posted, then the kill
        # lands after this flush read the folder): it is credited to the next flush, for a second.
        credit = self.credit if time.monotonic() < self.credit_until else 0
        credit += len(collected) - self.signals
        if credit < 0:
            paths = root = None
        if credit > self.credit:  # earned now: good for the signals of the next moment only (OS signals
            self.credit_until = time.monotonic() + CREDIT_WINDOW  # merge: an old credit could hide a bare kill)
        self.credit, self.signals = max(credit, 0), 0
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
        self.remember(event)
        if self.follow and paths is not None and not error and kind == "reload":
            self.follow_saved(identified, paths)
        broadcast(identified, json.dumps(event))
        if not error:
            broadcast(plain, "reload")
            for command in livereload.commands(kind, paths) if self.livereload else ():
                broadcast(self.livereload, command)
        what = "every file" if paths is None else ", ".join(map(consoles.escaped, paths[:3])) + (
            " ..." if len(paths) > 3 else "")  # a file's name never moves the terminal's cursor
        told = len(identified) + (0 if error else len(plain) + len(self.livereload))
        log.info("%s sent to %d page(s) (%s)", event["type"], told, "build failed" if error else what)
        self.status.reloaded(self.generation, kind, paths, bool(error), told)
        self.timer = asyncio.get_running_loop().call_later(MIN_GAP, self.flush)


def now_ms() -> int:
    """The broadcaster's wall clock in ms: pages compare it with when they were loaded."""
    return int(time.time() * 1000)


class Gate:
    """At most ``most`` WebSocket handshakes read at once; later connections
    wait, unread (reading paused), in the order their whole request head came
    (a socket that sends nothing, or a byte at a time, holds no turn: 100 such
    kept every page out). asyncio handles every socket that is ready in one
    pass: a crowd of thousands joining at once would otherwise hold the loop,
    and every signal and ping, for hundreds of milliseconds. ``crowd``: every
    connection of the process, capped (``limits.Crowd``)."""

    def __init__(self, most: int, crowd: limits.Crowd) -> None:
        self.free, self.crowd = most, crowd
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
                turn.take_turn()
                return
        self.free += 1


class GatedConnection(ServerConnection):
    """A connection whose handshake waits for its turn at ``gate`` (set per
    server), and that ends cheaply when its client is gone: thousands of
    pages may go at once (a browser quits, a laptop sleeps), and the loop
    must stay free for signals meanwhile."""

    gate: Gate
    slot = "new"
    head = b""  # what came before its turn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        gone = self.gate.crowd.join(self, str(peer[0]) if peer else "")
        for victim in gone or ():
            assert isinstance(victim, GatedConnection)
            victim.transport.abort()  # the one idle longest before its handshake
        if gone is None:
            self.transport.abort()  # full of open pages: refused

    def data_received(self, data: bytes) -> None:
        if self.slot in ("new", "waiting"):
            self.head += data
            if self.slot == "waiting" or b"\r\n\r\n" not in self.head:
                if len(self.head) > MAX_HEAD:
                    self.transport.abort()
                return
            self.gate.enter(self)
            if self.slot == "waiting":
                return
            data, self.head = self.head, b""
        super().data_received(data)

    def take_turn(self) -> None:
        """Its handshake is read now: what came meanwhile, then the rest."""
        self.slot = "held"
        self.transport.resume_reading()
        data, self.head = self.head, b""
        super().data_received(data)

    def start_keepalive(self) -> None:
        """Its handshake is over (websockets calls this then, on either port):
        the next one's turn; an open page is never let go for a newcomer."""
        self.gate.leave(self)
        self.gate.crowd.busy(self)
        super().start_keepalive()

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate.leave(self)
        self.gate.crowd.leave(self)
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


def accepting(extra: Iterable[str], file_pages: bool = False,
              hosts: Iterable[str] = ()) -> list[Origin | re.Pattern[str] | None]:
    """The page origins accepted: loopback pages, ``extra`` (--allow-origin), pages
    of ``hosts`` on any port, http or https (the addresses served, ``[::1]`` in
    brackets; --allow-host names, ".example.com": its subdomains too), and with
    ``file_pages`` the "null" origin of file:// pages (--allow-file-pages)."""
    names = [re.escape(h.lower()) if not h.startswith(".") else r"(?:[a-z0-9_-]+\.)+" + re.escape(h[1:].lower())
             for h in hosts if h and "(" not in h]  # "(no network address)"
    served = [re.compile(rf"https?://(?:{'|'.join(names)})(:\d+)?")] if names else []
    return LOOPBACK_ORIGINS + served + [Origin(o) for o in extra] + ([Origin("null")] if file_pages else [])


def from_this_machine(connection: ServerConnection) -> bool:
    """Whether a client's peer address is loopback (an IPv4-mapped one too), or unknown."""
    peer = connection.remote_address
    if not peer:
        return True
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%")[0])
    except ValueError:
        return True  # a Unix socket: this machine
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


def origin_required(respond: Callable[[ServerConnection, Request], Response | None]
                    ) -> Callable[[ServerConnection, Request], Response | None]:
    """``respond`` (a process_request), and then 403 for a handshake without an
    Origin from another machine: a client there that is not a page (a script on
    the café's Wi-Fi) would read build output, changed paths and the hello's
    recent list. Its Origin, when it sends one, is checked against those served."""
    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        response = respond(connection, request)
        if response is None and "Origin" not in request.headers and not from_this_machine(connection):
            log.debug("refused a client without an Origin from %s", connection.remote_address)
            return connection.respond(403, "A client on another machine must be a page of an origin served\n")
        return response
    return process_request


def is_livereload_port(connection: ServerConnection) -> bool:
    """Whether a client came to the LiveReload port (it gets only that protocol's commands)."""
    return connection.request is not None and connection.request.path.split("?")[0] == livereload.PATH


def is_identified(connection: ServerConnection) -> bool:
    """Whether a client is a sigreload snippet (it connected to IDENTIFIED_PATH)."""
    return (connection.request is not None and connection.request.path.startswith(IDENTIFIED_PATH)
            and not page_status.is_status(connection))


def snippet_response(connection: ServerConnection, request: Request) -> Response | None:
    """process_request: serve GET /reload.js (/idiomorph.js, for --morph; /overlay.js,
    the error toast; /status, the status page); let WebSocket handshakes through,
    the status socket's only from sigreload's relays or the /status page (status_refused)."""
    if request.path.startswith(page_status.PATH) and (why := status_refused(connection, request)):
        log.debug("status socket refused: %s", why)
        return connection.respond(403, "Only sigreload's relays and its own /status page get the status socket\n")
    name = request.path.split("?")[0][1:]
    if name not in snippet.SERVED and name != "status":
        return None
    page = name == "status"  # the status page, for a site served by another server (--no-http)
    # The snippet: 304 while the same (ETag). websockets closes the connection after any answer but 101.
    status, body, headers = (200, snippet.status_page(), snippet.STATUS_HEADERS) if page else snippet.answer(
        name, request.path, request.headers.get("If-None-Match"))
    response = connection.respond(status, body.decode())
    del response.headers["Content-Type"]  # headers is a multidict: replace, not add
    response.headers["Content-Type"] = "text/html; charset=utf-8" if page else "text/javascript; charset=utf-8"
    for header, value in headers:
        response.headers[header] = value
    return response


def status_refused(connection: ServerConnection, request: Request) -> str | None:
    """Why the status socket (every page's URL, title, errors; reloads) is not for this
    client, or None: it is for sigreload's relays (they prove it: secret.relay_proven)
    and for the broadcaster's own /status page (Origin: a loopback host, this port)."""
    port = connection.local_address[1] if connection.local_address else 0
    if secret.relay_proven(request.headers, port):
        return None
    own = {f"http://{host}:{port}" for host in ("127.0.0.1", "localhost", "[::1]")}
    origin = request.headers.get("Origin")
    return None if origin in own else f"Origin {consoles.escaped(str(origin), 100)} is not this port's /status page"


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
                if message.get("type") == "challenge":  # the tab asks who we are: secret.py
                    proof = secret.proof(broadcaster.key, broadcaster.port, message.get("nonce"))
                    if proof is not None:
                        await connection.send(json.dumps({"type": "proof", "proof": proof}))
                elif paths is not None:
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
              morph: bool = False, overlay: bool = True, follow: bool = False, navigate: bool = True) -> None:
    """Serve the pages until SIGINT, SIGTERM or SIGHUP (each closes every connection with 1001)."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def stopping() -> None:
        if not stop.done():
            stop.set_result(None)

    for name in process_life.STOP_SIGNALS:
        loop.add_signal_handler(getattr(signal, name), stopping)
    crowd = limits.Crowd(limits.most_connections(MOST_CONNECTIONS))

    def full() -> None:  # a full file table (another process's files, or ours): the longest idle go
        for victim in crowd.longest_idle(ACCEPTS_AT_ONCE):
            assert isinstance(victim, GatedConnection)
            victim.transport.abort()

    limits.quiet_accept_errors(loop, full)  # and one line a second, not a traceback per accept
    servers: list[Server] = []
    broadcaster = Broadcaster(lambda: (c for server in servers for c in server.connections))
    if not console:
        broadcaster.console = None
    broadcaster.morph, broadcaster.overlay, broadcaster.follow = morph, overlay, follow
    broadcaster.navigate = navigate
    try:
        here = os.getcwd()
    except OSError:  # run from a folder since removed
        here = "/"
    broadcaster.key = secret.folder_key(here)
    loop.add_signal_handler(signal.SIGUSR1, broadcaster.signal, "reload")
    loop.add_signal_handler(signal.SIGUSR2, broadcaster.signal, "css")
    # A storm fills asyncio's wakeup socket: the bytes already there stand for the
    # same signals (they merge anyway), so a full buffer is no reason to print.
    signal.set_wakeup_fd(signal.set_wakeup_fd(-1), warn_on_full_buffer=False)
    servers += await listen(make_handler(broadcaster), hosts, port, origins, ping_interval, crowd)
    broadcaster.port = servers[0].sockets[0].getsockname()[1]
    if livereload_port is not None:
        try:
            servers += await listen(livereload.make_handler(broadcaster.livereload, broadcaster.busy), hosts,
                                    livereload_port, origins, ping_interval, crowd, livereload.respond)
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
        broadcaster.goodbye()
        for server in servers:
            server.close()  # closes every connection with 1001 (going away)
        for server in servers:
            await server.wait_closed()
    finally:
        if mailbox:
            mailbox.close()


async def listen(handler: Callable[[ServerConnection], Awaitable[None]], hosts: list[str], port: int,
                 origins: Origins, ping_interval: float, crowd: limits.Crowd,
                 respond: Callable[[ServerConnection, Request], Response | None] | None = None) -> list[Server]:
    """The WebSocket server on ``port`` of every one of ``hosts`` (port 0: one
    free port, the same on each), a server per socket; raises OSError, naming
    the address (``filename``), when one is taken."""
    gated = type("Connection", (GatedConnection,), {"gate": Gate(HANDSHAKES_AT_ONCE, crowd)})
    sockets = listening.bind(hosts, port, BACKLOG)
    respond = origin_required(respond or snippet_response)
    servers = [await serve(handler, sock=sock, process_request=respond, create_connection=gated,
                           backlog=ACCEPTS_AT_ONCE, origins=origins, compression=None, max_size=MAX_FRAME,
                           max_queue=4, ping_interval=ping_interval, ping_timeout=ping_interval, close_timeout=0.5,
                           open_timeout=HANDSHAKE_DEADLINE)
               for sock in sockets]
    for sock in sockets:  # asyncio accepts ``backlog`` connections in one pass; the kernel holds more
        sock.listen(BACKLOG)
    return servers


def serve_until_stopped(hosts: list[str], port: int, origins: Origins = LOOPBACK_ORIGINS,
                        ping_interval: float = 10.0, livereload_port: int | None = None,
                        console: bool = True, morph: bool = False, overlay: bool = True,
                        follow: bool = False, navigate: bool = True) -> None:
    """Serve the pages until SIGINT, SIGTERM or SIGHUP; raises OSError when it cannot listen."""
    asyncio.run(run(hosts, port, origins, ping_interval, livereload_port, console, morph, overlay, follow,
                    navigate))
