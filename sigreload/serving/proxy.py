"""The proxy: sigreload in front of your app server (``sigreload APP --proxy URL``),
on aiohttp: its server (strict llhttp parsing, keep-alive with timeouts) and
its client (a pool of kept-alive connections to the app, streaming both ways),
on uvloop's event loop.

It forwards every request to the one app server it was given, on this
machine, and never anywhere else. Method, body (streamed, chunked or not),
headers, cookies and status pass through; ``X-Forwarded-*``, ``Forwarded``
and ``X-Original-URL`` from the client are dropped (the proxy says its own
``X-Forwarded-For``, ``-Proto`` and ``-Host``), a Host header that is not a
name or an address and a port is 400; informational answers (103) are
dropped and ``Expect: 100-continue`` is the app's to answer; a redirect to
the app's own address comes back as one to the proxy's; the app's WebSockets
are relayed. Only documents get the snippet, first in <head>: an
HTML answer to a navigation (``Sec-Fetch-Dest: document`` or ``iframe``;
without Sec-Fetch headers, an answer that is a whole document). Fragments,
``fetch()`` answers and empty bodies pass byte for byte. A non-HTML error
answer to a navigation is shown in a page that has the snippet. HEAD is
answered as GET would be, without the body. A body the app cuts short cuts
the client's answer at once. The snippet and its socket are served on the
proxy's own origin under /_sigreload/, so a page's ``script-src 'self'``
allows them, and a CSP nonce of the answer is reused for the inserted
script. While the app's port is closed (Django restarting) a request waits
up to HOLD seconds; when it is open but nothing accepts (uvicorn --reload
after a syntax error) it waits STALL seconds; then a page from sigreload says
so and comes back by itself once the app answers. After an edit that
restarts nothing (the snippet says so with a cookie, never passed on), a
page that is still the one served before is asked for again (AGAIN): Django
serves a cached template until its reloader's next tick.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import uvloop
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from sigreload import app_ready, editor, listening, platforms, secret
from sigreload.contract import discovery, messages
from sigreload.serving import answer_headers, capped, common, injection, limits, page_digest, snippet

log = logging.getLogger("sigreload.proxy")
PREFIX = "/_sigreload/"  # the snippet (reload.js) and its socket, on the page's own origin
OWN_ORIGIN = "http://127.0.0.1"  # the Origin a checked page's socket reaches the broadcaster with
HOLD = 5.0  # seconds a request waits while the app's port is closed
STALL = 3.0  # seconds without an answer before the proxy looks whether the app accepts at all
STALL_DOWN = 0.2  # the same, once the watcher said the app is down
STATUS_WAIT = 0.3  # seconds /_sigreload/app waits for the app to take a connection
BUFFER = injection.BUFFER  # an HTML answer with a length up to this is changed whole; others stream
SNIFF = injection.SNIFF  # bytes looked at to tell a whole document from a fragment (no Sec-Fetch headers)
ERROR_SHOWN = 1 << 20  # bytes of a non-HTML error answer shown in its page
CHUNK = 64 << 10
EARLY = 1 << 20  # bytes of a request's body read before the app is asked (nginx buffers 8 KB in memory, then on disk)
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
              "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}
# What a front server says about the request: from a client, it is made up (every X-Forwarded-* is dropped too)
FORWARDING = {"forwarded", "x-real-ip", "x-original-url", "x-rewrite-url", "x-original-host", "x-original-uri",
              "client-ip", "true-client-ip", "x-client-ip", "x-host", "x-cluster-client-ip"}
CONDITIONAL = {"if-modified-since", "if-none-match"}  # not for pages (navigation)
NOT_FORWARDED = HOP_BY_HOP | FORWARDING | {"accept-encoding", "expect", "cookie"}  # cookies: without the snippet's
EDITED = "sigreload-edit=1"  # the snippet's cookie on a reload after an edit that restarts nothing
AGAIN = (0.1, 0.2, 0.3, 0.4, 0.6)  # seconds between asking again for a page still as before (Django: 1 s tick)
PAGES_KEPT = 256  # documents whose digest is kept
CACHING_SERVERS = ("WSGIServer/", "daphne")  # Django's runserver (Server header): templates cached until a tick
# Static files: their requests are no windows in which the app writes its data (saying one costs two writes)
STATIC = re.compile(r"\.(css|m?js|map|png|jpe?g|gif|svg|webp|avif|ico|woff2?|ttf|otf|txt)$", re.I)
DOCUMENTS = injection.DOCUMENTS  # Sec-Fetch-Dest of a navigation
DOWN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="sigreload-down"><title>{title}</title></head>
<body style="font: 16px/1.5 system-ui, sans-serif; margin: 3em">
<h1>{title}</h1>
<p>sigreload's proxy cannot reach <code>{app}</code>: {why} (see its terminal).
This page reloads by itself once it answers.</p>
</body></html>
"""
ERROR_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{status} {reason}</title></head>
<body><pre style="white-space: pre-wrap">{text}</pre></body></html>
"""


class Stale(Exception):
    """The app answered the page it answered before the edit: ask again after ``wait`` seconds."""

    def __init__(self, wait: float) -> None:
        super().__init__(wait)
        self.wait = wait


class Down(Exception):
    """The app does not answer; ``why`` says how (``starting``: it never answered yet)."""

    def __init__(self, why: str, starting: bool = False) -> None:
        super().__init__(why)
        self.why, self.starting = why, starting


def accepting(port: int) -> bool:
    """False when the app's listening socket on ``port`` has connections that
    nothing accepts (platforms.accepting); True otherwise."""
    return platforms.accepting(port)


class Proxy:
    """The request handler: everything to ``app`` (scheme, host, port); the
    snippet from ``broadcaster`` (host, port; None: none inserted)."""

    def __init__(self, app: tuple[str, str, int], broadcaster: tuple[str, int] | None, lan: bool) -> None:
        self.scheme, self.host, self.port = app
        self.broadcaster, self.lan = broadcaster, lan
        self.allowed_hosts: tuple[str, ...] = ()  # --allow-host
        self.base = f"{self.scheme}://{listening.shown(self.host)}:{self.port}"
        self.session: aiohttp.ClientSession | None = None
        self.pages: dict[str, bytes] = {}  # path -> digest of the document served there last
        self.answering: messages.Answering | None = None  # when the app answered, for the watcher
        self.folder: Callable[[], Path | None] = lambda: None  # the broadcaster's message folder
        self.answered = 0.0  # when the app last answered (time.time())
        self.patience = 15.0  # seconds a request's head may take, and its body before BODY_RATE counts (idle_timeout)
        self.relaying = 0  # pages' sockets relayed to the broadcaster: a stopping proxy waits for its goodbye
        self.server: str | None = None  # the Server header of the app's last answer
        self.opener: editor.Opener | None = None  # opens files in the editor for the pages' toasts

    async def open(self) -> None:
        context: ssl.SSLContext | bool = False if self.scheme == "https" else True  # loopback only: no verify
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=capped.most_clients(), ssl=context, enable_cleanup_closed=True,
                                           **capped.small_reads()),
            cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False, read_bufsize=capped.READ,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=HOLD, sock_read=None),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"))

    async def close(self) -> None:
        if self.session:
            await self.session.close()

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        capped.answering(request, True)  # never let go while answered
        try:
            return await self.answer(request)
        finally:
            capped.answering(request, False)

    async def answer(self, request: web.BaseRequest) -> web.StreamResponse:
        hosts = request.headers.getall("Host", [])
        host = hosts[0] if len(hosts) == 1 else None
        if common.host_name(host) is None:  # userinfo, a list, two of them: what would the app read?
            refused = web.Response(status=400, body=common.HOST_MALFORMED, content_type="text/plain")
            refused.force_close()  # what follows on this connection is never read as a request
            return refused
        if not common.host_allowed(host, self.lan, self.allowed_hosts):
            return web.Response(status=403, body=common.HOST_REFUSED, content_type="text/plain")
        if not request.raw_path.startswith("/"):  # absolute-form or CONNECT: never an open proxy
            return web.Response(status=400, text="sigreload's proxy forwards only to its app\n")
        try:
            if request.raw_path.startswith(PREFIX):
                return await self.own(request)
            if request.headers.get("Upgrade", "").lower() == "websocket":
                app_socket = self.base.replace("http", "ws", 1) + request.raw_path  # https: wss
                return await self.relay(request, URL(app_socket, encoded=True))
            return await self.forward(request)
        except Down as down:
            log.debug("%s %s: %s", request.method, request.raw_path, down.why)
            return self.down(down.why, down.starting)
        except (ConnectionError, asyncio.CancelledError) as gone:  # the client went away
            log.debug("%s %s: the client went away (%s)", request.method, request.raw_path, gone)
            raise asyncio.CancelledError from None

    async def own(self, request: web.BaseRequest) -> web.StreamResponse:
        """/_sigreload/reload.js is the snippet; /_sigreload/socket, the broadcaster's socket."""
        name = urlsplit(request.raw_path).path[len(PREFIX):]
        if name == "app":  # the down page asks until it is up: always 200 (a 502 would be a console line each time)
            up = await asyncio.to_thread(app_ready.answers, self.host, self.port, STATUS_WAIT, self.scheme)
            return web.json_response({"up": up}, headers={"Cache-Control": "no-store"})
        if name == "socket" and self.broadcaster:
            if not common.same_origin(request.headers.get("Origin"), request.headers.get("Host"), request.scheme):
                return web.Response(status=403, text="Only this origin's pages get its socket\n")
            host, port = self.broadcaster
            path = "/sigreload/status" if urlsplit(request.raw_path).query == "status" else "/sigreload"
            peer = request.transport.get_extra_info("peername") if request.transport else None
            self.relaying += 1
            try:
                proof = secret.relay_proof(port)  # the broadcaster believes the peer, and gives the status socket, then
                return await self.relay(request, f"ws://{listening.shown(host)}:{port}{path}", OWN_ORIGIN,
                                        ({"X-Sigreload-Peer": str(peer[0])} if peer else {})
                                        | ({secret.RELAY_HEADER: proof} if proof else {}))
            finally:
                self.relaying -= 1
        if name == "" and self.broadcaster:
            return web.Response(body=snippet.status_page(), content_type="text/html", charset="utf-8",
                                headers=dict(snippet.STATUS_HEADERS))
        if name in ("token", "open") and self.opener:
            return await self.editor(request, name, self.opener)
        if name in snippet.SERVED:
            return web.Response(body=snippet.served(name), content_type="text/javascript", charset="utf-8",
                                headers={"Cache-Control": "no-cache"})
        return web.Response(status=404, text="Nothing at this address\n")

    async def editor(self, request: web.BaseRequest, name: str, opener: editor.Opener) -> web.StreamResponse:
        """/_sigreload/token and /_sigreload/open: the editor, for the pages' toasts (editor.Opener checks)."""
        transport = request.transport
        peer, here = (transport.get_extra_info("peername"), transport.get_extra_info("sockname")) if transport \
            else (None, None)
        ours = peer is not None and here is not None and await asyncio.to_thread(editor.ours, peer, here[1])
        if name == "token":
            status, body = opener.token_answer(request.headers.get("Sec-Fetch-Site"), ours)
            return web.Response(status=status, body=body, content_type="application/json",
                                headers=dict(editor.TOKEN_HEADERS))
        if request.method != "POST":
            return web.Response(status=405, text="POST only\n")
        body = await request.content.read(editor.MOST_BODY + 1)
        same = common.same_origin(request.headers.get("Origin"), request.headers.get("Host"), request.scheme)
        status, why = opener.answer(same, body if len(body) <= editor.MOST_BODY else b"", ours)
        return web.Response(status=status, body=f"{why}\n".encode() if why else None)

    def upstream_headers(self, request: web.BaseRequest) -> list[tuple[str, str]]:
        """The client's headers for the app: hop-by-hop ones dropped, forwarding ones replaced."""
        dropped = NOT_FORWARDED | CONDITIONAL if self.navigation(request) else NOT_FORWARDED
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

    def navigation(self, request: web.BaseRequest) -> bool:
        """A navigation to a page that gets the snippet: it is asked for whole (never
        a 304: a server that compares If-Modified-Since in whole seconds, as
        http.server does, answered 304 for a page saved twice in one second)."""
        return self.broadcaster is not None and request.headers.get("Sec-Fetch-Dest") in DOCUMENTS

    async def early(self, request: web.BaseRequest) -> capped.ClientBody:
        """The client's body, read before the app is asked: whole when it has at
        most EARLY bytes (600 POSTs trickling theirs held as many connections
        and threads of the app, and the developer's requests waited behind
        them), else its first EARLY bytes; meanwhile its connection may be let
        go as an idle one. None read when the client expects 100-continue:
        the app says first whether it wants it."""
        early = capped.ClientBody(request, CHUNK, self.patience)
        if request.body_exists and not expects_continue(request):
            capped.answering(request, False)
            try:
                await early.read(EARLY)
            finally:
                capped.answering(request, True)
        return early

    async def body(self, request: web.BaseRequest, sent: Callable[[], None],
                   early: capped.ClientBody) -> AsyncIterator[bytes]:
        """The client's body, streamed (what ``early`` read first), then ``sent()``; a
        client that expects 100-continue gets it when the app asked for the body
        (aiohttp sends it after the app's 100)."""
        if expects_continue(request):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        async for data in early.rest():  # a body that never comes is cut
            yield data
        sent()

    async def send(self, request: web.BaseRequest) -> aiohttp.ClientResponse:
        """The app's answer (headers); Down when its port stays closed for
        HOLD seconds, or when it accepts nothing for STALL seconds; at once
        (STALL_DOWN) when the watcher said it is down since it last answered."""
        assert self.session is not None
        early = await self.early(request)  # the app sees a request once its body came (up to EARLY bytes)
        method = "GET" if request.method == "HEAD" else request.method  # HEAD answered as GET would be
        expect = expects_continue(request)
        loop = asyncio.get_running_loop()
        end = loop.time() + HOLD
        task, stalled = asyncio.current_task(), list[bool]()

        def stall() -> None:  # no answer yet: does the app accept connections at all?
            if accepting(self.port):
                watch[0] = loop.call_later(STALL, stall)
            elif task is not None:
                stalled.append(True)
                task.cancel()

        def first_look() -> None:
            if self.said_down():
                stall()
            else:
                watch[0] = loop.call_later(STALL - STALL_DOWN, stall)

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
                    method, url, headers=self.upstream_headers(request), data=data, allow_redirects=False,
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
            except (aiohttp.ClientError, OSError) as exc:
                raise Down(f"it broke the connection ({exc.__class__.__name__})") from None
            finally:
                watch[0].cancel()
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
        since = messages.app_down_since(self.folder())
        return since is not None and since > self.answered

    async def forward(self, request: web.BaseRequest) -> web.StreamResponse:
        edited = request.method == "GET" and any(EDITED in c.split("; ") for c in request.headers.getall("Cookie", ()))
        waits = iter(AGAIN if edited and self.caches_templates() else ())
        while True:
            upstream = await self.send(request)
            try:
                return await self.respond(request, upstream, next(waits, None))
            except Stale as stale:
                log.debug("%s: the same page as before the edit: asking again in %.1f s", request.raw_path, stale.wait)
                await asyncio.sleep(stale.wait)
            finally:
                upstream.release()

    async def respond(self, request: web.BaseRequest, upstream: aiohttp.ClientResponse,
                      again: float | None = None) -> web.StreamResponse:
        """The client's answer from ``upstream``; raises Stale (read, nothing sent)
        when ``again`` is given and the page is the one served before."""
        head = request.method == "HEAD"
        headers = headers_of(upstream, request, self)
        ctype = upstream.headers.get("Content-Type", "").lower()
        encoding = upstream.headers.get("Content-Encoding", "identity").strip().lower()
        dest = request.headers.get("Sec-Fetch-Dest")
        bodyless = upstream.status in (204, 304) or upstream.status < 200
        if head and not self.injects(request, ctype, encoding, bodyless, upstream):
            upstream.close()  # its body is not needed: never read a download for a HEAD
            return await self.start(request, upstream, headers, upstream.content_length)
        a_page = answer_headers.media_type(ctype) in answer_headers.HTML_TYPES
        if not bodyless and dest in DOCUMENTS and upstream.status >= 400 and not a_page and self.broadcaster:
            return await self.error_page(request, upstream)
        body = Body(upstream)
        if not self.injects(request, ctype, encoding, bodyless, upstream):
            length = upstream.content_length
            if length is not None and length <= CHUNK and not bodyless:  # small: one write (most assets)
                body.first = [d async for d in body.pieces()]
                if not body.cut:
                    return await self.whole(request, upstream, headers, b"".join(body.first))
            return await self.pipe(request, upstream, headers, body)
        changed = [(k, v) for k, v in headers if k.lower() not in ("content-length", "content-encoding")]
        inserter = injection.Inserter(self.tag(upstream), encoding)
        length = upstream.content_length
        if length is None and again is not None:  # after an edit: whole if small, to compare it
            async for data in body.pieces():
                body.first.append(data)
                if sum(map(len, body.first)) > BUFFER:
                    break
        if (length is not None and length <= BUFFER) or body.done:  # whole: compared, then injected at once
            body.first = [d async for d in body.pieces()]
            raw = b"".join(body.first)
            page = decoded(raw, encoding)
            if page is not None and not body.cut:
                if not self.document(dest, page):
                    return await self.whole(request, upstream, headers, raw)
                out = injection.inject(page, inserter.tag)
                if self.remember(request.raw_path, page_digest.digest(upstream.status, [out])) and again is not None:
                    raise Stale(again)
                return await self.whole(request, upstream, changed, out)
        return await self.stream(request, upstream, changed, inserter, dest, body, headers)

    def remember(self, path: str, seen: bytes) -> bool:
        """Whether the document served at ``path`` last time had the digest ``seen``; remembers it."""
        same = self.pages.pop(path, None) == seen
        self.pages[path] = seen
        while len(self.pages) > PAGES_KEPT:
            self.pages.pop(next(iter(self.pages)))
        return same

    def injects(self, request: web.BaseRequest, ctype: str, encoding: str, bodyless: bool,
                upstream: aiohttp.ClientResponse) -> bool:
        """Whether the answer may get the snippet: HTML, decodable, with a body, for a document,
        whole (no 206, no Content-Range), not a download."""
        dest, htmx = request.headers.get("Sec-Fetch-Dest"), "HX-Request" in request.headers
        partial = upstream.status == 206 or "Content-Range" in upstream.headers
        disposition = upstream.headers.get("Content-Disposition", "")
        if not self.broadcaster or not injection.injects(dest, ctype, "identity", bodyless, htmx, partial, disposition):
            return False
        if encoding not in injection.ENCODINGS:
            log.warning("%s: cannot insert the snippet into a %s-encoded page", request.raw_path, encoding)
            return False
        return True

    @staticmethod
    def document(dest: str | None, start: bytes) -> bool:
        """An answer to a navigation, or (no Sec-Fetch headers) one that starts a whole document."""
        return injection.document(dest, start)

    async def start(self, request: web.BaseRequest, upstream: aiohttp.ClientResponse,
                    headers: list[tuple[str, str]], length: int | None) -> web.StreamResponse:
        """The client's answer, headers sent: status, ``headers``, and ``length`` (None: chunked)."""
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in headers:
            if name.lower() != "content-length":
                response.headers.add(name, value)
        if length is not None:
            response.content_length = length
        elif request.version >= (1, 1) and upstream.status not in (204, 304) and upstream.status >= 200:
            response.enable_chunked_encoding()
        await response.prepare(request)
        return response

    async def whole(self, request: web.BaseRequest, upstream: aiohttp.ClientResponse,
                    headers: list[tuple[str, str]], body: bytes) -> web.StreamResponse:
        """A whole answer: headers and body in one write (none to HEAD, its length kept)."""
        response = web.Response(status=upstream.status, reason=upstream.reason, body=body,
                                headers=CIMultiDict((k, v) for k, v in headers if k.lower() != "content-length"))
        return response

    async def pipe(self, request: web.BaseRequest, upstream: aiohttp.ClientResponse,
                   headers: list[tuple[str, str]], body: Body) -> web.StreamResponse:
        """The app's answer, byte for byte, as it comes (never cut for silence)."""
        response = await self.start(request, upstream, headers, upstream.content_length)
        async for data in body.pieces():
            await capped.write(request, response, data)
        return await self.end(request, response, body)

    async def end(self, request: web.BaseRequest, response: web.StreamResponse, body: Body) -> web.StreamResponse:
        """The answer's end; a body the app cut short cuts the client's answer, at once."""
        if body.cut:
            log.debug("%s %s: the app's body was cut: so is the answer", request.method, request.raw_path)
            if request.transport:
                request.transport.abort()
            raise asyncio.CancelledError
        await response.write_eof()
        return response

    async def stream(self, request: web.BaseRequest, upstream: aiohttp.ClientResponse,
                     headers: list[tuple[str, str]], inserter: injection.Inserter,
                     dest: str | None, body: Body, unchanged: list[tuple[str, str]]) -> web.StreamResponse:
        """An HTML answer of unknown (or too big a) length, the snippet inserted on
        the way. Without Sec-Fetch headers its first bytes decide whether it is a
        document; if not, it passes as it is (``unchanged`` headers)."""
        if request.method == "HEAD":  # as GET would: chunked, no length
            upstream.close()
            return await self.start(request, upstream, headers, None)
        if dest not in DOCUMENTS:
            sniffer, sniffed, pieces = injection.Inserter(b"", inserter.encoding), b"", body.pieces()
            async for data in pieces:
                body.first.append(data)
                sniffed += sniffer.feed(data)
                if len(sniffed) >= SNIFF:
                    break
            if not self.document(dest, sniffed + sniffer.held):
                return await self.pipe(request, upstream, unchanged, body)
        response = await self.start(request, upstream, headers, None)
        seen = page_digest.PageDigest(upstream.status)  # of what the client gets, as for a whole page
        async for data in body.pieces():
            for out in inserter.pieces(data):
                if out:
                    seen.update(out)
                    await capped.write(request, response, out)
        if not body.cut:
            last = inserter.end()
            seen.update(last)
            await response.write(last)
            self.remember(request.raw_path, seen.digest())
        return await self.end(request, response, body)

    async def error_page(self, request: web.BaseRequest, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        """A non-HTML error answer to a navigation, shown in a page with live reload."""
        body = await upstream.content.read(ERROR_SHOWN)
        text = html.escape(body.decode(upstream.charset or "utf-8", "replace"))
        page = ERROR_PAGE.format(status=upstream.status, reason=html.escape(upstream.reason or ""), text=text)
        page_bytes = injection.inject(page.encode(), self.tag(upstream))
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")]
        return await self.whole(request, upstream, headers, page_bytes)

    def tag(self, upstream: aiohttp.ClientResponse | None = None) -> bytes:
        """The snippet's <script>, with the nonce the answer's CSP allows scripts by."""
        policy = ",".join(upstream.headers.getall("Content-Security-Policy", ())) if upstream else ""
        return snippet.tag(f"{PREFIX}reload.js", answer_headers.script_nonce(policy))

    def rewrite(self, request: web.BaseRequest, name: str, value: str) -> str:
        """A redirect to the app's own address points at the proxy; cookies lose a loopback Domain."""
        lower = name.lower()
        if lower == "location":
            parts = urlsplit(value)
            host = parts.hostname or ""
            loopback = host in ("localhost", "::1") or host.startswith("127.")
            if parts.scheme in ("http", "https") and loopback and (parts.port or 80) == self.port:
                return parts._replace(scheme=request.scheme, netloc=request.headers.get("Host") or "").geturl()
        elif lower == "set-cookie":
            return re.sub(r";\s*domain=\s*\.?(localhost|127\.0\.0\.1|\[?::1\]?)\s*(?=;|$)", "", value, flags=re.I)
        return value

    def down(self, why: str, starting: bool = False) -> web.Response:
        """The app does not answer: a page that says so and comes back by itself."""
        title = "Your app is starting" if starting else "Your app does not answer"
        page = DOWN_PAGE.format(title=title, app=html.escape(self.base + "/"), why=html.escape(why))
        return web.Response(status=502, body=injection.inject(page.encode(), self.tag()),
                            content_type="text/html", charset="utf-8",
                            headers={"X-Sigreload-Down": "1", "Cache-Control": "no-store"})

    async def relay(self, request: web.BaseRequest, url: str | URL, origin: str | None = None,
                    extra: dict[str, str] | None = None) -> web.StreamResponse:
        """A WebSocket to ``url`` (the app's, or the broadcaster's), message for
        message, both ways; ``origin`` (when given) replaces the client's Origin;
        ``extra`` headers are added (the client's address, for the status page)."""
        assert self.session is not None
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("cookie", "origin", "authorization", "user-agent")} | (extra or {})
        if origin is not None:
            headers = {k: v for k, v in headers.items() if k.lower() != "origin"} | {"Origin": origin}
        try:
            upstream = await self.session.ws_connect(url, protocols=offered, headers=headers, autoping=False,
                                                     max_msg_size=0, compress=0)
        except aiohttp.WSServerHandshakeError as exc:
            return web.Response(status=exc.status, text=f"{exc.message}\n")
        except (aiohttp.ClientError, OSError) as exc:
            raise Down(f"its WebSocket does not answer ({exc.__class__.__name__})") from None
        client = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else (),
                                       autoping=False, max_msg_size=0, compress=False)
        await client.prepare(request)

        async def pump(source: Any, sink: Any) -> None:
            async for message in source:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await sink.send_str(message.data)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    await sink.send_bytes(message.data)
                elif message.type == aiohttp.WSMsgType.PING:
                    await sink.ping(message.data)
                elif message.type == aiohttp.WSMsgType.PONG:
                    await sink.pong(message.data)
            await sink.close(code=source.close_code or aiohttp.WSCloseCode.OK)

        try:
            await asyncio.gather(pump(client, upstream), pump(upstream, client))
        except (ConnectionError, aiohttp.ClientError):
            pass
        finally:
            await upstream.close()
            await client.close()
        return client


class Body:
    """The app's body as it comes: ``pieces()`` gives what was read already
    (``first``), then the rest; ``cut`` once it ended short (a closed
    connection, fewer bytes than its Content-Length)."""

    def __init__(self, upstream: aiohttp.ClientResponse) -> None:
        self.upstream, self.cut, self.done = upstream, False, False
        self.first: list[bytes] = []

    async def pieces(self) -> AsyncIterator[bytes]:
        while self.first:
            yield self.first.pop(0)
        if self.done:
            return
        try:
            async for data in self.upstream.content.iter_any():
                yield data
        except aiohttp.ClientPayloadError:
            self.cut = True
        else:
            length = self.upstream.content_length
            self.cut = length is not None and self.upstream.content.total_bytes < length
        self.done = True


def expects_continue(request: web.BaseRequest) -> bool:
    """Whether the client waits for 100 Continue before it sends its body."""
    return request.headers.get("Expect", "").lower() == "100-continue" and request.version >= (1, 1)


def decoded(raw: bytes, encoding: str) -> bytes | None:
    """``raw`` decoded, or None when it inflates beyond BUFFER (it is streamed then)."""
    if encoding == "identity":
        return raw
    unzip = injection.decoder(encoding, raw)
    page = unzip.decompress(raw, BUFFER + 1)
    if len(page) > BUFFER or unzip.unconsumed_tail:
        return None
    return bytes(page + unzip.flush())


def headers_of(upstream: aiohttp.ClientResponse, request: web.BaseRequest, proxy: Proxy) -> list[tuple[str, str]]:
    """The app's headers as they are (a fragment's answer: nothing added, nothing taken)."""
    return [(k, proxy.rewrite(request, k, v)) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP]


class AsyncServer:
    """The proxy, bound (``sockets``: both loopbacks), as the HTTP server process
    runs it: ``serve_forever`` (the event loop, in the calling thread),
    ``server_close`` (from another thread: stops it)."""

    def __init__(self, proxy: Proxy, sockets: list[socket.socket], idle_timeout: float,
                 tls: ssl.SSLContext | None = None) -> None:
        self.proxy, self.sockets, self.idle_timeout, self.tls = proxy, sockets, idle_timeout, tls
        self.socket = sockets[0]
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started = threading.Event()  # set once it serves

    def serve_forever(self, poll_interval: float | None = None) -> None:
        self.loop = uvloop.new_event_loop()  # accepts and connects in C: a burst of new connections costs half
        try:
            self.loop.run_until_complete(self.run())
        finally:
            self.loop.close()

    async def run(self) -> None:
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.proxy.open()
        self.proxy.patience = self.idle_timeout
        server = capped.Server(self.proxy, access_log=None, handler_cancellation=True,
                               keepalive_timeout=self.idle_timeout)  # an idle keep-alive, a half-sent request
        limits.quiet_accept_errors(asyncio.get_running_loop(), server.full)  # a full file table: a line a second
        runner = web.ServerRunner(server, handle_signals=False)
        await runner.setup()
        for sock in self.sockets:
            await web.SockSite(runner, sock, backlog=common.BACKLOG, ssl_context=self.tls).start()
        self.started.set()
        try:
            await self.done
        finally:
            await runner.cleanup()
            await self.proxy.close()

    def server_close(self) -> None:
        if self.loop and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.stop)
        for sock in self.sockets:
            sock.close()

    def stop(self) -> None:
        if hasattr(self, "done") and not self.done.done():
            self.done.set_result(None)

    def shutdown(self) -> None:
        self.server_close()


def make_server(app: str, host: str, port: int, ws_port: int | None = None, lan: bool = False,
                idle_timeout: float = 15.0, allowed_hosts: tuple[str, ...] = (),
                tls: ssl.SSLContext | None = None, opener: editor.Opener | None = None) -> AsyncServer:
    """Bind the proxy to the app at URL ``app`` (on this machine); raises OSError like socketserver."""
    from sigreload import app_server

    scheme = urlsplit(app if "//" in app else "http://" + app).scheme
    app_host, app_port = app_server.parse_app(app)
    if scheme == "https":
        log.info("the app's https certificate is not verified (it is on this machine)")
    broadcaster = ("127.0.0.1" if lan or not host or ":" not in host else "::1", ws_port) if ws_port else None
    quiet = logging.getLogger("aiohttp.server")  # a bad request is answered 400 and closed: no traceback
    quiet.setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.CRITICAL)
    proxy = Proxy((scheme, app_host, app_port), broadcaster, lan)
    proxy.allowed_hosts, proxy.opener = allowed_hosts, opener
    if ws_port:
        proxy.folder = discovery.Locator(ws_port).lookup
        proxy.answering = messages.Answering(proxy.folder)
    return AsyncServer(proxy, listening.bind(host, port), idle_timeout, tls)

