"""The proxy's way to the app: a request as the app gets it, and the app's
answer's head. Only to the one app it was given, on this machine, through a
pool of kept-alive connections (aiohttp's client). A request's body (up to
EARLY bytes) is read before the app is asked. While the app's port is closed
(Django restarting) a request waits up to HOLD seconds; when it is open but
nothing accepts (uvicorn --reload after a syntax error) it waits STALL
seconds; then ``Down`` says so. The app's answering windows are left for the
watcher (``answering.Writer``)."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
from aiohttp import web
from yarl import URL

from sigreload import listening, platforms
from sigreload.contract import answering, app_down, wire
from sigreload.serving import capped, peer_user

HOLD = 5.0  # seconds a request waits while the app's port is closed
STALL = 3.0  # seconds without an answer before the proxy looks whether the app accepts at all
STALL_DOWN = 0.2  # the same, once the watcher said the app is down
LOOK_EVERY = 0.5  # seconds between two looks at the app's accept queue (accepting)
CHUNK = 64 << 10  # bytes of a client's body read at once
EARLY_AT_ONCE = 64  # requests reading EARLY bytes at once; the others read one CHUNK before the app is asked
EARLY = 1 << 20  # bytes of a request's body read before the app is asked (nginx buffers 8 KB in memory, then on disk)
APP_FIELD = 256 << 10  # bytes of one header line of the app's answer (aiohttp's 8,190 made a 16 KB policy a 502;
APP_HEADERS = 1000  # ... and headers in it (128): browsers take 256 KB in all)
LAN_AT_ONCE = 8  # requests from the LAN the app computes at once: the others wait, this machine's never
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
              "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}
# What a front server says about the request: from a client, it is made up (every X-Forwarded-* is dropped too)
FORWARDING = {"forwarded", "x-real-ip", "x-original-url", "x-rewrite-url", "x-original-host", "x-original-uri",
              "client-ip", "true-client-ip", "x-client-ip", "x-host", "x-cluster-client-ip",
              "x-script-name", "script-name", "x-url-scheme", "front-end-https", "x-original-forwarded-for"}
# (r36a4: the last five passed; X-Script-Name sets SCRIPT_NAME in common "behind a proxy" recipes)
CONDITIONAL = {"if-modified-since", "if-none-match"}  # not for pages (navigation)
NOT_FORWARDED = HOP_BY_HOP | FORWARDING | {"accept-encoding", "expect", "cookie"}  # cookies: without the snippet's
EDITED = f"{wire.EDIT_COOKIE}=1"  # the snippet's cookie on a reload after an edit that restarts nothing
CACHING_SERVERS = ("WSGIServer/", "daphne")  # Django's runserver (Server header): templates cached until a tick
# Static files: their requests are no windows in which the app writes its data (saying one costs two writes)
STATIC = re.compile(r"\.(css|m?js|map|png|jpe?g|gif|svg|webp|avif|ico|woff2?|ttf|otf|txt)$", re.I)


class Down(Exception):
    """The app does not answer; ``why`` says how (``starting``: it never answered yet)."""

    def __init__(self, why: str, starting: bool = False) -> None:
        super().__init__(why)
        self.why, self.starting = why, starting


class Unreadable(Down):
    """The app answered, in HTTP the proxy cannot read (a broken chunk, a
    header over APP_FIELD): it is not down, and its page must not wait for
    it to come back (it would reload into the same answer, ten times a second)."""


def accepting(port: int) -> bool:
    """False when the app's listening socket on ``port`` has connections that
    nothing accepts (platforms.accepting); True otherwise. Looked at once per
    LOOK_EVERY for all requests: each waiting request read the whole TCP
    table (thousands of rows) in the event loop, and 600 waiting requests
    held it for seconds."""
    now = time.monotonic()
    at, answer = _looked.get(port, (-LOOK_EVERY, True))
    if now - at >= LOOK_EVERY:
        answer = platforms.accepting(port)
        _looked[port] = (now, answer)
    return answer


_early = [0]  # requests reading their body before the app is asked, now
_looked: dict[int, tuple[float, bool]] = {}  # port -> (when, what accepting() saw)


def expects_continue(request: web.BaseRequest) -> bool:
    """Whether the client waits for 100 Continue before it sends its body."""
    return request.headers.get("Expect", "").lower() == "100-continue" and request.version >= (1, 1)


def from_lan(request: web.BaseRequest) -> bool:
    """Whether ``request``'s client is on another machine (not loopback), or
    another user's on this one (``peer_user``: it waits for a turn as the LAN's)."""
    client = getattr(request.protocol, "client", None)
    if isinstance(client, str) and client.startswith(peer_user.USER_PREFIX):
        return True
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return peer is not None and not ipaddress.ip_address(str(peer[0]).partition("%")[0]).is_loopback


def app_continues(request: web.BaseRequest) -> bool:
    """Whether the app says 100 Continue (or refuses the body) for ``request``: a
    client on this machine's only. A LAN client gets it from the proxy at once, as
    nginx does, and its body is read first as any body: 600 requests from the LAN
    that never sent theirs held as many connections and threads of the app, and the
    proxy looked at the app's accept queue for each."""
    return expects_continue(request) and not from_lan(request)


class Forwarder:
    """Requests to the app at ``app`` (scheme, host, port); ``patience``: seconds
    a request's body may take before BODY_RATE counts; ``folder``: the
    broadcaster's message folder (the watcher's word that the app is down);
    ``answering``: where the app's answering windows go (None: nowhere)."""

    def __init__(self, *, app: tuple[str, str, int], patience: float,
                 folder: Callable[[], Path | None] = lambda: None,
                 answering: answering.Writer | None = None) -> None:
        self.scheme, self.host, self.port = app
        self.patience, self.folder, self.answering = patience, folder, answering
        self.base = f"{self.scheme}://{listening.shown(self.host)}:{self.port}"
        self.session: aiohttp.ClientSession | None = None
        self.answered = 0.0  # when the app last answered (time.time())
        self.server: str | None = None  # the Server header of the app's last answer
        self.lan_turns = asyncio.Semaphore(LAN_AT_ONCE)  # 300 LAN clients posting in a loop: pages took 9 s

    async def open(self) -> None:
        context: ssl.SSLContext | bool = False if self.scheme == "https" else True  # loopback only: no verify
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=capped.most_clients(), ssl=context, enable_cleanup_closed=True,
                                           **capped.small_reads()),
            cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False, read_bufsize=capped.READ,
            max_line_size=APP_FIELD, max_field_size=APP_FIELD, max_headers=APP_HEADERS,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=HOLD, sock_read=None),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"))

    async def close(self) -> None:
        if self.session:
            await self.session.close()

    def upstream_headers(self, request: web.BaseRequest, navigation: bool) -> list[tuple[str, str]]:
        """The client's headers for the app: hop-by-hop ones dropped, forwarding ones replaced;
        a ``navigation`` to a page that gets the snippet is asked for whole (never a 304: a
        server that compares If-Modified-Since in whole seconds, as http.server does,
        answered 304 for a page saved twice in one second)."""
        dropped = NOT_FORWARDED | CONDITIONAL if navigation else NOT_FORWARDED
        headers = [(k, v) for k, v in request.headers.items()  # X_Forwarded_For: WSGI reads it as X-Forwarded-For
                   if (name := k.lower().replace("_", "-")) not in dropped and not name.startswith("x-forwarded-")]
        if cookie := "; ".join(c for c in request.headers.getall("Cookie", ())
                               for c in [c.strip() for c in c.split(";")] if c and c != EDITED):
            headers.append(("Cookie", cookie))
        peer = request.transport.get_extra_info("peername") if request.transport else None
        headers += [("Accept-Encoding", "identity"),  # nothing to decode, mostly
                    ("X-Forwarded-Proto", request.scheme), ("X-Forwarded-Host", request.headers.get("Host", ""))]
        # A client on this machine: the app sees our connection's real address and port (uvicorn
        # trusts X-Forwarded-For from loopback and would log it as 127.0.0.1:0); another one's address
        if peer and not ipaddress.ip_address(peer[0].partition("%")[0]).is_loopback:
            headers.append(("X-Forwarded-For", peer[0]))
        return headers

    async def early(self, request: web.BaseRequest) -> capped.ClientBody:
        """The client's body, read before the app is asked: whole when it has at
        most EARLY bytes (600 POSTs trickling theirs held as many connections
        and threads of the app, and the developer's requests waited behind
        them), else its first EARLY bytes; meanwhile its connection may be let
        go as an idle one. None read when the app says 100 Continue
        (``app_continues``): it says first whether it wants the body."""
        early = capped.ClientBody(request, CHUNK, self.patience)
        if request.body_exists and not app_continues(request):
            if expects_continue(request):
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            capped.answering(request, False)
            most = EARLY if _early[0] < EARLY_AT_ONCE else CHUNK  # 600 bodies that never end held 1 MB each
            _early[0] += 1
            try:
                await early.read(most)
            finally:
                _early[0] -= 1
                capped.answering(request, True)
        return early

    async def body(self, request: web.BaseRequest, sent: Callable[[], None],
                   early: capped.ClientBody) -> AsyncIterator[bytes]:
        """The client's body, streamed (what ``early`` read first), then ``sent()``; a
        client that expects 100-continue gets it when the app asked for the body
        (aiohttp sends it after the app's 100)."""
        if app_continues(request):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        async for data in early.rest():  # a body that never comes is cut
            yield data
        sent()

    async def send(self, request: web.BaseRequest, navigation: bool) -> aiohttp.ClientResponse:
        """The app's answer (headers); Down when its port stays closed for
        HOLD seconds, or when it accepts nothing for STALL seconds; at once (STALL_DOWN) when the
        watcher said it is down since it last answered. At most LAN_AT_ONCE
        requests from the LAN are with the app at once."""
        early = await self.early(request)  # the app sees a request once its body came (up to EARLY bytes)
        if not from_lan(request):
            return await self.ask(request, navigation, early)
        capped.answering(request, False)  # waiting for a turn: a full server may let it go
        try:
            await self.lan_turns.acquire()
        finally:
            capped.answering(request, True)
        try:
            return await self.ask(request, navigation, early)
        finally:
            self.lan_turns.release()

    async def ask(self, request: web.BaseRequest, navigation: bool, early: capped.ClientBody) -> aiohttp.ClientResponse:
        assert self.session is not None
        method = "GET" if request.method == "HEAD" else request.method  # HEAD answered as GET would be
        expect = app_continues(request)
        loop = asyncio.get_running_loop()
        end = loop.time() + HOLD
        task, stalled = asyncio.current_task(), list[bool]()

        def stall() -> None:  # no answer yet: does the app accept connections at all?
            if accepting(self.port):
                watch.append(loop.call_later(STALL, stall))
            elif task is not None:
                stalled.append(True)
                task.cancel()

        def first_look() -> None:
            if self.said_down():
                stall()
            else:
                watch.append(loop.call_later(STALL - STALL_DOWN, stall))

        url = URL(self.base + request.raw_path, encoded=True)  # the request target as the client sent it
        answering = self.answering if not STATIC.search(request.raw_path.partition("?")[0]) else None

        def computing() -> None:
            if answering is not None:
                answering.begin(id(request), time.time())

        while True:  # the app computes its answer once it has the whole request, until its headers
            data: bytes | AsyncIterator[bytes] | None = None
            if early.whole and request.body_exists:
                data = b"".join(early.pieces)
            elif not early.whole:
                data = self.body(request, computing, early)
            if not isinstance(data, AsyncIterator):
                computing()
            watch = [loop.call_later(STALL_DOWN, first_look)]
            try:
                upstream = await self.session.request(
                    method, url, headers=self.upstream_headers(request, navigation), data=data, allow_redirects=False,
                    expect100=expect)
                self.answered, self.server = time.time(), upstream.headers.get("Server", "")
                return upstream
            except asyncio.CancelledError:
                if not stalled:
                    raise
                raise Down("it accepts connections but does not answer (a syntax error?)") from None
            except aiohttp.ClientConnectorError as exc:
                refused = isinstance(exc.os_error, ConnectionRefusedError)
                if refused and not self.answered:  # not started yet: say so at once (no restart to wait for)
                    raise Down("nothing listens on its port yet: it is starting, or not started", True) from None
                if not refused or loop.time() > end or self.said_down():
                    raise Down("it is restarting, or it stopped with an error") from None
                await asyncio.sleep(0.05)
            except (aiohttp.ClientResponseError, aiohttp.ClientPayloadError) as exc:
                raise Unreadable(f"its answer could not be read: {getattr(exc, 'message', '') or exc}") from None
            except (aiohttp.ClientError, OSError) as exc:
                raise Down(f"it broke the connection ({exc.__class__.__name__})") from None
            finally:
                for handle in watch:
                    handle.cancel()
                if answering is not None:
                    answering.end(id(request), time.time())

    def caches_templates(self) -> bool:
        """Whether the app may serve old templates for a while after an edit: Django's
        runserver (its cached loader, until its reloader's next tick), known by its
        Server header (wsgiref's; daphne's under Channels), or an app not seen yet.
        Only then is a page still as before asked for again; any other unchanged
        page (a template it does not render, an htmx partial's) goes out at once."""
        return self.server is None or self.server.startswith(CACHING_SERVERS)

    def said_down(self) -> bool:
        """Whether the watcher said the app is down since it last answered."""
        since = app_down.read(self.folder())
        return since is not None and since > self.answered
