"""The HTTP server: stdlib http.server, hardened for live reload.

Every response says ``Cache-Control: no-cache`` and conditional requests are
answered in full: with stock http.server, Chromium's heuristic cache serves
an OLD script or stylesheet after ``location.reload()``, and a second save
within the same second as the last fetch would get a 304 for a stale file.
Requests must name a loopback host (DNS rebinding), stay inside ROOT (no
``..``, no symlink out) and touch no dotfile or VCS folder.
"""

import argparse
import errno
import ipaddress
import logging
import os
import socket
import sys
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import sigreload

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


class Handler(SimpleHTTPRequestHandler):
    """Serves ROOT as plain files, never from a stale cache, never outside ROOT."""

    lan = False  # set per server by main(): LAN mode accepts any Host header
    protocol_version = "HTTP/1.1"  # keep-alive: a reload reuses the connections
    server_version = "sigreload"  # the snippet trusts our no-cache and skips its refetch
    disable_nagle_algorithm = True  # headers and body are two sends: no 40 ms delayed-ACK stall

    def send_head(self):
        if not self.lan and not loopback_host(self.headers.get("Host")):
            self.send_error(HTTPStatus.FORBIDDEN, "Host not allowed (use a loopback address)")
            return None
        if not self.inside_root():
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        del self.headers["If-Modified-Since"]  # 1-second resolution: answer in full
        return super().send_head()

    def inside_root(self):
        """False for dotfiles, VCS folders and anything resolving outside ROOT."""
        parts = unquote(urlsplit(self.path).path).split("/")
        if any(p.startswith(".") and p != ".well-known" for p in parts if p):
            return False
        real = os.path.realpath(self.translate_path(self.path))
        root = os.path.realpath(self.directory)
        return real == root or real.startswith(root + os.sep)

    def end_headers(self):
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format, *args):
        message = (format % args).translate(self._control_char_table)
        log.debug("%s %s", self.address_string(), message)


def make_server(root, host, port, lan=False):
    """Bind (port 0 picks a free one); raises OSError like socketserver."""
    handler = type("Handler", (Handler,), {"lan": lan})
    server_class = ThreadingHTTPServer
    if ":" in (host or ""):
        server_class = type("Server6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
    server = server_class((host, port), partial(handler, directory=root))
    server.daemon_threads = True
    return server


def main(argv=None):
    """CLI: serve ROOT over HTTP until SIGINT, SIGTERM or SIGHUP."""
    sigreload.require_signals()
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("root", nargs="?", default=".")
    parser.add_argument("--host", default=sigreload.HOST)
    parser.add_argument("--port", type=int, default=sigreload.HTTP_PORT)
    parser.add_argument("--lan", action="store_true", help="listen on every address (opt-in)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    sigreload.setup_logging(args.verbose)
    if not os.path.isdir(args.root):
        sys.exit(f"sigreload-http: {args.root}: no such folder")
    stop = sigreload.stop_event()
    host = "0.0.0.0" if args.lan else args.host
    try:
        server = make_server(os.path.abspath(args.root), host, args.port, args.lan)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            sys.exit(f"sigreload-http: port {args.port} is in use; stop that server or pass --port")
        sys.exit(f"sigreload-http: cannot listen on {host}:{args.port}: {exc.strerror}")
    bound_host, bound_port = server.server_address[:2]
    shown = "127.0.0.1" if args.lan else (f"[{bound_host}]" if ":" in bound_host else bound_host)
    if args.lan:
        log.warning("LAN mode: any device on your network can read %s: %s", args.root,
                    ", ".join(f"http://{a}:{bound_port}/" for a in sigreload.lan_addresses()))
    log.info("serving %s at http://%s:%d/ (pid %d)", os.path.abspath(args.root), shown, bound_port, os.getpid())
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    sigreload.wait(stop)
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
