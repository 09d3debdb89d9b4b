"""Putting the snippet into HTML pages: first in <head>, once.

The snippet goes right after the <head> start tag, else before the page's
first element (a page without <head>): it runs before any script of the
page, so it sees every error the page makes, and a <base> or a CSP meta
tag that follows does not apply to it. ``inject`` changes a whole page;
``place`` and ``Spliced`` a page file, streamed (Range requests too); an
``Inserter`` changes one that arrives in pieces (a streamed or compressed
answer of an app server), holding back only what comes before that point.
A page that already includes the snippet (pasted, or a <script
src=".../reload.js">) is left as it is.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from sigreload.serving.answer_headers import HTML_TYPES, attachment, media_type
from sigreload.serving.markup import HAS_SNIPPET, has_snippet, where

HOLD_MOST = 64 << 10  # bytes held back (or looked at in a file) to find where the snippet goes


def inject(html: bytes, tag: bytes) -> bytes:
    """Insert ``tag`` where ``where`` says; a page that already includes the
    snippet is left as it is (the snippet would run once anyway)."""
    if has_snippet(html):
        return html
    at = where(html)
    assert at is not None
    return html[:at] + tag + html[at:]


SCAN_CHUNK = 64 << 10  # bytes of a page file looked at at once
SCAN_OVERLAP = 4096  # bytes carried over between two chunks: a tag cut in two is still found


def place(f: BinaryIO) -> int | None:
    """Where the snippet goes in the HTML file ``f``, or None when the page
    includes it already (read through in chunks for that: memory stays
    bounded whatever its size)."""
    at, tail, first = None, b"", b""
    while chunk := f.read(SCAN_CHUNK):
        data = tail + chunk
        if HAS_SNIPPET.search(data):
            return None
        if at is None:
            first = (first + chunk)[:HOLD_MOST]
            at = where(first, whole=len(first) >= HOLD_MOST)
        tail = data[-SCAN_OVERLAP:]
    return where(first) if at is None else at


class Spliced:
    """The file ``f`` with ``tag`` inserted at offset ``at``, read from
    ``first`` for ``length`` bytes (a whole answer, or a Range of it)."""

    def __init__(self, f: BinaryIO, at: int, tag: bytes, first: int, length: int) -> None:
        self.f, self.at, self.tag, self.pos, self.left = f, at, tag, first, length
        f.seek(first if first < at else max(at, first - len(tag)))

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        if n <= 0:
            return b""
        if self.pos < self.at:
            data = self.f.read(min(n, self.at - self.pos))
        elif self.pos < self.at + len(self.tag):
            data = self.tag[self.pos - self.at:self.pos - self.at + n]
        else:
            data = self.f.read(n)
        self.pos += len(data)
        self.left = self.left - len(data) if data else 0  # the file shrank: stop
        return data

    def close(self) -> None:
        self.f.close()


def decoder(encoding: str, first: bytes) -> Any:
    """A zlib decompressor for a gzip or deflate body (deflate: zlib-wrapped or raw)."""
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    wrapped = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
    return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)


PIECE = 1 << 20  # most bytes one decompression step makes (a small gzip may inflate a thousandfold)


class Inserter:
    """Puts ``tag`` where ``where`` says in HTML that arrives in pieces.

    The page's first bytes are held back until that point is known (its
    <head> tag or first element: usually in the first piece), at most
    HOLD_MOST of them; everything after passes on at once, decoded on the
    way. Work and memory per piece are bounded, whatever the page's size.
    """

    def __init__(self, tag: bytes, encoding: str = "identity"):
        self.tag, self.encoding, self.held, self.placed = tag, encoding, b"", False
        self.unzip: Any = None
        self.early = b""  # a compressed body's first byte: deflate's wrapping shows in two

    def feed(self, data: bytes) -> bytes:
        return b"".join(self.pieces(data))

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """What passes on for ``data``, in pieces of at most about PIECE bytes each."""
        if self.encoding == "identity":
            yield self._feed(data)
            return
        if self.unzip is None:
            data, self.early = self.early + data, b""
            if len(data) < 2:
                self.early = data
                return
            self.unzip = decoder(self.encoding, data)
        while data:
            yield self._feed(self.unzip.decompress(data, PIECE))
            data = self.unzip.unconsumed_tail

    def _feed(self, data: bytes, whole: bool = False) -> bytes:
        if self.placed:
            return data
        data, self.held = self.held + data, b""
        at = where(data, whole or len(data) >= HOLD_MOST)
        if at is None:
            self.held = data
            return b""
        self.placed = True
        return data[:at] + self.tag + data[at:]

    def end(self) -> bytes:
        if self.unzip is None and self.early:  # a one-byte body
            self.unzip = decoder(self.encoding, self.early)
            self.held += self.unzip.decompress(self.early)
        out = self.feed(b"")
        return out + self._feed(self.unzip.flush() if self.unzip else b"", whole=True)


# Which answers get the snippet: one rule for the proxy and the middleware.
DOCUMENTS = ("document", "iframe")  # Sec-Fetch-Dest of a navigation
ENCODINGS = ("identity", "gzip", "x-gzip", "deflate")  # what can be decoded to insert
SNIFF = 1024  # bytes looked at to tell a whole document from a fragment (no Sec-Fetch headers)
WHOLE_DOCUMENT = re.compile(rb"<!doctype\s+html|<html[\s>]|<body[\s>]", re.I)
BUFFER = 8 << 20  # an HTML answer with a length up to this is changed whole; others stream


def navigation(method: str, dest: str | None, htmx: bool) -> bool:
    """Whether a request may be a navigation, whose HTML answer is a page:
    Sec-Fetch-Dest document or iframe (or none: sniffed then), never HEAD,
    never an htmx request (HX-Request: its answer is swapped into a page)."""
    return method != "HEAD" and (dest is None or dest in DOCUMENTS) and not htmx


def injects(dest: str | None, ctype: str, encoding: str, bodyless: bool, htmx: bool = False,
            partial: bool = False, disposition: str = "") -> bool:
    """Whether an answer may get the snippet: HTML (its media type), with a
    body, in an encoding that can be decoded, to a request that may be a
    navigation; never a part of one (``partial``: a 206, or any answer with
    Content-Range: its byte numbers would no longer match), never a download
    (``disposition``, its Content-Disposition: attachment)."""
    return (not bodyless and media_type(ctype) in HTML_TYPES and (dest or "document") in DOCUMENTS and not htmx
            and encoding in ENCODINGS and not partial and not attachment(disposition))


def document(dest: str | None, start: bytes) -> bool:
    """An answer to a navigation, or (no Sec-Fetch headers) one that starts a whole document."""
    if not start:
        return False
    return dest in DOCUMENTS or bool(WHOLE_DOCUMENT.search(start[:SNIFF]))


def decoded(raw: bytes, encoding: str) -> bytes | None:
    """``raw`` decoded, or None when it inflates beyond BUFFER (or is broken): it is streamed then."""
    if encoding == "identity":
        return raw
    try:
        unzip = decoder(encoding, raw)
        page = unzip.decompress(raw, BUFFER + 1)
        if len(page) > BUFFER or unzip.unconsumed_tail:
            return None
        return bytes(page + unzip.flush())
    except zlib.error:
        return None


class Page:
    """One HTML answer to a possible navigation, on its way: ``feed`` each
    piece of its body as it comes (what to send now comes back), then ``end``.

    An answer of known ``length`` (up to BUFFER) is held whole and changed at
    once (``inject``: never twice); others stream through an Inserter. Never
    more than ``length`` (or BUFFER) bytes are held: an app that sends more
    than it said gets its answer back as it is, passed through. With
    ``dest`` None (no Sec-Fetch headers) the first SNIFF decoded bytes decide
    whether it is a whole document. ``changed`` is None until that is known:
    then True (the body sent is decoded, with the snippet: Content-Encoding
    and Content-Length go) or False (the app's bytes, as they were).
    """

    def __init__(self, tag: bytes, encoding: str, dest: str | None, length: int | None) -> None:
        self.tag, self.encoding, self.dest = tag, encoding, dest
        self.whole = length is not None and length <= BUFFER
        self.most = length if length is not None and self.whole else BUFFER  # bytes held at most
        self.held = 0
        self.inserter = Inserter(tag, encoding)
        self.changed: bool | None = None
        self.raw: list[bytes] = []  # held while it is not known whether it changes
        self.sniffer = Inserter(b"", encoding)
        self.sniffed = b""

    def feed(self, data: bytes) -> bytes:
        if self.changed is True:
            return self.inserter.feed(data)
        if self.changed is False:
            return data
        self.raw.append(data)
        self.held += len(data)
        if self.held > self.most:  # more than it said (or than can be held): not changed
            return self.release(False)
        if self.whole:
            return b""
        try:
            self.sniffed += self.sniffer.feed(data)
        except zlib.error:
            return self.release(False)
        seen = self.sniffed + self.sniffer.held  # a navigation's first byte decides; else SNIFF of them
        if (seen and self.dest in DOCUMENTS) or len(seen) >= SNIFF:
            return self.release(document(self.dest, seen))
        return b""

    def release(self, changed: bool) -> bytes:
        """Decided: what was held, as it passes on."""
        self.changed, raw, self.raw = changed, b"".join(self.raw), []
        return self.inserter.feed(raw) if changed else raw

    def end(self) -> bytes:
        """The rest of the body, once the app's ended."""
        if self.changed is None and self.whole:
            raw = b"".join(self.raw)
            page = decoded(raw, self.encoding)
            if page is None:  # streamed after all
                self.whole = False
                return self.release(True) + self.inserter.end()
            self.changed, self.raw = document(self.dest, page), []
            return inject(page, self.tag) if self.changed else raw
        if self.changed is None:
            try:
                out = self.release(document(self.dest, self.sniffed + self.sniffer.end()))  # empty: as it is
            except zlib.error:
                out = self.release(False)
            return out + (self.inserter.end() if self.changed else b"")
        return self.inserter.end() if self.changed else b""
