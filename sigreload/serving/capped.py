"""The proxy's limits, on aiohttp: at most so many client connections (below
the open-files limit, at most ``limits.PER_ADDRESS`` from one LAN device; a
new one lets go of the one idle longest: 3,000 idle sockets with 1,024 open
files made every request fail), and a deadline for a request's body that no
trickled byte puts off (256 POSTs that promised a body and sent none held
every connection to the app). A request's head already has one: aiohttp
closes a connection that has not sent a whole request within its keep-alive
timeout, whatever it sent meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from sigreload.serving import limits

log = logging.getLogger("sigreload.proxy")
MOST_CONNECTIONS = 4096  # client connections (fewer below the open-files limit)
BODY_RATE = 16 << 10  # bytes per second a request's body comes at, at least, after its first `patience` seconds


def most_clients() -> int:
    """Client connections at once: each may hold one to the app too (two open files)."""
    return limits.most_connections(MOST_CONNECTIONS * 2) // 2


class Handler(RequestHandler):
    """aiohttp's connection handler, one of ``crowd``: idle while it waits
    for a request (or its first bytes), busy while it is answered."""

    crowd: limits.Crowd

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        gone = self.crowd.join(self, str(peer[0]) if peer else "")
        for victim in gone or ():
            assert isinstance(victim, Handler)
            victim.force_close()  # the one idle longest
        if gone is None:
            self.force_close()  # every connection is being answered: refused

    def connection_lost(self, exc: BaseException | None) -> None:
        self.crowd.leave(self)
        super().connection_lost(exc)


class Server(web.Server):
    """aiohttp's low-level server, its connections capped (``crowd``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.crowd = limits.Crowd(most_clients())
        self.handler_class: type[Handler] = type("Handler", (Handler,), {"crowd": self.crowd})

    def full(self) -> None:
        """A full file table: the connections idle longest go."""
        for victim in self.crowd.longest_idle(16):
            assert isinstance(victim, Handler)
            victim.force_close()

    def __call__(self) -> RequestHandler:
        return self.handler_class(self, loop=self._loop, **self._kwargs)


def answering(request: web.BaseRequest, busy: bool) -> None:
    """``request``'s connection is being answered (never let go) or waits again."""
    handler = request.protocol
    if isinstance(handler, Handler):
        if busy:
            handler.crowd.busy(handler)
        else:
            handler.crowd.rest(handler)


async def body(request: web.BaseRequest, piece: int, patience: float) -> AsyncIterator[bytes]:
    """``request``'s body as it comes, within ``patience`` seconds plus one for
    each BODY_RATE bytes: past that, the client's connection is closed (the
    app's request is cut with it)."""
    loop = asyncio.get_running_loop()
    start, received = loop.time(), 0
    while True:
        left = start + patience + received / BODY_RATE - loop.time()
        try:
            data = await asyncio.wait_for(request.content.read(piece), max(0.0, left))
        except (asyncio.TimeoutError, TimeoutError):  # the same class from 3.11 on
            log.debug("%s %s: the body did not come in time: closed", request.method, request.raw_path)
            if request.transport:
                request.transport.abort()
            raise ConnectionResetError("the client's body did not come in time") from None
        if not data:
            return
        received += len(data)
        yield data
