"""One client's socket: who it is, what it hears on joining, and the little
a snippet may say (what its page uses, its console errors, its URL and
focus for the status page, a challenge). Nothing it says changes what
any other page is sent."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from sigreload import secret
from sigreload.broadcasting import admission
from sigreload.broadcasting.shell import Broadcaster, send
from sigreload.contract.wire import Proof

MAX_USING = 64  # paths one page may report using
USING_EVERY = 1.0  # seconds: a page's "using" more often than this is not read (it says it once a load)

log = logging.getLogger("sigreload.broadcast")


def parsed(frame: str | bytes) -> dict[str, Any] | None:
    """A snippet's frame: a JSON object, or None."""
    try:
        message = json.loads(frame)
    except (TypeError, ValueError):
        return None
    return message if isinstance(message, dict) else None


def reported(message: dict[str, Any]) -> list[str] | None:
    """The URL paths a snippet's message says its page uses, or None for anything
    else: at most MAX_USING, each absolute, short and printable. This only
    changes what the watcher looks at first."""
    paths = message.get("paths") if message.get("type") == "using" else None
    if not isinstance(paths, list) or len(paths) > MAX_USING:
        return None
    ok = all(isinstance(p, str) and p.startswith("/") and len(p) < 1024 and p.isprintable() for p in paths)
    return paths if ok else None


def make_handler(broadcaster: Broadcaster) -> Callable[[ServerConnection], Awaitable[None]]:
    async def handler(connection: ServerConnection) -> None:
        """Say hello to sigreload snippets, then read only what their pages use."""
        kind = admission.kind(connection)
        if kind is None:
            return await broadcaster.status_watch(connection)
        if kind != "livereload":  # on this port, a client of LiveReload's path hears nothing: it said no hello
            broadcaster.join(connection, kind)
            broadcaster.status.joined(connection, kind == "snippet")
        log.debug("client joined from %s", connection.remote_address)
        last_using = -USING_EVERY
        try:
            async for frame in connection:
                message = parsed(frame) if kind == "snippet" else None
                if message is not None and reported(message) is not None:  # a page says it once a load
                    if time.monotonic() - last_using < USING_EVERY:
                        continue  # a flood of them held the loop: every page's reload came 0.1-0.7 s late
                    last_using = time.monotonic()
                if message is not None:
                    said(broadcaster, connection, message)
        except ConnectionClosed:
            pass  # a client that vanished, or sent a frame over MAX_FRAME
        if broadcaster.console:
            broadcaster.console.left(connection)
        broadcaster.status.left(connection)
        broadcaster.leave(connection)
        log.debug("client left")

    return handler


def said(broadcaster: Broadcaster, connection: ServerConnection, message: dict[str, Any]) -> None:
    """What a snippet said: answered (a challenge) or recorded."""
    paths = reported(message)
    if message.get("type") == "challenge":  # the tab asks who we are: secret.py
        proof = secret.proof(broadcaster.key, broadcaster.port, message.get("nonce"))
        if proof is not None:
            answer: Proof = {"type": "proof", "proof": proof}
            send([connection], answer)
    elif paths is not None:
        broadcaster.uses(connection, paths)
    elif message.get("type") == "console" and broadcaster.console:
        broadcaster.console.said(connection, message)
    if message.get("type") in ("page", "focus", "console"):
        broadcaster.status.said(connection, message)
