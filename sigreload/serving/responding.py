"""The proxy's response policy: what the client gets from the app's answer.

Headers, cookies and status pass through (a redirect to the app's own
address comes back as one to the proxy's; a loopback cookie Domain goes).
Only documents get the snippet, first in <head>: an HTML answer to a
navigation (``Sec-Fetch-Dest: document`` or ``iframe``; without Sec-Fetch
headers, an answer that is a whole document). Fragments, ``fetch()`` answers
and empty bodies pass byte for byte, read from the app only as fast as the
client takes them. A non-HTML error answer to a navigation is shown in a page
that has the snippet. HEAD is answered as GET would be, without the body. A
body the app cuts short cuts the client's answer at once. After an edit, a
page that is still the one served before raises ``Stale``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from sigreload.contract import wire
from sigreload.serving import answer_headers, capped, error_pages, injection, page_digest, snippet

log = logging.getLogger("sigreload.proxy")
PREFIX = wire.PREFIX  # the snippet (reload.js) and its socket, on the page's own origin
BUFFER = injection.BUFFER  # an HTML answer with a length up to this is changed whole; others stream
SNIFF = injection.SNIFF  # bytes looked at to tell a whole document from a fragment (no Sec-Fetch headers)
CHUNK = 64 << 10  # an answer up to this long, not changed, goes out in one write (most assets)
PAGES_KEPT = 256  # documents whose digest is kept
DOCUMENTS = injection.DOCUMENTS  # Sec-Fetch-Dest of a navigation
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
              "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}


class Stale(Exception):
    """The app answered the page it answered before the edit: ask again after ``wait`` seconds."""

    def __init__(self, wait: float) -> None:
        super().__init__(wait)
        self.wait = wait


class Responder:
    """Answers from the app on ``port`` (its own address, in redirects), the
    snippet inserted when ``inserting`` (a broadcaster to reach)."""

    def __init__(self, *, port: int, inserting: bool) -> None:
        self.port, self.inserting = port, inserting
        self.pages: dict[str, bytes] = {}  # path -> digest of the document served there last

    async def respond(self, request: web.BaseRequest, upstream: aiohttp.ClientResponse,
                      again: float | None = None) -> web.StreamResponse:
        """The client's answer from ``upstream``; raises Stale (read, nothing sent)
        when ``again`` is given and the page is the one served before."""
        head = request.method == "HEAD"
        headers = self.headers_of(upstream, request)
        ctype = upstream.headers.get("Content-Type", "").lower()
        encoding = upstream.headers.get("Content-Encoding", "identity").strip().lower()
        dest = request.headers.get("Sec-Fetch-Dest")
        bodyless = upstream.status in (204, 304) or upstream.status < 200
        if head and not self.injects(request, ctype, encoding, bodyless, upstream):
            upstream.close()  # its body is not needed: never read a download for a HEAD
            return await self.start(request, upstream, headers, upstream.content_length)
        a_page = answer_headers.media_type(ctype) in answer_headers.HTML_TYPES
        if not bodyless and dest in DOCUMENTS and upstream.status >= 400 and not a_page and self.inserting:
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
                if self.remember(request, page_digest.digest(upstream.status, [out])) and again is not None:
                    raise Stale(again)
                return await self.whole(request, upstream, changed, out)
        return await self.stream(request, upstream, changed, inserter, dest, body, headers)

    def remember(self, request: web.BaseRequest, seen: bytes) -> bool:
        """Whether the document a GET of the request's path got last time had the digest
        ``seen``; remembers it. A POST's answer is not the page at its path (r32n4: the
        GET after it, different, was taken for the edit's page, from the old template)."""
        if request.method != "GET":
            return False
        path = request.raw_path
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
        if not self.inserting or not injection.injects(dest, ctype, "identity", bodyless, htmx, partial, disposition):
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
            self.remember(request, seen.digest())
        return await self.end(request, response, body)

    async def error_page(self, request: web.BaseRequest, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        """A non-HTML error answer to a navigation, shown in a page with live reload."""
        body = await upstream.content.read(error_pages.ERROR_SHOWN)
        page = error_pages.error(upstream.status, upstream.reason or "", body, upstream.charset or "utf-8",
                                 self.tag(upstream))
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")]
        return await self.whole(request, upstream, headers, page)

    def tag(self, upstream: aiohttp.ClientResponse | None = None, method: str | None = None) -> bytes:
        """The snippet's <script>, with the nonce the answer's CSP allows scripts by, marked
        posted when the request's ``method`` (else upstream's) is not GET/HEAD (snippet.tag)."""
        policy = ",".join(upstream.headers.getall("Content-Security-Policy", ())) if upstream else ""
        method = method or (upstream.method if upstream else None)
        return snippet.tag(f"{PREFIX}reload.js", answer_headers.script_nonce(policy), posted=snippet.posted(method))

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

    def headers_of(self, upstream: aiohttp.ClientResponse, request: web.BaseRequest) -> list[tuple[str, str]]:
        """The app's headers as they are (a fragment's answer: nothing added, nothing taken)."""
        return [(k, self.rewrite(request, k, v)) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP]


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


def decoded(raw: bytes, encoding: str) -> bytes | None:
    """``raw`` decoded, or None when it inflates beyond BUFFER (it is streamed then)."""
    if encoding == "identity":
        return raw
    unzip = injection.decoder(encoding, raw)
    page = unzip.decompress(raw, BUFFER + 1)
    if len(page) > BUFFER or unzip.unconsumed_tail:
        return None
    return bytes(page + unzip.flush())
