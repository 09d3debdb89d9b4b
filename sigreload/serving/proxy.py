"""The proxy: sigreload in front of your app server (``sigreload APP --proxy URL``),
on aiohttp: its server (strict llhttp parsing, keep-alive with timeouts) and
its client (a pool of kept-alive connections to the app, streaming both ways),
on uvloop's event loop.

It forwards every request to the one app server it was given, on this
machine, and never anywhere else (``forwarding``); what the client gets, the
snippet inserted into documents, is ``responding``'s; the app's WebSockets
and the pages' own socket are relayed (``proxy_relay``); the pages it says
itself are ``error_pages``. This module is the request handler that routes
between them, and the server. ``X-Forwarded-*``, ``Forwarded`` and
``X-Original-URL`` from the client are dropped (the proxy says its own), a
Host header that is not a name or an address and a port is 400. The snippet
and its socket are served on the proxy's own origin under /_sigreload/, so a
page's ``script-src 'self'`` allows them, and a CSP nonce of the answer is
reused for the inserted script. After an edit that restarts nothing (the
snippet says so with a cookie, never passed on), a page that is still the
one served before is asked for again (AGAIN): Django serves a cached
template until its reloader's next tick.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from urllib.parse import urlsplit

import uvloop
from aiohttp import web
from yarl import URL

from sigreload import app_ready, app_tick, consoles, editor, listening, secret
from sigreload.contract import answering, discovery, wire
from sigreload.serving import (
    capped,
    common,
    error_pages,
    forwarding,
    hosts,
    limits,
    proxy_relay,
    responding,
    shares,
    snippet,
)

log = logging.getLogger("sigreload.proxy")
PREFIX = responding.PREFIX  # the snippet (reload.js) and its socket, on the page's own origin
OWN_ORIGIN = "http://127.0.0.1"  # the Origin a checked page's socket reaches the broadcaster with
STATUS_WAIT = 0.3  # seconds /_sigreload/app waits for the app to take a connection
EDITED = forwarding.EDITED  # the snippet's cookie on a reload after an edit that restarts nothing
AGAIN = (0.1, 0.2, 0.3, 0.4, 0.6)  # seconds between asking again for a page still as before (Django: 1 s tick)


class Proxy:
    """The request handler: everything to ``app`` (its Forwarder); the snippet
    from ``broadcaster`` (host, port; None: none inserted); ``lan``: any
    address of this machine may be the Host, and ``allowed_hosts`` (--allow-host);
    ``opener`` opens files in the editor for the pages' toasts (None: not)."""

    def __init__(self, *, app: forwarding.Forwarder, broadcaster: tuple[str, int] | None, lan: bool,
                 allowed_hosts: tuple[str, ...] = (), opener: editor.Opener | None = None) -> None:
        self.app, self.broadcaster, self.lan = app, broadcaster, lan
        self.allowed_hosts, self.opener = allowed_hosts, opener
        self.responder = responding.Responder(port=app.port, inserting=broadcaster is not None)
        self.relaying = 0  # pages' sockets relayed to the broadcaster: a stopping proxy waits for its goodbye
        self.shares = shares.lan_relays()  # who may have one (the LAN: a share of the file table)

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        capped.answering(request, True)  # never let go while answered
        try:
            return await self.answer(request)
        finally:
            capped.answering(request, False)

    async def answer(self, request: web.BaseRequest) -> web.StreamResponse:
        refusal = hosts.host_refusal(request.headers.getall("Host", []), self.allowed_hosts)
        if refusal is not None:  # 400: userinfo, a list, two of them: what would the app read?
            refused = web.Response(status=refusal[0], body=refusal[1], content_type="text/plain")
            if refusal[0] == 400:
                refused.force_close()  # what follows on this connection is never read as a request
            return refused
        if not request.raw_path.startswith("/"):  # absolute-form or CONNECT: never an open proxy
            return web.Response(status=400, text="sigreload's proxy forwards only to its app\n")
        try:
            if request.raw_path.startswith(PREFIX):
                return await self.own(request)
            if request.headers.get("Upgrade", "").lower() == "websocket":
                app_socket = self.app.base.replace("http", "ws", 1) + request.raw_path  # https: wss
                return await self.relay(request, URL(app_socket, encoded=True))
            return await self.forward(request)
        except forwarding.Unreadable as broken:
            log.warning("%s %s: %s", request.method, consoles.escaped(request.raw_path, 200), broken.why)
            return error_pages.unreadable(self.app.base + "/", broken.why, self.responder.tag(method=request.method))
        except forwarding.Down as down:
            log.debug("%s %s: %s", request.method, request.raw_path, down.why)
            return error_pages.down(self.app.base + "/", down.why, down.starting,
                                    self.responder.tag(method=request.method))
        except (ConnectionError, asyncio.CancelledError) as gone:  # the client went away
            log.debug("%s %s: the client went away (%s)", request.method, request.raw_path, gone)
            raise asyncio.CancelledError from None

    async def relay(self, request: web.BaseRequest, url: str | URL, origin: str | None = None,
                    extra: dict[str, str] | None = None) -> web.StreamResponse:
        """proxy_relay.relay through the app's session; Down when the other end does not answer."""
        assert self.app.session is not None
        try:
            return await proxy_relay.relay(self.app.session, request, url, origin, extra)
        except proxy_relay.Unreachable as exc:
            raise forwarding.Down(exc.why) from None

    async def own(self, request: web.BaseRequest) -> web.StreamResponse:
        """/_sigreload/reload.js is the snippet; /_sigreload/socket, the broadcaster's socket."""
        name, app = urlsplit(request.raw_path).path[len(PREFIX):], self.app
        if name == "app":  # the down page asks until it is up: always 200 (a 502 would be a console line each time)
            up = await asyncio.to_thread(app_ready.answers, app.host, app.port, STATUS_WAIT, app.scheme)
            return web.json_response({"up": up}, headers={"Cache-Control": "no-store"})
        if name == "socket" and self.broadcaster:
            if not hosts.same_origin(request.headers.get("Origin"), request.headers.get("Host"), request.scheme):
                return web.Response(status=403, text="Only this origin's pages get its socket\n")
            host, port = self.broadcaster
            status = urlsplit(request.raw_path).query == wire.STATUS_QUERY
            path = wire.STATUS_SOCKET_PATH if status else wire.SOCKET_PATH
            transport = request.transport
            peer = transport.get_extra_info("peername") if transport else None
            address = getattr(request.protocol, "client", None) or "127.0.0.1"  # capped.Handler's: peer_user.client
            ticket = self.shares.take(address, transport.abort if transport else lambda: None)
            if ticket is None:  # (a device with fewer relays may cut this one: ``abort``)
                return web.Response(status=503, text="Too many pages of this device or of the LAN have a socket\n")
            self.relaying += 1
            try:
                proof = secret.relay_proof(port)  # the broadcaster believes the peer, and gives the status socket, then
                return await self.relay(request, f"ws://{listening.shown(host)}:{port}{path}", OWN_ORIGIN,
                                        ({wire.PEER_HEADER: str(peer[0])} if peer else {})
                                        | ({secret.RELAY_HEADER: proof} if proof else {}))
            finally:
                self.relaying -= 1
                self.shares.give(ticket)
        if name == "" and self.broadcaster:
            return web.Response(body=snippet.status_page(), content_type="text/html", charset="utf-8",
                                headers=dict(snippet.STATUS_HEADERS))
        if name in ("token", "open") and self.opener:
            return await self.editor(request, name, self.opener)
        if name in snippet.SERVED:
            # versioned: kept by the browser; else 304 while the same
            code, body, headers = snippet.answer(name, request.raw_path, request.headers.get("If-None-Match"))
            return web.Response(status=code, body=body or None, content_type="text/javascript", charset="utf-8",
                                headers=dict(headers))
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
        same = hosts.same_origin(request.headers.get("Origin"), request.headers.get("Host"), request.scheme)
        status, why = opener.answer(same, body if len(body) <= editor.MOST_BODY else b"", ours)
        return web.Response(status=status, body=f"{why}\n".encode() if why else None)

    def navigation(self, request: web.BaseRequest) -> bool:
        """A navigation to a page that gets the snippet (asked for whole)."""
        return self.broadcaster is not None and request.headers.get("Sec-Fetch-Dest") in responding.DOCUMENTS

    async def forward(self, request: web.BaseRequest) -> web.StreamResponse:
        """The app's answer; after an edit that restarts nothing (the snippet's cookie),
        a page still as before is asked for again once Django's reloader looked
        (app_tick), or where that cannot be seen, again and again (AGAIN)."""
        edited = request.method == "GET" and any(EDITED in c.split("; ") for c in request.headers.getall("Cookie", ()))
        waits = iter(AGAIN if edited and self.app.caches_templates() else ())
        tried = False  # whether we waited for Django's reloader to look (app_tick): the next answer is the edit's
        while True:
            upstream = await self.app.send(request, self.navigation(request))
            try:
                return await self.responder.respond(request, upstream, next(waits, None))
            except responding.Stale as stale:
                if not tried:
                    tried = True
                    if await asyncio.to_thread(app_tick.looked, self.app.port):
                        waits = iter(())  # asked once more, and that answer goes out, changed or not
                        continue
                log.debug("%s: the same page as before the edit: asking again in %.1f s", request.raw_path, stale.wait)
                await asyncio.sleep(stale.wait)
            finally:
                upstream.release()


class AsyncServer:
    """The proxy, bound (``sockets``: both loopbacks), as the HTTP server process
    runs it: ``serve_forever`` (the event loop, in the calling thread),
    ``server_close`` (from another thread: stops it)."""

    def __init__(self, *, proxy: Proxy, sockets: list[socket.socket], idle_timeout: float,
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
        await self.proxy.app.open()
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
            await self.proxy.app.close()

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


def make_server(*, app: str, host: str, port: int, ws_port: int | None = None, lan: bool = False,
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
    folder = discovery.Locator(ws_port).lookup if ws_port else lambda: None
    forwarder = forwarding.Forwarder(app=(scheme, app_host, app_port), patience=idle_timeout, folder=folder,
                                     answering=answering.Writer(folder) if ws_port else None)
    proxy = Proxy(app=forwarder, broadcaster=broadcaster, lan=lan, allowed_hosts=allowed_hosts, opener=opener)
    return AsyncServer(proxy=proxy, sockets=listening.bind(host, port), idle_timeout=idle_timeout, tls=tls)
