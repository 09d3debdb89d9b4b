"""``WSGIMiddleware``: the snippet in the pages of a WSGI app (Flask:
``app.wsgi_app = WSGIMiddleware(app.wsgi_app)``), by PEP 3333's rules: the
app's iterable is closed, ``exc_info`` is honoured, Content-Length is
recomputed (or dropped, for a streamed page)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sigreload.middleware import presence
from sigreload.serving import injection

Headers = list[tuple[str, str]]
StartResponse = Callable[..., Callable[[bytes], Any]]
DROPPED = ("content-length", "content-encoding")  # of a page the snippet went into


class WSGIMiddleware:
    """Wraps the WSGI app ``app``; the snippet talks to the broadcaster on
    ``port`` (default: SIGRELOAD_WS_PORT, else 5678). Answers that get no
    snippet are the app's own, untouched (its iterable, its file wrapper)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], port: int | None = None) -> None:
        self.app = app
        self.running = presence.Presence(port)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        dest = environ.get("HTTP_SEC_FETCH_DEST")
        if not injection.navigation(environ.get("REQUEST_METHOD", ""), dest, "HTTP_HX_REQUEST" in environ) \
                or not self.running:
            return self.app(environ, start_response)
        answer = Answer(environ, start_response, dest, self.running)
        result = self.app(environ, answer.start)
        if answer.passed:  # decided already: not a page
            return result
        return Body(answer, result)


class Answer:
    """One answer that may be a page: ``start`` is the app's start_response;
    what it is told is held while the snippet may go in."""

    def __init__(self, environ: dict[str, Any], start_response: StartResponse, dest: str | None,
                 running: presence.Presence) -> None:
        self.environ, self.start_response, self.dest, self.running = environ, start_response, dest, running
        self.passed = False  # start_response called with the app's own status and headers
        self.sent = False  # the real start_response was called
        self.status, self.headers, self.exc_info = "", Headers(), None
        self.page: injection.Page | None = None
        self.written: list[bytes] = []  # write()'s data, while held

    def start(self, status: str, headers: Headers, exc_info: Any = None) -> Callable[[bytes], Any]:
        if exc_info is not None and self.sent:
            raise exc_info[1].with_traceback(exc_info[2])  # PEP 3333: too late to change the headers
        self.status, self.headers, self.exc_info = status, headers, exc_info
        named = {k.lower(): v for k, v in reversed(headers)}  # the first of each name
        ctype, encoding = named.get("content-type", ""), named.get("content-encoding", "identity")
        code = int(status[:3])
        if not injection.injects(self.dest, ctype, encoding.strip().lower(), code in (204, 304) or code < 200,
                                 partial=code == 206 or "content-range" in named,
                                 disposition=named.get("content-disposition", "")):
            self.passed = self.sent = True
            return self.start_response(status, headers, exc_info)
        length = named.get("content-length")
        policy = ",".join(v for k, v in headers if k.lower() == "content-security-policy")
        tag = self.running.tag(self.environ.get("HTTP_HOST"), self.environ.get("wsgi.url_scheme", "http"), policy,
                               method=self.environ.get("REQUEST_METHOD"))
        self.page = injection.Page(tag, encoding.strip().lower(), self.dest,
                                   int(length) if length and length.isdigit() else None)
        return self.written.append

    def send(self, data: bytes, last: bool) -> bytes:
        """``data`` of the body (``last``: the rest), after the headers when they are due."""
        if self.sent or not (data or last):
            return data
        assert self.page is not None
        headers = self.headers
        if self.page.changed:
            headers = [(k, v) for k, v in headers if k.lower() not in DROPPED]
            if last:
                headers.append(("Content-Length", str(len(data))))
        self.sent = True
        self.start_response(self.status, headers, self.exc_info)
        return data


class Body:
    """The app's iterable, as the client gets it (``close`` closes the app's, always)."""

    def __init__(self, answer: Answer, result: Iterable[bytes]) -> None:
        self.answer, self.result = answer, result

    def __iter__(self) -> Iterator[bytes]:
        answer = self.answer
        for data in self.result:
            if answer.passed:
                yield data  # start_response came with the body: not a page
                continue
            page = answer.page
            assert page is not None
            written, answer.written = b"".join(answer.written), []
            out = page.feed(written + data) if written or data else b""
            if out:
                yield answer.send(out, False)
        if not answer.passed:
            if answer.page is None:
                raise RuntimeError("the WSGI app returned without calling start_response")
            out = answer.page.feed(b"".join(answer.written)) + answer.page.end()
            out = answer.send(out, True)
            if out:
                yield out

    def close(self) -> None:
        close = getattr(self.result, "close", None)
        if close is not None:
            close()
