"""What sigreload's two HTTP servers (the file server and the proxy) share:
binding (IPv6 too), the loopback Host check against DNS rebinding, and one
log line per request at debug level.
"""

import ipaddress
import logging
import socket
from http.server import ThreadingHTTPServer
from urllib.parse import urlsplit

log = logging.getLogger("sigreload.http")


def loopback_host(host_header):
    """True for localhost, *.localhost and loopback addresses (any port)."""
    host = urlsplit("//" + (host_header or "")).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Logged:
    """Request handlers' lines go to ``logger`` at debug level (-v), control
    characters escaped (a request line is anybody's text)."""

    logger = log

    def log_message(self, format, *args):
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("%s %s", self.address_string(), (format % args).translate(self._control_char_table))


def bind(host, port, handler):
    """A threading HTTP server for ``handler`` (IPv6 when ``host`` is); raises OSError."""
    server_class = ThreadingHTTPServer
    if ":" in (host or ""):
        server_class = type("Server6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
    server = server_class((host, port), handler)
    server.daemon_threads = True
    return server
