"""Who gets in, and as what: the page origins accepted, the plain HTTP answers
on the broadcaster's port (``GET /reload.js`` and its siblings, the status
page), and which path makes a client a sigreload snippet, a pasted original
one, a LiveReload client or a status page."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
from collections.abc import Callable, Iterable, Sequence

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response
from websockets.typing import Origin

from sigreload import consoles, livereload, page_status, secret
from sigreload.broadcasting.core import Kind
from sigreload.contract import wire
from sigreload.serving import hosts, snippet

IDENTIFIED_PATH = wire.SOCKET_PATH
# Page origins trusted by default: loopback pages (any port, http or https), and
# clients that send no Origin at all (not browsers: browsers always send one)
# from this machine only: from another, no Origin gets 403 (``from_this_machine``).
# Anything else gets 403, "null" too: file:// pages send it, and so does a
# sandboxed frame of any web site (it would read build errors and file names).
Origins = Sequence[Origin | re.Pattern[str] | None] | None  # websockets' origins: None accepts any
LOOPBACK_PAGE = re.compile(r"https?://(localhost|[\w.-]+\.localhost|127(\.\d{1,3}){3}|\[::1\])(:\d+)?")
LOOPBACK_ORIGINS: list[Origin | re.Pattern[str] | None] = [None, LOOPBACK_PAGE]

log = logging.getLogger("sigreload.broadcast")


def accepting(extra: Iterable[str], file_pages: bool = False,
              hosts: Iterable[str] = ()) -> list[Origin | re.Pattern[str] | None]:
    """The page origins accepted: loopback pages, ``extra`` (--allow-origin), pages
    of ``hosts`` on any port, http or https (the addresses served, ``[::1]`` in
    brackets; --allow-host names, ".example.com": its subdomains too), and with
    ``file_pages`` the "null" origin of file:// pages (--allow-file-pages)."""
    names = [re.escape(h.lower()) if not h.startswith(".") else r"(?:[a-z0-9_-]+\.)+" + re.escape(h[1:].lower())
             for h in hosts if h and "(" not in h]  # "(no network address)"
    served = [re.compile(rf"https?://(?:{'|'.join(names)})(:\d+)?")] if names else []
    return LOOPBACK_ORIGINS + served + [Origin(o) for o in extra] + ([Origin("null")] if file_pages else [])


def from_this_machine(connection: ServerConnection) -> bool:
    """Whether a client's peer address is loopback (an IPv4-mapped one too), or
    unknown, or the address it came to (--host ADDRESS: the HTTP server's relay)."""
    peer, here = connection.remote_address, connection.local_address
    if not peer or (here and peer[0] == here[0]):
        return True
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%")[0])
    except ValueError:
        return True  # a Unix socket: this machine
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


def origin_required(respond: Callable[[ServerConnection, Request], Response | None]
                    ) -> Callable[[ServerConnection, Request], Response | None]:
    """``respond`` (a process_request), and then 403 for a handshake without an
    Origin from another machine: a client there that is not a page (a script on
    the café's Wi-Fi) would read build output, changed paths and the hello's
    recent list. Its Origin, when it sends one, is checked against those served."""
    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        response = respond(connection, request)
        origin = request.headers.get("Origin")
        if response is None and not from_this_machine(connection) and (
                origin is None or LOOPBACK_PAGE.fullmatch(origin.lower())):  # (that machine's own localhost)
            log.debug("refused a client with Origin %r from %s", origin, connection.remote_address)
            return connection.respond(403, "A client on another machine must be a page of an origin served\n")
        return response
    return process_request


def host_checked(respond: Callable[[ServerConnection, Request], Response | None], allowed: Iterable[str]
                 ) -> Callable[[ServerConnection, Request], Response | None]:
    """``respond`` (a process_request) for a request whose Host passes the
    servers' rule (``hosts.host_refusal``: a loopback name, an address, a name
    in ``allowed``); 400 or 403 before anything else (an HTTP answer or a
    handshake) otherwise: a DNS rebinding reads nothing, on the LAN neither."""
    names = tuple(allowed)

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        given = request.headers.get_all("Host")
        refusal = hosts.host_refusal(given, names)
        if refusal is not None:
            log.debug("refused a request for Host %s from %s", consoles.escaped(", ".join(given), 100),
                      connection.remote_address)
            return connection.respond(refusal[0], refusal[1].decode())
        return respond(connection, request)
    return process_request


def is_livereload_port(connection: ServerConnection) -> bool:
    """Whether a client came to the LiveReload port (it gets only that protocol's commands)."""
    return connection.request is not None and connection.request.path.split("?")[0] == livereload.PATH


def is_identified(connection: ServerConnection) -> bool:
    """Whether a client is a sigreload snippet (it connected to IDENTIFIED_PATH)."""
    return (connection.request is not None and connection.request.path.startswith(IDENTIFIED_PATH)
            and not page_status.is_status(connection))


def snippet_response(connection: ServerConnection, request: Request) -> Response | None:
    """process_request: serve GET /reload.js (/idiomorph.js, for --morph; /overlay.js,
    the error toast; /status, the status page), and HEAD as GET without the body
    (405 for any other method); let WebSocket handshakes through,
    the status socket's only from sigreload's relays or the /status page (status_refused)."""
    if request.path.startswith(page_status.PATH) and (why := status_refused(connection, request)):
        log.debug("status socket refused: %s", why)
        return connection.respond(403, "Only sigreload's relays and its own /status page get the status socket\n")
    name = request.path.split("?")[0][1:]
    if name not in snippet.SERVED and name != "status":
        return None
    method = getattr(request, "method", "GET")  # websockets < 15 lets only GET through
    if method not in ("GET", "HEAD"):
        response = connection.respond(405, "GET or HEAD\n")
        response.headers["Allow"] = "GET, HEAD"
        return response
    page = name == "status"  # the status page, for a site served by another server (--no-http)
    # The snippet: 304 while the same (ETag). websockets closes the connection after any answer but 101.
    status, body, headers = (200, snippet.status_page(), snippet.STATUS_HEADERS) if page else snippet.answer(
        name, request.path, request.headers.get("If-None-Match"))
    response = connection.respond(status, body.decode())
    del response.headers["Content-Type"]  # headers is a multidict: replace, not add
    if status == 304:  # no content, so no Content-Length: 0 (RFC 9110 8.6) nor Content-Type; its validators
        del response.headers["Content-Length"]
    else:
        response.headers["Content-Type"] = "text/html; charset=utf-8" if page else "text/javascript; charset=utf-8"
    for header, value in headers:
        response.headers[header] = value
    return dataclasses.replace(response, body=b"") if method == "HEAD" else response  # HEAD: GET's headers alone


def status_refused(connection: ServerConnection, request: Request) -> str | None:
    """Why the status socket (every page's URL, title, errors; reloads) is not for this
    client, or None: it is for sigreload's relays (they prove it: secret.relay_proven)
    and for the broadcaster's own /status page (Origin: a loopback host, this port)."""
    port = connection.local_address[1] if connection.local_address else 0
    if secret.relay_proven(request.headers, port):
        return None
    own = {f"http://{host}:{port}" for host in ("127.0.0.1", "localhost", "[::1]")}
    origin = request.headers.get("Origin")
    return None if origin in own else f"Origin {consoles.escaped(str(origin), 100)} is not this port's /status page"



def kind(connection: ServerConnection) -> Kind | None:
    """What a client is, by the path it came to (None: a status page, page_status's own)."""
    if page_status.is_status(connection):
        return None
    return "snippet" if is_identified(connection) else "livereload" if is_livereload_port(connection) else "plain"
