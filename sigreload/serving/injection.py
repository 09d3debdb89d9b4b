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

# The snippet, already in a page: included by <script src=".../reload.js">, or pasted.
HAS_SNIPPET = re.compile(rb"""<script\b[^>]*\bsrc\s*=\s*["']?[^"'\s>]*reload\.js|Symbol\.for\(["']sigreload""", re.I)
NONCE = re.compile(r"'nonce-([A-Za-z0-9+/=_-]+)'")  # a CSP script-src nonce the inserted script reuses
# A comment; <!doctype>, <?..?> or </end>; a start tag (its name)
MARKUP = re.compile(rb"<(?:(!--)|([!?/][^>]*>?)|([a-zA-Z][^\s/>]*))")
HOLD_MOST = 64 << 10  # bytes held back (or looked at in a file) to find where the snippet goes


def where(html: bytes, whole: bool = True) -> int | None:
    """Where the snippet goes in ``html`` (the page's first bytes, or all of
    it when ``whole``): after the <head ...> tag, else before the first
    element other than <html>; past comments, the doctype and end tags. None
    while more bytes are needed to tell; a whole page without elements gets
    it at its end, an unfinished comment or tag before that."""
    pos = 0
    while match := MARKUP.search(html, pos):
        comment, other, name = match.groups()
        if comment:
            end = html.find(b"-->", match.end()) + 3
        elif other:
            end = match.end() if other.endswith(b">") else 0
        elif match.end() < len(html) and name.lower() not in (b"html", b"head"):
            return match.start()
        else:
            end = html.find(b">", match.end()) + 1
        if end <= 2:
            return match.start() if whole else None  # cut here: wait for the rest
        if name is not None and name.lower() == b"head":
            return end
        pos = end
    return len(html) if whole else None


def inject(html: bytes, tag: bytes) -> bytes:
    """Insert ``tag`` where ``where`` says; a page that already includes the
    snippet is left as it is (the snippet would run once anyway)."""
    if HAS_SNIPPET.search(html):
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
        self.start = b""  # a compressed body's first byte, until the second comes

    def feed(self, data: bytes) -> bytes:
        return b"".join(self.pieces(data))

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """What passes on for ``data``, in pieces of at most about PIECE bytes each."""
        if self.encoding == "identity":
            yield self._feed(data)
            return
        if self.unzip is None:  # deflate's wrapping is told by its first two bytes: wait for both
            data, self.start = self.start + data, b""
            if len(data) < 2:
                self.start = data
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
        if self.unzip is None and self.start:  # one byte in all: too short to tell, guessed
            self.unzip = decoder(self.encoding, self.start)
            data, self.start = self.start, b""
            out = self._feed(self.unzip.decompress(data))
        else:
            out = self.feed(b"")
        return out + self._feed(self.unzip.flush() if self.unzip else b"", whole=True)
