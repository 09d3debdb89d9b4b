"""The proxy's WebSocket relay: a page's socket to the app's (its own
WebSockets) or to the broadcaster's (/_sigreload/socket), message for message,
both ways, through the proxy's client session."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL


class Unreachable(Exception):
    """The other end's WebSocket does not answer; ``why`` says how."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why

async def relay(session: aiohttp.ClientSession, request: web.BaseRequest, url: str | URL,
                origin: str | None = None, extra: dict[str, str] | None = None) -> web.StreamResponse:
    """A WebSocket to ``url`` (the app's, or the broadcaster's) through ``session``,
    message for message, both ways; ``origin`` (when given) replaces the client's
    Origin; ``extra`` headers are added (the client's address, for the status
    page). Raises Unreachable when the other end does not answer."""
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    headers = {k: v for k, v in request.headers.items()
               if k.lower() in ("cookie", "origin", "authorization", "user-agent")} | (extra or {})
    if origin is not None:
        headers = {k: v for k, v in headers.items() if k.lower() != "origin"} | {"Origin": origin}
    try:
        upstream = await session.ws_connect(url, protocols=offered, headers=headers, autoping=False,
                                                 max_msg_size=0, compress=0)
    except aiohttp.WSServerHandshakeError as exc:
        return web.Response(status=exc.status, text=f"{exc.message}\n")
    except (aiohttp.ClientError, OSError) as exc:
        raise Unreachable(f"its WebSocket does not answer ({exc.__class__.__name__})") from None
    client = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else (),
                                   autoping=False, max_msg_size=0, compress=False)
    await client.prepare(request)

    async def pump(source: Any, sink: Any) -> None:
        async for message in source:
            if message.type == aiohttp.WSMsgType.TEXT:
                await sink.send_str(message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await sink.send_bytes(message.data)
            elif message.type == aiohttp.WSMsgType.PING:
                await sink.ping(message.data)
            elif message.type == aiohttp.WSMsgType.PONG:
                await sink.pong(message.data)
        await sink.close(code=source.close_code or aiohttp.WSCloseCode.OK)

    try:
        await asyncio.gather(pump(client, upstream), pump(upstream, client))
    except (ConnectionError, aiohttp.ClientError):
        pass
    finally:
        await upstream.close()
        await client.close()
    return client
