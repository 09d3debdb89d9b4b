"""Where the snippet goes in a page's first bytes, and whether a page has it
already: a small HTML scanner that knows comments, the doctype, end tags and
quoted attribute values, and nothing else (``injection`` uses it)."""

from __future__ import annotations

import re

# The snippet, already in a page: sigreload's own <script src>: "/_sigreload/reload.js" (its
# servers), or "reload.js" right after a port (the broadcaster's, as the README pastes it:
# "http://127.0.0.1:5678/reload.js"; "livereload.js" there: --livereload's), or the file itself
# ("reload.js", "/reload.js", "./reload.js"), or pasted. "/static/livereload.js" or "page-reload.js" is not it.
HAS_SNIPPET = re.compile(rb"""<script\b[^>]*\bsrc\s*=\s*["']?(?:[^"'\s>]*/_sigreload/|[^"'\s>]*:\d+/(?:live)?|\.?/?)"""
                         rb"""reload\.js(?:[?#"'\s>]|$)|Symbol\.for\(["']sigreload""", re.I)
# A comment; <!doctype>, <?..?> or </end>; a start tag (its name)
MARKUP = re.compile(rb"<(?:(!--)|([!?/][^>]*>?)|([a-zA-Z][^\s/>]*))")


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
        else:  # <html ...> or <head ...>: its end, past quoted values (r33a4: <head data-x="a>b">)
            end = tag_end(html, match.end()) or (html.find(b">", match.end()) + 1 if whole else 0)
        if end <= 2:
            return match.start() if whole else None  # cut here: wait for the rest
        if name is not None and name.lower() == b"head":
            return end
        pos = end
    return len(html) if whole else None


def tag_end(html: bytes, pos: int) -> int:
    """Where the tag whose attributes begin at ``pos`` ends (after its ">"),
    past quoted values (a quote opens one only after "="); 0 while it has
    not come (an unclosed quote too: ``where`` decides then)."""
    size = len(html)
    while pos < size:
        byte = html[pos]
        pos += 1
        if byte == 0x3E:  # ">"
            return pos
        if byte == 0x3D:  # "=": a value, perhaps quoted
            while pos < size and html[pos] in b" \t\n\r\f":
                pos += 1
            if pos < size and html[pos] in b"\"'":
                close = html.find(html[pos:pos + 1], pos + 1)
                if close < 0:
                    return 0
                pos = close + 1
    return 0


def has_snippet(html: bytes) -> bool:
    """Whether ``html`` includes the snippet already (HAS_SNIPPET; the word
    both its forms hold, as written, is looked for first, in one pass: the
    pattern alone costs 50 ns a byte)."""
    return b"reload" in html and bool(HAS_SNIPPET.search(html))
