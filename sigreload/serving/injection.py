"""Putting the snippet into HTML pages: before the last </body>, once.

``inject`` changes a whole page; an ``Inserter`` changes one that arrives in
pieces (a streamed or compressed answer of an app server), holding back only
what follows a </body> seen so far. A page that already includes the snippet
(pasted, or a <script src=".../reload.js">) is left as it is.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

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


def decoder(encoding: str, first: bytes) -> Any:
    """A zlib decompressor for a gzip or deflate body (deflate: zlib-wrapped or raw)."""
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    wrapped = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
    return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)


class Inserter:
    """Puts ``tag`` before the last </body> of HTML that arrives in pieces.

    What follows a </body> seen so far is held back (that </body> may be the
    last one); everything else passes on at once. Decodes on the way.
    """

    def __init__(self, tag: bytes, encoding: str = "identity"):
        self.tag, self.encoding, self.held = tag, encoding, b""
        self.unzip: Any = None

    def feed(self, data: bytes) -> bytes:
        if self.encoding != "identity":
            self.unzip = self.unzip or decoder(self.encoding, data)
            data = self.unzip.decompress(data)
        data = self.held + data
        at = data.lower().rfind(b"</body")
        if at < 0:  # "</bo" cut at the end of a piece: hold it too
            lt = data.rfind(b"<", max(0, len(data) - 6))
            at = lt if lt >= 0 and b"</body".startswith(data[lt:].lower()) else len(data)
        out, self.held = data[:at], data[at:]
        return out

    def end(self) -> bytes:
        out = self.feed(b"") + (self.unzip.flush() if self.unzip else b"")
        held, self.held = self.held, b""
        if held.lower().startswith(b"</body"):
            return out + self.tag + held
        return out + held + self.tag
