"""What an answer's headers say about the snippet going into it: the
nonce its Content-Security-Policy gives scripts, its media type, whether
it is a download (Content-Disposition: attachment); and the media types of
the files the file server serves (CONTENT_TYPES)."""

from __future__ import annotations

import re

NONCE = re.compile(r"'nonce-([A-Za-z0-9+/=_-]+)'")  # a CSP nonce
SCRIPT_SOURCES = ("script-src-elem", "script-src", "default-src")  # the directive a <script src> obeys: first found

HTML_TYPES = ("text/html", "application/xhtml+xml")  # what gets the snippet


def script_nonce(policy: str) -> str | None:
    """The nonce a <script src> may reuse under ``policy`` (Content-Security-Policy
    headers, joined by commas: each is a policy; all apply): of the first
    policy that restricts scripts, its script-src-elem, else script-src, else
    default-src directive's first nonce; None when there is none."""
    for one in policy.split(","):
        directives: dict[str, str] = {}
        for directive in one.split(";"):
            name, _, value = directive.strip().partition(" ")
            directives.setdefault(name.lower(), value)
        for name in SCRIPT_SOURCES:
            if name in directives:
                found = NONCE.search(directives[name])
                if found:
                    return found.group(1)
                break
    return None


def media_type(ctype: str) -> str:
    """The media type of a Content-Type value (``text/html``), lower case, without parameters."""
    return ctype.split(";", 1)[0].strip().lower()


def attachment(disposition: str) -> bool:
    """Whether a Content-Disposition value makes the answer a download."""
    return disposition.split(";", 1)[0].strip().lower() == "attachment"


CONTENT_TYPES = {  # modern web files, whatever the platform's mime.types says
    ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
    ".css": "text/css", ".json": "application/json", ".wasm": "application/wasm",
    ".svg": "image/svg+xml", ".webp": "image/webp", ".avif": "image/avif",
    ".woff2": "font/woff2", ".map": "application/json",
}
