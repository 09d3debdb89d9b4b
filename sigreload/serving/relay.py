"""The page's socket on the page's own origin (``/_sigreload/socket``), for the
file server: one port is all a forwarder (SSH -L, docker -p, Codespaces) has
to carry. The WebSocket handshake is checked by the server (the Host header and a
same-origin Origin: ``common.same_origin``), then passed to the broadcaster on loopback, and from
there on bytes go both ways unchanged; one thread relays every page's socket.
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
import time
from functools import partial

from sigreload import secret
from sigreload.contract import wire
from sigreload.serving import peer_user
from sigreload.serving.shares import Shares, lan_relays

log = logging.getLogger("sigreload.http")
PIECE = 64 << 10
SEND_TIMEOUT = 5.0  # a side that takes nothing for this long (a frozen tab) loses its socket
MOST_WAITING = 256 << 10  # bytes waiting for a side that takes nothing, before it loses its socket
LAST_WORDS = 1.0  # seconds a stopping server still relays, for the broadcaster's goodbye ("the watcher stopped")
KEPT = ("sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol",
        "user-agent", "cookie")  # the client's headers passed on; Host and Origin are the relay's


def handshake(headers: list[tuple[str, str]], ws_port: int, own_port: int, path: str = wire.SOCKET_PATH,
              peer: str | None = None) -> bytes:
    """The request that opens the broadcaster's socket (``path``) for a checked
    client: the client's WebSocket headers, a loopback Host and Origin (ours),
    the client's address (``peer``, for the status page), and the relay's proof
    (secret.relay_proof: the broadcaster believes ``peer`` and gives the status socket only then)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{ws_port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Origin: http://127.0.0.1:{own_port}"]
    lines += [f"{wire.PEER_HEADER}: {peer}"] if peer else []
    lines += [f"{secret.RELAY_HEADER}: {proof}"] if (proof := secret.relay_proof(ws_port)) else []
    lines += [f"{name}: {value}" for name, value in headers if name.lower() in KEPT]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Relays:
    """Every relayed socket pair, pumped by one thread (started on first use)."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.lock = threading.Condition()  # notified when a pair closes (drain)
        self.pairs = 0
        self.waker_r, self.waker_w = socket.socketpair()
        self.selector.register(self.waker_r, selectors.EVENT_READ, None)
        self.thread: threading.Thread | None = None
        self._shares: Shares | None = None  # made at first use (it asks the open-files limit)
        self.tickets: dict[socket.socket, object] = {}  # each pair's page socket -> its share's ticket
        self.waiting: dict[socket.socket, bytearray] = {}  # what a side did not take yet
        self.since: dict[socket.socket, float] = {}  # ... since when (monotonic)

    @property
    def shares(self) -> Shares:
        """Who may have a relayed socket (``shares.Shares``)."""
        with self.lock:
            if self._shares is None:
                self._shares = lan_relays()
            return self._shares

    def add(self, client: socket.socket, broadcaster: socket.socket, ticket: object) -> None:
        """Pump bytes between ``client`` (its share taken: ``ticket``) and
        ``broadcaster`` until one side closes."""
        self.tickets[client] = ticket
        for sock in (client, broadcaster):
            sock.setblocking(False)  # one thread for all: a side that takes nothing must never hold it
        with self.lock:
            self.selector.register(client, selectors.EVENT_READ, broadcaster)
            self.selector.register(broadcaster, selectors.EVENT_READ, client)
            self.pairs += 1
            if self.thread is None:
                self.thread = threading.Thread(target=self.run, name="relay", daemon=True)
                self.thread.start()
        self.waker_w.send(b"\0")  # the selector sees the new pair at once

    def run(self) -> None:
        while True:
            for key, events in self.selector.select(timeout=1.0):
                if key.data is None:
                    self.waker_r.recv(PIECE)
                    continue
                sock, other = key.fileobj, key.data
                assert isinstance(sock, socket.socket)
                if sock.fileno() < 0:
                    continue  # closed earlier in this pass
                try:
                    if events & selectors.EVENT_WRITE:
                        self.flush(sock, other)
                    if events & selectors.EVENT_READ and (data := received(sock)) is not None:
                        if not data:
                            raise ConnectionError("closed")
                        self.send(other, sock, data)
                except OSError as exc:  # reset, closed, or a side that takes nothing
                    log.debug("relayed socket closed: %s", exc)
                    self.close(sock, other)
            now = time.monotonic()
            for sink, since in list(self.since.items()):
                if now - since > SEND_TIMEOUT and sink.fileno() >= 0:  # a frozen tab, or one that reads nothing
                    self.close(sink, self.selector.get_key(sink).data)

    def send(self, sink: socket.socket, source: socket.socket, data: bytes) -> None:
        """``data`` to ``sink``: what it does not take now waits (MOST_WAITING at most)."""
        waiting = self.waiting.get(sink)
        if waiting is not None:
            waiting += data
            if len(waiting) > MOST_WAITING:
                raise ConnectionError("a side that takes nothing")
            return
        sent = sent_now(sink, data)
        if sent < len(data):
            self.waiting[sink], self.since[sink] = bytearray(data[sent:]), time.monotonic()
            self.selector.modify(sink, selectors.EVENT_READ | selectors.EVENT_WRITE, source)

    def flush(self, sink: socket.socket, source: socket.socket) -> None:
        waiting = self.waiting[sink]
        del waiting[:sent_now(sink, bytes(waiting))]
        if not waiting:
            del self.waiting[sink], self.since[sink]
            self.selector.modify(sink, selectors.EVENT_READ, source)

    def close(self, *socks: socket.socket) -> None:
        with self.lock:
            for sock in socks:
                try:
                    self.selector.unregister(sock)
                except (KeyError, ValueError):
                    pass
                if (ticket := self.tickets.pop(sock, None)) is not None:
                    self.shares.give(ticket)
                self.waiting.pop(sock, None)
                self.since.pop(sock, None)
                sock.close()
            self.pairs = len(self.selector.get_map()) // 2  # the waker is no pair
            self.lock.notify_all()

    def drain(self, seconds: float = LAST_WORDS) -> None:
        """Wait (at most ``seconds``) until every relayed socket closed: a server
        that stops keeps relaying what the broadcaster says last (the pages' "the
        watcher stopped", its close) instead of cutting its pages off first."""
        with self.lock:
            self.lock.wait_for(lambda: self.pairs == 0, seconds)


WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def received(sock: socket.socket) -> bytes | None:
    """What ``sock`` has (b"": closed), or None when it has nothing yet (TLS: a record in part)."""
    try:
        data = sock.recv(PIECE)
        while data and isinstance(sock, ssl.SSLSocket) and sock.pending():  # decrypted, unseen by select
            data += sock.recv(PIECE)
        return data
    except WOULD_BLOCK:
        return None


def sent_now(sock: socket.socket, data: bytes) -> int:
    """How much of ``data`` ``sock`` took without waiting."""
    try:
        return sock.send(data)
    except WOULD_BLOCK:
        return 0


RELAYS = Relays()


def relay(client: socket.socket, headers: list[tuple[str, str]], ws_port: int, own_port: int,
          path: str = wire.SOCKET_PATH) -> str | None:
    """Open the broadcaster's socket for ``client`` (a checked WebSocket
    handshake) and relay it: ``client`` is the relay's then (the HTTP server
    must hand it over). Returns why not (nothing sent to the client) or None.
    The broadcaster is looked for on 127.0.0.1, then on the address the client
    came to (``--host 192.168.1.5``: both servers listen on that address alone)."""
    peer = client.getpeername()[0] if client.family in (socket.AF_INET, socket.AF_INET6) else "127.0.0.1"
    who = peer_user.client(client.getpeername(), client.getsockname()) if peer != "127.0.0.1" else peer
    ticket = RELAYS.shares.take(who, partial(cut, client))  # a device with fewer relays may cut it
    if ticket is None:
        return "too many pages of this device or of the LAN have a socket already"
    upstream, why = None, ""
    for host in dict.fromkeys(("127.0.0.1", client.getsockname()[0])):
        try:
            upstream = socket.create_connection((host, ws_port), timeout=SEND_TIMEOUT)
            break
        except OSError as exc:
            why = f"the broadcaster on port {ws_port} does not answer ({exc.strerror or exc})"
    if upstream is None:
        RELAYS.shares.give(ticket)
        return why
    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        upstream.sendall(handshake(headers, ws_port, own_port, path, peer))
    except OSError as exc:
        upstream.close()
        RELAYS.shares.give(ticket)
        return f"the broadcaster on port {ws_port} went away ({exc.strerror or exc})"
    RELAYS.add(client, upstream, ticket)
    return None


def cut(client: socket.socket) -> None:
    """End ``client``'s relay (the relay's thread sees it closed, and closes the pair)."""
    try:
        socket.socket.shutdown(client, socket.SHUT_RDWR)  # socket's own, even for TLS (no unwrap)
    except OSError:
        pass  # gone already
