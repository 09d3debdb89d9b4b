"""The blog post's reload-server.py (../shared/seeds/, "a basic live reload in
just a few dozen lines"), the floor our broadcaster's fan-out is measured
against. As written there, but for its port (PORT, default 5678) and its
ready line printed once it listens."""

import signal

signal.signal(signal.SIGUSR1, lambda a, b: None)

import asyncio  # noqa: E402
import os  # noqa: E402

import websockets  # noqa: E402

CONNECTIONS = set()


async def register(websocket):
    CONNECTIONS.add(websocket)
    try:
        await websocket.wait_closed()
    finally:
        CONNECTIONS.remove(websocket)


async def main():
    async with websockets.serve(register, os.getenv("HOST", "0.0.0.0"), int(os.getenv("PORT", "5678"))):

        # This will run when triggered from an external source via the SIGUSR1
        # signal
        def signal_handler(sig, frame):
            websockets.broadcast(CONNECTIONS, "reload")

        signal.signal(signal.SIGUSR1, signal_handler)
        print("Running websocket server", flush=True)
        while True:
            await asyncio.sleep(10000)


if __name__ == "__main__":
    asyncio.run(main())
