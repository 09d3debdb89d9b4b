"""The proxy: sigreload in front of your app server (``sigreload APP --proxy URL``).

It forwards every request to the one app server it was given, on this
machine, and never anywhere else. Method, body, headers, cookies and status
pass through; a redirect to the app's own address comes back as one to the
proxy's; the app's WebSocket upgrades are relayed byte for byte. HTML
answers, error pages included, get the snippet before the last </body>:
compressed ones are decoded (the app is asked for ``identity`` first),
streamed ones pass as they come, and the length is right. The snippet and its
socket are served on the proxy's own origin under /_sigreload/, so a page's
``script-src 'self'`` allows them, and a CSP nonce of the answer is reused
for the inserted script. While the app's port is closed (Django restarting),
a request waits up to HOLD seconds; then a page from sigreload says so and
comes back by itself once the app answers.
"""

from __future__ import annotations

import html
import http.client
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from urllib.parse import SplitResult, urlsplit

from sigreload.serving import common, injection, snippet

log = logging.getLogger("sigreload.proxy")
Headers = list[tuple[str, str]]
PREFIX = "/_sigreload/"  # the snippet (reload.js) and its socket, on the page's own origin
HOLD = 5.0  # seconds a request waits while the app's port is closed
TIMEOUT = 300.0  # an app may think long (a debugger, a slow view)
BUFFER = 8 << 20  # an HTML answer with a length up to this is changed whole; others stream
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
              "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}
NOT_FORWARDED = HOP_BY_HOP | {"accept-encoding", "expect"}
DOWN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="sigreload-down"><title>App not answering</title></head>
<body style="font: 16px/1.5 system-ui, sans-serif; margin: 3em">
<h1>Your app does not answer</h1>
<p>sigreload's proxy cannot reach <code>{app}</code>: it is restarting, or it stopped
with an error (see its terminal). This page reloads by itself once it answers.</p>
</body></html>
"""


class Handler(common.Handler):
    """Every method of every request goes to ``upstream`` (set by make_server)."""

    logger = log
    upstream: tuple[str, int] = ("127.0.0.1", 5000)
    broadcaster: tuple[str, int] | None = None  # None: no snippet inserted
    protocol_version = "HTTP/1.1"  # keep-alive with the browser
    disable_nagle_algorithm = True

    def __getattr__(self, name: str) -> Callable[[], None]:
        if name.startswith("do_"):  # do_GET, do_POST, do_PROPFIND...: all forwarded
            return self.handle_any
        raise AttributeError(name)

    def handle_any(self) -> None:
        if self.host_refused():
            return
        if not self.path.startswith("/"):  # absolute-form or CONNECT: never an open proxy
            return self.reply(400, "text/plain", b"sigreload's proxy forwards only to its app\n")
        if self.path.startswith(PREFIX):
            return self.own()
        if self.headers.get("Upgrade", "").lower() == "websocket":
            return self.tunnel(self.upstream, self.path)
        self.forward()

    def own(self) -> None:
        """/_sigreload/reload.js is the snippet; /_sigreload/socket, the broadcaster's socket."""
        name = urlsplit(self.path).path[len(PREFIX):]
        if name == "socket" and self.broadcaster:
            return self.tunnel(self.broadcaster, "/sigreload")
        if name == "reload.js":
            return self.reply(200, "text/javascript; charset=utf-8", snippet.source(), [("Cache-Control", "no-cache")])
        self.reply(404, "text/plain", b"Nothing at this address\n")

    def connect(self, address: tuple[str, int]) -> socket.socket:
        """A socket to ``address``; a closed port is tried again for HOLD seconds."""
        end = time.monotonic() + HOLD
        while True:
            try:
                return socket.create_connection(address, timeout=TIMEOUT)
            except ConnectionRefusedError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)

    def forward(self) -> None:
        if self.headers.get("Transfer-Encoding"):
            return self.reply(411, "text/plain", b"sigreload's proxy needs a Content-Length on a body\n")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return self.reply(400, "text/plain", b"bad Content-Length\n")
        body = self.rfile.read(length) if length else None
        try:
            conn = http.client.HTTPConnection(*self.upstream, timeout=TIMEOUT)
            conn.sock = self.connect(self.upstream)
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in NOT_FORWARDED:
                    conn.putheader(name, value)
            conn.putheader("Accept-Encoding", "identity")  # nothing to decode, mostly
            conn.putheader("X-Forwarded-For", self.client_address[0])
            conn.putheader("X-Forwarded-Proto", "http")
            conn.putheader("Connection", "close")
            conn.endheaders(body)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            log.debug("%s %s: the app did not answer (%s)", self.command, self.path, exc)
            return self.down()
        try:
            self.respond(resp)
        finally:
            conn.close()

    def respond(self, resp: http.client.HTTPResponse) -> None:
        headers = [(k, self.rewrite(k, v)) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
        encoding = (resp.getheader("Content-Encoding") or "identity").strip().lower()
        bodyless = self.command == "HEAD" or resp.status in (204, 304) or resp.status < 200
        html_answer = "html" in (resp.getheader("Content-Type") or "").lower() and not bodyless
        if html_answer and self.broadcaster and encoding not in ("identity", "gzip", "x-gzip", "deflate"):
            log.warning("%s: cannot insert the snippet into a %s-encoded page", self.path, encoding)
        elif html_answer and self.broadcaster:
            headers = [(k, v) for k, v in headers if k.lower() not in ("content-length", "content-encoding")]
            inserter = injection.Inserter(self.tag(resp), encoding)
            if resp.length is not None and resp.length <= BUFFER:  # whole: before the very last </body>
                page = resp.read()
                if encoding != "identity":
                    unzip = injection.decoder(encoding, page)
                    page = unzip.decompress(page) + unzip.flush()
                return self.send(resp.status, resp.reason, headers, injection.inject(page, inserter.tag))
            return self.stream(resp, headers, inserter)
        if bodyless or resp.length is not None:
            self.send(resp.status, resp.reason, headers, None)
            while not bodyless and (data := resp.read1(65536)):
                self.wfile.write(data)
            return
        self.stream(resp, headers, None)

    def stream(self, resp: http.client.HTTPResponse, headers: Headers, inserter: injection.Inserter | None) -> None:
        """Pass a body of unknown length as it comes (chunked to an HTTP/1.1 browser)."""
        chunked = self.request_version != "HTTP/1.0"
        self.send(resp.status, resp.reason, headers + ([("Transfer-Encoding", "chunked")] if chunked else []), None)
        self.close_connection = self.close_connection or not chunked
        while True:
            data = resp.read1(65536)
            out = (inserter.feed(data) if data else inserter.end()) if inserter else data
            if out:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(out), out) if chunked else out)
                self.wfile.flush()
            if not data:
                break
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def send(self, status: int, reason: str | None, headers: Headers, body: bytes | None) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def tag(self, resp: http.client.HTTPResponse | None = None) -> bytes:
        """The snippet's <script>, with the nonce the answer's CSP allows scripts by."""
        policy = (resp.getheader("Content-Security-Policy") or "") if resp else ""
        nonce = injection.NONCE.search(policy)
        return snippet.tag(f"{PREFIX}reload.js", nonce.group(1) if nonce else None)

    def rewrite(self, name: str, value: str) -> str:
        """A redirect to the app's own address points at the proxy; cookies lose a loopback Domain."""
        lower = name.lower()
        if lower == "location":
            parts = urlsplit(value)
            if parts.scheme in ("http", "https") and self.is_app(parts):
                return parts._replace(scheme="http", netloc=self.headers.get("Host") or "").geturl()
        elif lower == "set-cookie":
            return re.sub(r";\s*domain=\s*\.?(localhost|127\.0\.0\.1|\[?::1\]?)\s*(?=;|$)", "", value, flags=re.I)
        return value

    def is_app(self, parts: SplitResult) -> bool:
        host = parts.hostname or ""
        loopback = host in ("localhost", "::1") or host.startswith("127.")
        return loopback and (parts.port or 80) == self.upstream[1]

    def down(self) -> None:
        """The app does not answer: a page that says so and comes back by itself."""
        app = html.escape("http://{}:{}/".format(*self.upstream))
        page = injection.inject(DOWN_PAGE.format(app=app).encode(), self.tag())
        self.reply(502, "text/html; charset=utf-8", page, [("X-Sigreload-Down", "1"), ("Cache-Control", "no-store")])

    def tunnel(self, address: tuple[str, int], path: str) -> None:
        """Relay a WebSocket upgrade to ``address`` byte for byte, both ways, until either closes."""
        try:
            upstream = self.connect(address)
        except OSError:
            return self.down()
        upstream.settimeout(None)
        head = [f"{self.command} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in self.headers.items())]
        upstream.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        self.close_connection = True

        def back() -> None:
            try:
                while data := upstream.recv(65536):
                    self.connection.sendall(data)
            except OSError:
                pass
            try:
                self.connection.shutdown(socket.SHUT_RDWR)  # wakes the read below
            except OSError:
                pass

        relay = threading.Thread(target=back, name="tunnel", daemon=True)
        relay.start()
        try:
            while data := self.rfile.read1(65536):
                upstream.sendall(data)
        except OSError:
            pass
        try:
            upstream.shutdown(socket.SHUT_RDWR)  # wakes back()
        except OSError:
            pass
        relay.join()
        upstream.close()


def make_server(app: tuple[str, int], host: str, port: int, ws_port: int | None = None,
                lan: bool = False) -> ThreadingHTTPServer:
    """Bind the proxy to ``app`` (host, port); raises OSError like socketserver."""
    broadcaster = ("127.0.0.1" if lan or not host or ":" not in host else "::1", ws_port) if ws_port else None
    handler = type("Handler", (Handler,), {"upstream": app, "broadcaster": broadcaster, "lan": lan})
    return common.bind(host, port, handler)
