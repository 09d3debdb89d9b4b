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

from sigreload import secret
from sigreload.contract import wire
from sigreload.serving import limits

log = logging.getLogger("sigreload.http")
PIECE = 64 << 10
SEND_TIMEOUT = 5.0  # a side that takes nothing for this long (a frozen tab) loses its socket
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
        self._shares: limits.Shares | None = None  # made at first use (it asks the open-files limit)
        self.peers: dict[socket.socket, str] = {}  # each pair's page socket -> its peer (a share to give back)

    @property
    def shares(self) -> limits.Shares:
        """Who may have a relayed socket (``limits.Shares``)."""
        with self.lock:
            if self._shares is None:
                self._shares = limits.lan_relays()
            return self._shares

    def add(self, client: socket.socket, broadcaster: socket.socket, peer: str) -> None:
        """Pump bytes between ``client`` (from ``peer``, its share taken) and
        ``broadcaster`` until one side closes."""
        self.peers[client] = peer
        for sock in (client, broadcaster):
            sock.settimeout(SEND_TIMEOUT)  # reads wait for the selector; a send may block this long
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
            for key, _ in self.selector.select():
                if key.data is None:
                    self.waker_r.recv(PIECE)
                    continue
                source, sink = key.fileobj, key.data
                assert isinstance(source, socket.socket)
                try:
                    data = source.recv(PIECE)
                    while isinstance(source, ssl.SSLSocket) and source.pending():  # decrypted, unseen by select
                        data += source.recv(PIECE)
                    if data:
                        sink.sendall(data)
                        continue
                except OSError as exc:  # reset, or a side that takes nothing
                    log.debug("relayed socket closed: %s", exc)
                self.close(source, sink)

    def close(self, *socks: socket.socket) -> None:
        with self.lock:
            for sock in socks:
                try:
                    self.selector.unregister(sock)
                except (KeyError, ValueError):
                    pass
                if (peer := self.peers.pop(sock, None)) is not None:
                    self.shares.give(peer)
                sock.close()
            self.pairs = len(self.selector.get_map()) // 2  # the waker is no pair
            self.lock.notify_all()

    def drain(self, seconds: float = LAST_WORDS) -> None:
        """Wait (at most ``seconds``) until every relayed socket closed: a server
        that stops keeps relaying what the broadcaster says last (the pages' "the
        watcher stopped", its close) instead of cutting its pages off first."""
        with self.lock:
            self.lock.wait_for(lambda: self.pairs == 0, seconds)


RELAYS = Relays()


def relay(client: socket.socket, headers: list[tuple[str, str]], ws_port: int, own_port: int,
          path: str = wire.SOCKET_PATH) -> str | None:
    """Open the broadcaster's socket for ``client`` (a checked WebSocket
    handshake) and relay it: ``client`` is the relay's then (the HTTP server
    must hand it over). Returns why not (nothing sent to the client) or None.
    The broadcaster is looked for on 127.0.0.1, then on the address the client
    came to (``--host 192.168.1.5``: both servers listen on that address alone)."""
    peer = client.getpeername()[0] if client.family in (socket.AF_INET, socket.AF_INET6) else "127.0.0.1"
    if not RELAYS.shares.take(peer):
        return "too many pages of this device or of the LAN have a socket already"
    upstream, why = None, ""
    for host in dict.fromkeys(("127.0.0.1", client.getsockname()[0])):
        try:
            upstream = socket.create_connection((host, ws_port), timeout=SEND_TIMEOUT)
            break
        except OSError as exc:
            why = f"the broadcaster on port {ws_port} does not answer ({exc.strerror or exc})"
    if upstream is None:
        RELAYS.shares.give(peer)
        return why
    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        upstream.sendall(handshake(headers, ws_port, own_port, path, peer))
    except OSError as exc:
        upstream.close()
        RELAYS.shares.give(peer)
        return f"the broadcaster on port {ws_port} went away ({exc.strerror or exc})"
    RELAYS.add(client, upstream, peer)
    return None
