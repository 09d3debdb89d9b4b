"""``DjangoMiddleware``: the snippet in a Django project's pages
(``"sigreload.middleware.DjangoMiddleware"`` in ``MIDDLEWARE``), under
runserver (sync) or an ASGI server (async). Only with ``DEBUG = True``:
otherwise Django leaves it out of the chain (MiddlewareNotUsed).

After an edit of a template Django's cached loader serves the old one until
its reloader's next tick (1 s): a page that is reloaded (the snippet's
reload, or the person's: ``Cache-Control: max-age=0`` or ``no-cache``)
resets the template loaders first, so it shows the template as saved. The
CSRF token Django masks anew in every answer is no matter then: nothing
compares pages. The templates each page rendered are told to the watcher
(rendered.py): an edit of one that no page rendered reloads nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from sigreload.contract import wire
from sigreload.middleware import presence, rendered
from sigreload.serving import injection

RELOADED = ("max-age=0", "no-cache")  # a reload's Cache-Control
EDITED = f"{wire.EDIT_COOKIE}=1"  # the snippet's cookie: a GET reloading a POST's page after a template edit


class DjangoMiddleware:
    """Django middleware, sync and async capable: the snippet goes into pages
    while a broadcaster runs (SIGRELOAD_WS_PORT, else 5678)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction
        from django.conf import settings
        from django.core.exceptions import MiddlewareNotUsed

        if not settings.DEBUG:
            raise MiddlewareNotUsed("sigreload: DEBUG is off")
        self.get_response = get_response
        self.running = presence.Presence()
        self.recorder: rendered.Recorder | None = None  # made on the first page (Django's template folders)
        rendered.install()
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        if not self.wanted(request):
            return self.get_response(request)
        seen: set[str] = set()
        token = rendered.current.set(seen)
        try:
            response = self.get_response(request)
        finally:
            rendered.current.reset(token)
        self.record(seen)
        return self.changed(request, self.followed(response, seen))

    async def __acall__(self, request: Any) -> Any:
        if not self.wanted(request):
            return await self.get_response(request)
        seen: set[str] = set()  # filled in a sync view's thread too (asgiref copies the context: the same set)
        token = rendered.current.set(seen)
        try:
            response = await self.get_response(request)
        finally:
            rendered.current.reset(token)
        self.record(seen)
        return self.changed(request, self.followed(response, seen))

    def followed(self, response: Any, seen: set[str]) -> Any:
        """``response``, whose streamed body (a generator's templates render as it is
        read, after the view returned) records what it renders too (r33n3: a
        streamed page's template edits were taken for no page's and dropped)."""
        if response.streaming:
            content = response.streaming_content
            response.streaming_content = (arecording(content, seen, self.record) if getattr(response, "is_async", False)
                                          else recording(content, seen, self.record))
        return response

    def record(self, seen: set[str]) -> None:
        """The template files a page rendered, for the watcher (rendered.py)."""
        if not seen:
            return
        if self.recorder is None:
            self.recorder = rendered.Recorder(self.running.folder)
        self.recorder.page(seen)

    def wanted(self, request: Any) -> bool:
        """Whether the request may be a navigation while sigreload runs; a
        reload resets the template loaders (Django's cached loader)."""
        meta = request.META
        dest = meta.get("HTTP_SEC_FETCH_DEST")
        if not injection.navigation(request.method or "", dest, "HTTP_HX_REQUEST" in meta) or not self.running:
            return False
        reloaded = any(value in meta.get("HTTP_CACHE_CONTROL", "").lower() for value in RELOADED)
        if reloaded or EDITED in meta.get("HTTP_COOKIE", "").split("; "):  # a POST's page, reloaded by a GET
            from django.template.autoreload import reset_loaders

            reset_loaders()
        return True

    def changed(self, request: Any, response: Any) -> Any:
        """``response`` with the snippet in it, when it is a page."""
        meta = request.META
        dest = meta.get("HTTP_SEC_FETCH_DEST")
        encoding = response.get("Content-Encoding", "identity").strip().lower()
        bodyless = response.status_code in (204, 304) or response.status_code < 200
        partial = response.status_code == 206 or response.has_header("Content-Range")
        if not injection.injects(dest, response.get("Content-Type", ""), encoding, bodyless, partial=partial,
                                 disposition=response.get("Content-Disposition", "")):
            return response
        tag = self.running.tag(meta.get("HTTP_HOST"), request.scheme, response.get("Content-Security-Policy", ""),
                               getattr(request, "csp_nonce", None), request.method)
        if not response.streaming:
            page = injection.Page(tag, encoding, dest, len(response.content))
            body = page.feed(response.content) + page.end()
            if page.changed:
                response.content = body
                drop(response, body)
            return response
        if dest not in injection.DOCUMENTS:  # its headers go before its first bytes: no sniffing
            return response
        page = injection.Page(tag, encoding, dest, None)
        if getattr(response, "is_async", False):
            response.streaming_content = astream(page, response.streaming_content)
        else:
            response.streaming_content = stream(page, response.streaming_content)
        drop(response, None)
        return response


def drop(response: Any, body: bytes | None) -> None:
    """The headers of a page the snippet went into: decoded, its length ``body``'s (None: unknown)."""
    if response.has_header("Content-Encoding"):
        del response["Content-Encoding"]
    if body is not None and response.has_header("Content-Length"):
        response["Content-Length"] = str(len(body))
    elif body is None and response.has_header("Content-Length"):
        del response["Content-Length"]


def recording(content: Iterable[bytes], seen: set[str], record: Callable[[set[str]], None]) -> Iterator[bytes]:
    """``content``, each piece made with ``seen`` as the templates' record; recorded at its end."""
    pieces = iter(content)
    while True:
        token = rendered.current.set(seen)
        try:
            piece = next(pieces)
        except StopIteration:
            break
        finally:
            rendered.current.reset(token)
        yield piece
    record(seen)


async def arecording(content: AsyncIterator[bytes], seen: set[str],
                     record: Callable[[set[str]], None]) -> AsyncIterator[bytes]:
    pieces = aiter(content)
    while True:
        token = rendered.current.set(seen)
        try:
            piece = await anext(pieces)
        except StopAsyncIteration:
            break
        finally:
            rendered.current.reset(token)
        yield piece
    record(seen)


def stream(page: injection.Page, content: Iterable[bytes]) -> Iterator[bytes]:
    for data in content:
        if out := page.feed(bytes(data)):
            yield out
    if out := page.end():
        yield out


async def astream(page: injection.Page, content: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for data in content:
        if out := page.feed(bytes(data)):
            yield out
    if out := page.end():
        yield out
