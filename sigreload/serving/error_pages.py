"""The proxy's own pages: the app does not answer (a page that says so and
comes back by itself once it does), and a non-HTML error answer to a
navigation, shown as text in a page with live reload."""

from __future__ import annotations

import html

from aiohttp import web

from sigreload.contract import wire
from sigreload.serving import injection

ERROR_SHOWN = 1 << 20  # bytes of a non-HTML error answer shown in its page
DOWN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="sigreload-down"><title>{title}</title></head>
<body style="font: 16px/1.5 system-ui, sans-serif; margin: 3em">
<h1>{title}</h1>
<p>sigreload's proxy cannot reach <code>{app}</code>: {why} (see its terminal).
This page reloads by itself once it answers.</p>
</body></html>
"""
UNREADABLE_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Your app's answer could not be read</title></head>
<body style="font: 16px/1.5 system-ui, sans-serif; margin: 3em">
<h1>Your app's answer could not be read</h1>
<p>sigreload's proxy got an answer from <code>{app}</code> it cannot pass on: {why}.
This page reloads at your next edit.</p>
</body></html>
"""
ERROR_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{status} {reason}</title></head>
<body><pre style="white-space: pre-wrap">{text}</pre></body></html>
"""


def down(app: str, why: str, starting: bool, tag: bytes) -> web.Response:
    """The app at URL ``app`` does not answer (``why``; ``starting``: it never
    did yet): a 502 page with the snippet's ``tag``, never cached."""
    title = "Your app is starting" if starting else "Your app does not answer"
    page = DOWN_PAGE.format(title=title, app=html.escape(app), why=html.escape(why))
    return web.Response(status=502, body=injection.inject(page.encode(), tag),
                        content_type="text/html", charset="utf-8",
                        headers={wire.DOWN_HEADER: "1", "Cache-Control": "no-store"})


def unreadable(app: str, why: str, tag: bytes) -> web.Response:
    """The app at URL ``app`` answered in HTTP the proxy cannot read (``why``):
    a 502 page with the snippet's ``tag`` that waits for an edit, not for the
    app (it answers: the page would reload into the same answer again and again)."""
    page = UNREADABLE_PAGE.format(app=html.escape(app), why=html.escape(why))
    return web.Response(status=502, body=injection.inject(page.encode(), tag), content_type="text/html",
                        charset="utf-8", headers={"Cache-Control": "no-store"})


def error(status: int, reason: str, body: bytes, charset: str, tag: bytes) -> bytes:
    """A page that shows an error answer's ``body`` (text in ``charset``) escaped, with the snippet's ``tag``."""
    text = html.escape(body.decode(charset, "replace"))
    page = ERROR_PAGE.format(status=status, reason=html.escape(reason), text=text)
    return injection.inject(page.encode(), tag)
