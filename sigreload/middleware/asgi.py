"""``ASGIMiddleware``: the snippet in the pages of an ASGI app (FastAPI,
Starlette: ``app.add_middleware(ASGIMiddleware)``; any other:
``app = ASGIMiddleware(app)``), by the ASGI spec: a body comes in messages
(``more_body``), the start message is held until the first bytes of a page
are known, Content-Length is recomputed (or dropped, for a streamed page)."""

from __future__ import annotations

import html
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sigreload.middleware import presence
from sigreload.serving import injection

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Message]], Send], Awaitable[None]]
DROPPED = (b"content-length", b"content-encoding")  # of a page the snippet went into
ERROR_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>500 Internal Server Error</title></head>
<body><pre style="white-space: pre-wrap">{text}</pre></body></html>
"""
BYPASSES = ("http.response.pathsend", "http.response.zerocopy")  # bodies that would not pass through here


class ASGIMiddleware:
    """Wraps the ASGI app ``app``; the snippet talks to the broadcaster on
    ``port`` (default: SIGRELOAD_WS_PORT, else 5678). Other scopes
    (websocket, lifespan) and answers that get no snippet pass untouched."""

    def __init__(self, app: ASGIApp, port: int | None = None) -> None:
        self.app = app
        self.running = presence.Presence(port)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Message]],
                       send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = scope.get("headers") or ()
        dest = presence.header(headers, b"sec-fetch-dest")
        dest_text = dest.decode("latin-1") if dest is not None else None
        htmx = presence.header(headers, b"hx-request") is not None
        if not injection.navigation(scope.get("method", ""), dest_text, htmx) or not self.running:
            return await self.app(scope, receive, send)
        extensions = scope.get("extensions") or {}
        if any(name in extensions for name in BYPASSES):
            scope = dict(scope, extensions={k: v for k, v in extensions.items() if k not in BYPASSES})
        answer = Answer(send, dest_text, self.running, scope)
        try:
            await self.app(scope, receive, answer.send)
        except Exception:
            # The server's (or Starlette's) answer would be a plain "Internal
            # Server Error" without the snippet: the tab would stay on it.
            if dest_text in injection.DOCUMENTS and answer.untold:
                await answer.error_page(traceback.format_exc())
            raise


class Answer:
    """One answer that may be a page: ``send`` is the app's."""

    def __init__(self, send: Send, dest: str | None, running: presence.Presence,
                 scope: MutableMapping[str, Any]) -> None:
        self.client, self.dest, self.running, self.scope = send, dest, running, scope
        self.start: Message | None = None  # held
        self.page: injection.Page | None = None
        self.passing = False

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self.passing or kind not in ("http.response.start", "http.response.body"):
            return await self.client(message)
        if kind == "http.response.start":
            return await self.begin(message)
        assert self.page is not None, "a body before the start"
        data, more = bytes(message.get("body", b"")), bool(message.get("more_body", False))
        out = self.page.feed(data)
        if not more:
            out += self.page.end()
        if not out and more:
            return  # held, or nothing to send yet
        await self.headers(out, last=not more)
        await self.client({"type": "http.response.body", "body": out, "more_body": more})

    async def begin(self, message: Message) -> None:
        """The start message: passed on at once, unless the answer may get the snippet."""
        headers = message.get("headers") or []
        named = {bytes(k).lower(): v for k, v in reversed(headers)}  # the first of each name: one pass
        ctype = bytes(named.get(b"content-type", b"")).decode("latin-1")
        encoding = bytes(named.get(b"content-encoding", b"identity")).decode("latin-1").strip().lower()
        status = int(message["status"])
        disposition = bytes(named.get(b"content-disposition", b"")).decode("latin-1")
        partial = status == 206 or b"content-range" in named
        if not injection.injects(self.dest, ctype, encoding, status in (204, 304) or status < 200, partial=partial,
                                 disposition=disposition):
            self.passing = True
            return await self.client(message)
        length = named.get(b"content-length")
        length = bytes(length) if length is not None else None
        policy = ",".join(bytes(v).decode("latin-1") for k, v in headers
                          if bytes(k).lower() == b"content-security-policy")
        host = presence.header(self.scope.get("headers") or (), b"host")
        scheme = self.scope.get("scheme", "http")
        tag = self.running.tag(host.decode("latin-1") if host else None, scheme, policy,
                               method=self.scope.get("method"))
        self.page = injection.Page(tag, encoding, self.dest, int(length) if length and length.isdigit() else None)
        self.start = message

    async def headers(self, body: bytes, last: bool) -> None:
        """The held start message, its headers changed when the snippet went in."""
        start, self.start = self.start, None
        if start is None:
            return
        assert self.page is not None
        if self.page.changed:
            headers = [(k, v) for k, v in start.get("headers") or [] if bytes(k).lower() not in DROPPED]
            if last:
                headers.append((b"content-length", str(len(body)).encode()))
            start = dict(start, headers=headers)
        await self.client(start)

    @property
    def untold(self) -> bool:
        """Whether the client got nothing yet (a start held is not sent)."""
        return not self.passing and (self.page is None or self.start is not None)

    async def error_page(self, text: str) -> None:
        """The app raised before it answered a navigation: a page that shows
        why (the exception goes on to the server, which logs it) and keeps
        live reload, so the tab comes back once the code is fixed."""
        host = presence.header(self.scope.get("headers") or (), b"host")
        tag = self.running.tag(host.decode("latin-1") if host else None, self.scope.get("scheme", "http"),
                               method=self.scope.get("method"))
        body = injection.inject(ERROR_PAGE.format(text=html.escape(text)).encode(), tag)
        await self.client({"type": "http.response.start", "status": 500, "headers": [
            (b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store"),
            (b"content-length", str(len(body)).encode())]})
        await self.client({"type": "http.response.body", "body": body})
