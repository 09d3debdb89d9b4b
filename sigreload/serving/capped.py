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
import inspect
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from sigreload.serving import limits, peer_user

log = logging.getLogger("sigreload.proxy")
MOST_CONNECTIONS = 4096  # client connections (fewer below the open-files limit)
BODY_RATE = 16 << 10  # bytes per second a request's body comes at, at least, after its first `patience` seconds
READ = 32 << 10  # bytes read ahead from the app for one answer (aiohttp pauses past twice this)
WRITE_AHEAD = 64 << 10  # bytes given to a client's connection that it has not taken yet, before the app is paused


def most_clients() -> int:
    """Client connections at once: each may hold one to the app too (two open files)."""
    return limits.most_connections(MOST_CONNECTIONS * 2) // 2


def small_reads() -> dict[str, Any]:
    """The app's connections' options (aiohttp 3.12 on): a socket receive buffer
    of READ bytes, so a read from the app takes at most that much (the loop
    reads up to 256 KB at once: a paused download held one such read)."""
    if "socket_factory" not in inspect.signature(aiohttp.TCPConnector).parameters:
        return {}

    def made(info: Any) -> socket.socket:
        family, kind, proto, _, _ = info
        sock = socket.socket(family=family, type=kind, proto=proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, READ)
        return sock

    return {"socket_factory": made}


class Handler(RequestHandler):
    """aiohttp's connection handler, one of ``crowd``: idle while it waits
    for a request (or its first bytes), busy while it is answered."""

    def __init__(self, *args: Any, crowd: limits.Crowd, trimmer: limits.Trimmer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.crowd, self.trimmer = crowd, trimmer
        self.client = ""  # its client, as the crowd knows it (``peer_user.client``)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.client = peer_user.client(transport.get_extra_info("peername"), transport.get_extra_info("sockname"))
        gone = self.crowd.join(self, self.client)
        for victim in gone or ():
            assert isinstance(victim, Handler)
            victim.force_close()  # the one idle longest
        if gone is None:
            self.force_close()  # every connection is being answered: refused

    def connection_lost(self, exc: BaseException | None) -> None:
        self.crowd.leave(self)
        super().connection_lost(exc)
        self.trimmer.soon()


class Server(web.Server):
    """aiohttp's low-level server, its connections capped (``crowd``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.crowd, self.trimmer = limits.Crowd(most_clients()), limits.Trimmer()

    def full(self) -> None:
        """A full file table: the connections idle longest go."""
        for victim in self.crowd.longest_idle(16):
            assert isinstance(victim, Handler)
            victim.force_close()

    def __call__(self) -> RequestHandler:
        return Handler(self, loop=self._loop, crowd=self.crowd, trimmer=self.trimmer, **self._kwargs)


async def write(request: web.BaseRequest, response: web.StreamResponse, data: bytes) -> None:
    """``data`` to the client, in pieces of WRITE_AHEAD bytes, each once the
    client took all but WRITE_AHEAD bytes (nothing more is read from the app
    meanwhile: a download never read holds a few small buffers, not its
    body); a full server lets go of the connection that waited longest."""
    transport, handler = request.transport, request.protocol
    if transport is not None and transport.get_write_buffer_limits()[1] != WRITE_AHEAD:
        transport.set_write_buffer_limits(high=WRITE_AHEAD)
    view = memoryview(data)
    for at in range(0, len(view), WRITE_AHEAD):
        await response.write(view[at:at + WRITE_AHEAD])
        if isinstance(handler, Handler):
            handler.crowd.writing(handler, True)
            try:
                await request.writer.drain()  # aiohttp drains only every 64 KB written
            finally:
                handler.crowd.writing(handler, False)


def answering(request: web.BaseRequest, busy: bool) -> None:
    """``request``'s connection is being answered (never let go) or waits again."""
    handler = request.protocol
    if isinstance(handler, Handler):
        if busy:
            handler.crowd.busy(handler)
        else:
            handler.crowd.rest(handler)


class ClientBody:
    """``request``'s body as it comes, in pieces of at most ``piece`` bytes,
    within ``patience`` seconds plus one for each BODY_RATE bytes from when it
    was made: past that, the client's connection is closed (the app's request
    is cut with it). ``read(most)`` keeps the first pieces (``pieces``; ``whole``
    once the body ended); ``rest()`` gives them, then the rest as it comes."""

    def __init__(self, request: web.BaseRequest, piece: int, patience: float) -> None:
        self.request, self.piece, self.patience = request, piece, patience
        self.start, self.received = asyncio.get_running_loop().time(), 0
        self.pieces: list[bytes] = []
        self.whole = not request.body_exists

    async def read(self, most: int) -> None:
        """Keep pieces until the body ended (``whole``) or ``most`` bytes came."""
        while not self.whole and self.received < most:
            data = await self.next()
            if data:
                self.pieces.append(data)
            else:
                self.whole = True

    async def rest(self) -> AsyncIterator[bytes]:
        """The pieces kept, then the rest of the body as it comes."""
        while self.pieces:
            yield self.pieces.pop(0)
        while not self.whole:
            data = await self.next()
            if not data:
                self.whole = True
                return
            yield data

    async def next(self) -> bytes:
        """The next piece (empty: the body ended)."""
        request, loop = self.request, asyncio.get_running_loop()
        left = self.start + self.patience + self.received / BODY_RATE - loop.time()
        try:
            data = await asyncio.wait_for(request.content.read(self.piece), max(0.0, left))
        except (asyncio.TimeoutError, TimeoutError):  # the same class from 3.11 on
            log.debug("%s %s: the body did not come in time: closed", request.method, request.raw_path)
            if request.transport:
                request.transport.abort()
            raise ConnectionResetError("the client's body did not come in time") from None
        self.received += len(data)
        return data
