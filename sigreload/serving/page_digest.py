"""What tells two answers of a page apart, for the proxy's "is this still the
page served before the edit?" (Django's cached template loader serves the
old template until its reloader's next tick).

Two renders of one unchanged template are not always the same bytes: Django
masks its CSRF token differently in every answer (``{% csrf_token %}``: a
hidden input of 64 random letters and digits, or ``{{ csrf_token }}`` in a
meta tag or a script), a CSP nonce is new in every answer, and so are other
per-answer secrets. A whole-page digest then says "new" every time, and the
old template is shown. So every token-shaped run (TOKEN_MIN or more letters,
digits and ``+/_=-``, holding at least one letter and one digit: what random
tokens look like, and words, paths and prose never do) counts as one mark,
whatever its value. The digest is fed piece by piece (a streamed page); a
run cut between two pieces is held back until it ends.
"""

from __future__ import annotations

import hashlib
import re

TOKEN_MIN = 20  # Django's masked CSRF token: 64; a 128-bit nonce in base64: 22-24
RUN = re.compile(rb"[A-Za-z0-9+/_=-]{%d,}" % TOKEN_MIN)
LETTER, DIGIT = re.compile(rb"[A-Za-z]"), re.compile(rb"[0-9]")
RUN_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_=-"
HELD_MOST = 64 << 10  # a run longer than this (a data: URL) is cut where the piece ends
MARK = b"\0token\0"


def masked(data: bytes) -> bytes:
    """``data`` with each token-shaped run replaced by one MARK."""
    return RUN.sub(lambda m: MARK if LETTER.search(m.group()) and DIGIT.search(m.group()) else m.group(), data)


class PageDigest:
    """A digest of an answer's status and body with token values ignored:
    ``update(piece)`` as the body comes, ``digest()`` at its end."""

    def __init__(self, status: int) -> None:
        self.hash = hashlib.blake2b(b"%d " % status, digest_size=16)
        self.held = b""  # the end of the last piece: maybe a run that goes on

    def update(self, piece: bytes) -> None:
        data = self.held + piece
        cut = len(data.rstrip(RUN_BYTES))
        if len(data) - cut > HELD_MOST:
            cut = len(data)
        self.hash.update(masked(data[:cut]))
        self.held = data[cut:]

    def digest(self) -> bytes:
        self.hash.update(masked(self.held))
        self.held = b""
        return self.hash.digest()


def digest(status: int, pieces: list[bytes]) -> bytes:
    """The PageDigest of a whole answer."""
    seen = PageDigest(status)
    for piece in pieces:
        seen.update(piece)
    return seen.digest()
