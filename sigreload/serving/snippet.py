"""The snippet (``reload.js``), as every server hands it out: its file, its
source, and the ``<script>`` tag that includes it."""

from __future__ import annotations

import html
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent


def folder() -> Path:
    """The folder holding reload.js and the demo page: the package's copy in a
    wheel, the repository's ``snippet/`` in a clone (or an editable install)."""
    inside = PACKAGE / "snippet"
    return inside if inside.is_dir() else PACKAGE.parent / "snippet"


SERVED = ("reload.js", "idiomorph.js", "overlay.js")  # what the servers hand out (idiomorph: for --morph;
# overlay.js: the runtime-error toast, loaded on a page's first error)


def source() -> bytes:
    """reload.js, read anew each time (an edit of it shows on the next page load)."""
    return served("reload.js")


def served(name: str) -> bytes:
    """One of SERVED: reload.js, overlay.js, or idiomorph.js (idiomorph 0.8.0, pinned: 0BSD,
    snippet/LICENSE.idiomorph)."""
    assert name in SERVED
    return (folder() / name).read_bytes()


STATUS_HEADERS = (("Cache-Control", "no-cache"), ("X-Frame-Options", "DENY"),
                  ("Content-Security-Policy", "frame-ancestors 'none'"))  # no other site frames its buttons


def status_page() -> bytes:
    """The status page (``/_sigreload/``): a static page that opens its own socket to the broadcaster."""
    return (folder() / "status.html").read_bytes()


def tag(src: str, nonce: str | None = None) -> bytes:
    """``<script src=SRC>`` (with ``nonce`` when a CSP allows scripts by one), escaped."""
    attr = f' nonce="{html.escape(nonce)}"' if nonce else ""
    return f'<script src="{html.escape(src)}"{attr}></script>'.encode()
