"""What sigreload's two HTTP servers (the file server and the proxy) share:
binding (IPv6 too, a real listen backlog, at most so many connections at
once, the one idle longest let go first: ``limits.Crowd``), a deadline for
each request's head that no trickled byte puts off, the Host checks against
DNS rebinding, small whole answers, and one log line per request at debug level.
"""

from __future__ import annotations

import io
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sigreload import listening
from sigreload.serving import limits, peer_user
from sigreload.serving.hosts import (
    HOST_MALFORMED as HOST_MALFORMED,  # the Host rules, asked here too
    HOST_REFUSED as HOST_REFUSED,
    host_allowed as host_allowed,
    host_name as host_name,
    host_refusal as host_refusal,
    loopback_host as loopback_host,
    same_origin as same_origin,
)

log = logging.getLogger("sigreload.http")
BACKLOG = 128  # connections the kernel holds until we accept them (socketserver's default: 5)


class Handler(BaseHTTPRequestHandler):
    """The request handler both servers build on.

    ``allowed_hosts`` (set per server): the names given with --allow-host;
    ``lan`` is --lan (the same Host rules hold). Request lines go to
    ``logger`` at debug level (-v), control characters escaped: a request
    line is anybody's text.
    """

    logger = log
    lan = False
    allowed_hosts: tuple[str, ...] = ()

    def log_message(self, format: str, *args: Any) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            line = (format % args).translate(self._control_char_table)  # type: ignore[attr-defined]
            self.logger.debug("%s %s", self.address_string(), line)

    def host_refused(self) -> bool:
        """Answer 403 and return True unless the Host header names this machine
        by a loopback name (DNS rebinding: a site's name that resolves to
        127.0.0.1), by an address, or by a name given with --allow-host; 400
        when it is not a name or an address and a port at all."""
        refusal = host_refusal(self.headers.get_all("Host") or [], self.allowed_hosts)
        if refusal is None:
            return False
        status, body = refusal
        self.close_connection = status == 400
        self.reply(status, "text/plain; charset=utf-8", body)
        return True

    deadline = 0.0  # time.monotonic() by which the request's head must have come
    server: Server

    def setup(self) -> None:
        super().setup()  # StreamRequestHandler's: the timeout, the files
        self.deadline = time.monotonic() + (self.timeout or limits.PATIENCE)
        self.rfile.close()  # the stdlib's: it would hold the socket open after its close
        self.rfile = io.BufferedReader(limits.Reads(self.connection, lambda: self.deadline, self.timeout))
        self.wfile = limits.Writes(self.connection, partial(self.server.writing, self.request))
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()  # here, in the connection's thread, within its timeout

    def handle_one_request(self) -> None:
        """One request: its head within ``timeout`` of the wait's start (a
        keep-alive's wait included), however it trickles in."""
        self.deadline = time.monotonic() + (self.timeout or limits.PATIENCE)
        self.server.resting(self.request)
        super().handle_one_request()

    def parse_request(self) -> bool:
        """The head, within the deadline set when its wait began (not again at
        its request line: a head took twice the timeout); idle until whole (the
        first to go when the server is full); then a body gets as long again."""
        if not super().parse_request():
            return False
        if not self.server.answering(self.request):  # let go meanwhile: its head was cut
            self.close_connection = True
            return False
        self.deadline = time.monotonic() + (self.timeout or limits.PATIENCE)
        return True

    def reply(self, status: int, ctype: str, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> None:
        """A small whole answer: its headers, its length, and its body (none to HEAD)."""
        self.send_response(status)
        own = [] if status == 304 else [("Content-Type", ctype), ("Content-Length", str(len(body)))]  # RFC 9110 8.6
        for name, value in [*own, *headers]:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class Server(ThreadingHTTPServer):
    """A thread per connection, at most ``crowd.most`` at once (None: no bound):
    past that, a new one lets go of the connection idle longest (waiting for a
    request, or for the rest of its head), or, when every one of its share is
    being answered, it is closed at once: the accept loop never waits (130
    slow heads from the LAN held this machine's requests behind them).

    ``siblings``: the same server on the other addresses (``bind``: both
    loopbacks), served, shut down and closed with this one."""

    daemon_threads = True
    request_queue_size = BACKLOG
    crowd: limits.Crowd | None = None
    room: threading.Condition  # guards ``crowd`` (bind makes it)
    siblings: list[Server] = []
    started: threading.Event  # set once it serves (bind makes it)
    handed: set[Any]  # connections handed over (bind makes it)
    tls: ssl.SSLContext | None = None  # HTTPS (--https)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.crowd is not None:
            with self.room:
                gone = self.crowd.join(request, peer_user.client(client_address, request.getsockname()))
            if gone is None:  # its share is being answered: closed at once (the accept loop never waits)
                log.debug("%s: refused (%d connections, all answered)", client_address[0], len(self.crowd))
                self.shutdown_request(request)
                return
            for victim in gone:
                log.debug("%s: let go (idle longest, %d connections)", client_address[0], len(self.crowd))
                try:  # its thread's read ends at once; socket's own shutdown, even for TLS (no unwrap)
                    socket.socket.shutdown(victim, socket.SHUT_RDWR)  # type: ignore[arg-type]
                except OSError:
                    pass  # gone already
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.ended(request)  # no thread took it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.ended(request)

    def ended(self, request: Any) -> None:
        self.tell(lambda crowd: crowd.leave(request))

    def answering(self, request: Any) -> bool:
        """``request`` (a connection) is being answered: never let go meanwhile
        (False: it was let go already)."""
        kept = [True]
        self.tell(lambda crowd: kept.__setitem__(0, crowd.busy(request)))
        return kept[0]

    def writing(self, request: Any, waits: bool) -> None:
        """``request``'s write waits for its client (True), or is done."""
        self.tell(lambda crowd: crowd.writing(request, waits))

    def resting(self, request: Any) -> None:
        """``request`` waits for its next request: the first to go when the server is full."""
        self.tell(lambda crowd: crowd.rest(request))

    def tell(self, change: Callable[[limits.Crowd], None]) -> None:
        """``change`` the crowd (in its lock); a connection may have ended: the accept loop looks again."""
        if self.crowd is not None:
            with self.room:
                change(self.crowd)
                self.room.notify()

    def get_request(self) -> tuple[Any, Any]:
        request, address = super().get_request()
        if self.tls is not None:  # the handshake happens in the connection's thread (Handler.setup)
            request = self.tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        return request, address

    def hand_over(self, request: Any) -> None:
        """``request`` (a connection) belongs elsewhere now: it is neither shut down nor closed here."""
        self.handed.add(request)

    def shutdown_request(self, request: Any) -> None:
        if request in self.handed:
            self.handed.discard(request)
        else:
            super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is one debug line, never a traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError | ssl.SSLError):
            how = "spoke no TLS, or refused our certificate" if isinstance(error, ssl.SSLError) else "went away"
            log.debug("%s %s: %s", client_address[0], how, error)
            return
        super().handle_error(request, client_address)

    def serve_forever(self, poll_interval: float | None = 0.5) -> None:
        for sibling in self.siblings:
            threading.Thread(target=sibling.serve_forever, args=(poll_interval,), name="http", daemon=True).start()
        self.started.set()  # every thread is up (the siblings' started before this)
        super().serve_forever(poll_interval)  # type: ignore[arg-type]  # None: no polling

    def shutdown(self) -> None:
        for sibling in self.siblings:
            sibling.shutdown()
        super().shutdown()

    def server_close(self) -> None:
        for sibling in self.siblings:
            sibling.server_close()
        super().server_close()


def bind(host: str | None, port: int, handler: Callable[..., BaseHTTPRequestHandler],
         most: int | None = None, tls: ssl.SSLContext | None = None) -> Server:
    """A threading HTTP server for ``handler`` on every address ``host`` stands
    for (``listening.bind``: both loopbacks), serving at most ``most``
    connections at once (None: any number; fewer where the open-files limit
    is lower). Raises OSError, naming the address (its ``filename``) when one
    of them is taken."""
    servers = []
    crowd, room = (limits.Crowd(limits.most_connections(most)) if most else None), threading.Condition()
    for sock in listening.bind(host, port, BACKLOG):
        server = Server(sock.getsockname()[:2], handler, bind_and_activate=False)
        server.socket.close()
        server.socket, server.address_family, server.crowd, server.room = sock, sock.family, crowd, room
        server.server_address = sock.getsockname()
        server.server_name, server.server_port = str(server.server_address[0]), int(server.server_address[1])
        servers.append(server)
    for server in servers:
        server.started, server.handed, server.tls = threading.Event(), set(), tls
    servers[0].siblings = servers[1:]
    return servers[0]
