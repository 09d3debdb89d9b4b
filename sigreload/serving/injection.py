"""Putting the snippet into HTML pages: before the last </body>, once.

``inject`` changes a whole page; ``place`` and ``Spliced`` a page file,
streamed (Range requests too); an ``Inserter`` changes one that arrives in
pieces (a streamed or compressed answer of an app server), holding back only
what follows a </body> seen so far. A page that already includes the snippet
(pasted, or a <script src=".../reload.js">) is left as it is.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

# The snippet, already in a page: included by <script src=".../reload.js">, or pasted.
HAS_SNIPPET = re.compile(rb"""<script\b[^>]*\bsrc\s*=\s*["']?[^"'\s>]*reload\.js|Symbol\.for\(["']sigreload""", re.I)
NONCE = re.compile(r"'nonce-([A-Za-z0-9+/=_-]+)'")  # a CSP script-src nonce the inserted script reuses


def inject(html: bytes, tag: bytes) -> bytes:
    """Insert ``tag`` before the last </body> (any case), or append it; a page
    that already includes the snippet is left as it is (the snippet would run once anyway)."""
    if HAS_SNIPPET.search(html):
        return html
    at = html.lower().rfind(b"</body>")
    return html + tag if at < 0 else html[:at] + tag + html[at:]


SCAN_CHUNK = 64 << 10  # bytes of a page file looked at at once
SCAN_OVERLAP = 4096  # bytes carried over between two chunks: a tag cut in two is still found


def place(f: BinaryIO) -> int | None:
    """Where the snippet goes in the HTML file ``f`` (read through, in chunks:
    memory stays bounded whatever its size): the offset of its last </body>
    (any case), else its end; None when the page includes the snippet already."""
    at, tail, offset = -1, b"", 0  # offset: where ``tail`` starts in the file
    while chunk := f.read(SCAN_CHUNK):
        data = tail + chunk
        if HAS_SNIPPET.search(data):
            return None
        found = data.lower().rfind(b"</body>")
        at = offset + found if found >= 0 else at
        tail = data[-SCAN_OVERLAP:]
        offset += len(data) - len(tail)
    return offset + len(tail) if at < 0 else at


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


HOLD_MOST = 64 << 10  # bytes after a </body> held back; past that, the snippet goes at the end
PIECE = 1 << 20  # most bytes one decompression step makes (a small gzip may inflate a thousandfold)


class Inserter:
    """Puts ``tag`` before the last </body> of HTML that arrives in pieces.

    What follows a </body> seen so far is held back (that </body> may be the
    last one), up to HOLD_MOST bytes: a page with more after it gets the tag
    at its end. Everything else passes on at once; decodes on the way. Work
    and memory per piece are bounded, whatever the page's size.
    """

    def __init__(self, tag: bytes, encoding: str = "identity"):
        self.tag, self.encoding, self.held = tag, encoding, b""
        self.unzip: Any = None

    def feed(self, data: bytes) -> bytes:
        return b"".join(self.pieces(data))

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """What passes on for ``data``, in pieces of at most about PIECE bytes each."""
        if self.encoding == "identity":
            yield self._feed(data)
            return
        self.unzip = self.unzip or decoder(self.encoding, data)
        while data:
            yield self._feed(self.unzip.decompress(data, PIECE))
            data = self.unzip.unconsumed_tail

    def _feed(self, data: bytes) -> bytes:
        data = self.held + data
        at = data.lower().rfind(b"</body")
        if at < 0 or len(data) - at > HOLD_MOST:  # "</bo" cut at the end of a piece: hold it too
            lt = data.rfind(b"<", max(0, len(data) - 6))
            at = lt if lt >= 0 and b"</body".startswith(data[lt:].lower()) else len(data)
        out, self.held = data[:at], data[at:]
        return out

    def end(self) -> bytes:
        out = self.feed(b"") + (self._feed(self.unzip.flush()) if self.unzip else b"")
        held, self.held = self.held, b""
        if held.lower().startswith(b"</body"):
            return out + self.tag + held
        return out + held + self.tag
