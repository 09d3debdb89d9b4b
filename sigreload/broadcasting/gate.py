"""Admission: how many WebSocket handshakes are read at once, and who is let go
for whom when the connections are many (``limits.Crowd``)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode
from websockets.protocol import State

from sigreload.serving import limits, peer_user

HANDSHAKES_AT_ONCE = 32  # read at once (Gate): a pass of the loop over them takes a few ms
MAX_HEAD = 16 << 10  # bytes of a handshake's request head


class Gate:
    """At most ``most`` WebSocket handshakes read at once; later connections
    wait, unread (reading paused), in the order their whole request head came
    (a socket that sends nothing, or a byte at a time, holds no turn: 100 such
    kept every page out). asyncio handles every socket that is ready in one
    pass: a crowd of thousands joining at once would otherwise hold the loop,
    and every signal and ping, for hundreds of milliseconds. ``crowd``: every
    connection of the process, capped (``limits.Crowd``)."""

    def __init__(self, most: int, crowd: limits.Crowd) -> None:
        self.free, self.crowd = most, crowd
        self.queue: deque[GatedConnection] = deque()

    def enter(self, connection: GatedConnection) -> None:
        if self.free:
            self.free -= 1
            connection.slot = "held"
        else:
            connection.slot = "waiting"
            connection.transport.pause_reading()
            self.queue.append(connection)

    def leave(self, connection: GatedConnection) -> None:
        """``connection``'s handshake is over (done, refused, or it went away)."""
        held, connection.slot = connection.slot == "held", "done"
        if not held:
            return  # a waiting one is skipped when its turn comes
        while self.queue:
            turn = self.queue.popleft()
            if turn.slot == "waiting":
                turn.take_turn()
                return
        self.free += 1


class GatedConnection(ServerConnection):
    """A connection whose handshake waits for its turn at ``gate`` (one per
    process: ``connections`` makes them for websockets' ``serve``), and that
    ends cheaply when its client is gone: thousands of pages may go at once
    (a browser quits, a laptop sleeps), and the loop must stay free for
    signals meanwhile."""

    def __init__(self, *args: Any, gate: Gate, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = gate
        self.slot = "new"
        self.head = b""  # what came before its turn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        gone = self.gate.crowd.join(self, peer_user.client(transport.get_extra_info("peername"),
                                                           transport.get_extra_info("sockname")))
        for victim in gone or ():
            assert isinstance(victim, GatedConnection)
            victim.transport.abort()  # the one idle longest before its handshake
        if gone is None:
            self.transport.abort()  # full of open pages: refused

    def data_received(self, data: bytes) -> None:
        if self.slot in ("new", "waiting"):
            self.head += data
            if self.slot == "waiting" or b"\r\n\r\n" not in self.head:
                if len(self.head) > MAX_HEAD:
                    self.transport.abort()
                return
            self.gate.enter(self)
            if self.slot == "waiting":
                return
            data, self.head = self.head, b""
        super().data_received(data)

    def take_turn(self) -> None:
        """Its handshake is read now: what came meanwhile, then the rest."""
        self.slot = "held"
        self.transport.resume_reading()
        data, self.head = self.head, b""
        super().data_received(data)

    def start_keepalive(self) -> None:
        """Its handshake is over (websockets calls this then, on either port):
        the next one's turn; an open page is never let go for a newcomer."""
        self.gate.leave(self)
        self.gate.crowd.busy(self)
        super().start_keepalive()

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate.leave(self)
        self.gate.crowd.leave(self)
        super().connection_lost(exc)

    def eof_received(self) -> None:
        """The client went away without a closing handshake: there is nothing
        left to say to it (websockets would shut down the write side first)."""
        if self.protocol.state is State.OPEN:
            self.transport.abort()
        else:
            super().eof_received()

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """As websockets' close, without its wait for a connection already lost."""
        if self.protocol.state is not State.CLOSED or not self.connection_lost_waiter.done():
            await super().close(code, reason)



def connections(gate: Gate) -> type[ServerConnection]:
    """What websockets' ``serve`` takes as ``create_connection``: connections at ``gate``.
    (It calls it as a class; this function carries the gate: no class is made for it.)"""
    def gated(*args: Any, **kwargs: Any) -> GatedConnection:
        return GatedConnection(*args, gate=gate, **kwargs)
    return gated  # type: ignore[return-value]  # called like the class, which is all serve does
