"""The snippet (``reload.js``), as every server hands it out: its file, its
source, and the ``<script>`` tag that includes it."""

from __future__ import annotations

import hashlib
import html
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from sigreload.contract import wire

PACKAGE = Path(__file__).resolve().parent.parent


def folder() -> Path:
    """The folder holding reload.js and the demo page: the package's copy in a
    wheel, the repository's ``snippet/`` in a clone (or an editable install)."""
    inside = PACKAGE / "snippet"
    return inside if inside.is_dir() else PACKAGE.parent / "snippet"


SERVED = ("reload.js", "idiomorph.js", "morph.js", "overlay.js")  # what the servers hand out (morph.js and
# idiomorph: for --morph; overlay.js: the runtime-error toast, loaded on a page's first error)


OWN_SNIPPET = wire.OWN_SNIPPET_PATH  # where sigreload's servers insert it (the broadcaster's /reload.js: as pasted)
IMMUTABLE = "public, max-age=31536000, immutable"  # a versioned URL: its answer never changes
REVALIDATE = "no-cache"  # any other: asked again each time, answered 304 while it is the same (ETag)
_versions: dict[str, tuple[tuple[int, int], str]] = {}


def version(name: str) -> str:
    """The first 16 hex digits of SHA-256 of one of SERVED, as it is now (hashed again only after a change)."""
    stat = (folder() / name).stat()
    key = (stat.st_mtime_ns, stat.st_size)
    known = _versions.get(name)
    if known is None or known[0] != key:
        known = _versions[name] = (key, hashlib.sha256(served(name)).hexdigest()[:16])
    return known[1]


def answer(name: str, target: str, if_none_match: str | None) -> tuple[int, bytes, list[tuple[str, str]]]:
    """(status, body, headers besides Content-Type) for GET ``target`` of one of SERVED:
    immutable when its ``?v=`` is the file's version (the inserted tag's URL), else
    revalidated; 304 and no body when ``If-None-Match`` matches its ETag (``matches``),
    with the same ETag and Cache-Control."""
    now = version(name)
    asked = parse_qs(urlsplit(target).query).get("v", [""])[0]
    etag = f'"{now}"'
    headers = [("Cache-Control", IMMUTABLE if asked == now else REVALIDATE), ("ETag", etag)]
    if matches(if_none_match, etag):
        return 304, b"", headers
    return 200, served(name), headers


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` value fails for the current ``etag`` (so: 304), per
    RFC 9110 13.1.2: ``*`` (there is a representation), or a list naming it by weak
    comparison (``W/"x"`` matches ``"x"``)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return etag.removeprefix("W/") in [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]


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


def posted(method: str | None) -> bool:
    """Whether a page answering ``method`` is marked ``posted`` (anything but GET and HEAD)."""
    return (method or "GET").upper() not in ("GET", "HEAD")


def status_page() -> bytes:
    """The status page (``/_sigreload/``): a static page that opens its own socket to the broadcaster."""
    return (folder() / "status.html").read_bytes()


def tag(src: str, nonce: str | None = None, app: bool = False, posted: bool = False) -> bytes:
    """``<script src=SRC>`` (with ``nonce`` when a CSP allows scripts by one), escaped;
    sigreload's servers' URL of reload.js (OWN_SNIPPET) gets its version (``?v=``):
    browsers keep that answer (IMMUTABLE). ``app``: inserted by a middleware (``wire.APP_ATTRIBUTE``).
    ``posted``: the page answers a request other than GET/HEAD (``wire.POSTED_ATTRIBUTE``):
    the snippet reloads it with a GET of its URL, never sending the form again."""
    if src.endswith(OWN_SNIPPET):
        src += f"?v={version('reload.js')}"
    attr = (f' nonce="{html.escape(nonce)}"' if nonce else "") + (f" {wire.APP_ATTRIBUTE}" if app else "")
    attr += f" {wire.POSTED_ATTRIBUTE}" if posted else ""
    return f'<script src="{html.escape(src)}"{attr}></script>'.encode()
