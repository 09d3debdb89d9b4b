"""The HTTP server: stdlib http.server, hardened for live reload.

Every response says ``Cache-Control: no-cache`` and conditional requests are
answered in full: with stock http.server, Chromium's heuristic cache serves
an OLD script or stylesheet after ``location.reload()``, and a second save
within the same second as the last fetch would get a 304 for a stale file.
Requests must name a loopback host (DNS rebinding), stay inside ROOT (no
``..``, no symlink out, opened race-free: ``confined``) and touch no dotfile
or VCS folder, named or reached through a symlink.
"""

from __future__ import annotations

import html
import logging
import os
import posixpath
import re
import ssl
import stat
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO
from urllib.parse import quote, unquote, urlsplit

from sigreload import command_line, editor
from sigreload.contract import discovery, used_paths, watcher_ids, wire
from sigreload.serving import answer_headers, common, confined, injection, relay, snippet

log = logging.getLogger("sigreload.http")
OWN = wire.PREFIX  # the snippet and its socket, on the page's own origin
INDEXES = ("index.html", "index.htm")  # a folder's page, served like any file
MOST_CONNECTIONS = 128  # served at once (a thread each); more wait in the listen backlog


@dataclass(frozen=True, kw_only=True)
class Site:
    """What one file server serves, and how: ``lan`` (--lan) and ``allowed_hosts``
    (--allow-host) for the Host rules; ``spa`` answers unknown extensionless
    paths with /index.html; ``ws_port`` (when set) inserts the snippet's
    <script> into HTML answers; ``root_id`` names ROOT to the pages; ``used``
    tells the watcher the files served; ``opener`` opens files in the editor
    for the pages' toasts; ``timeout``: a connection's, for reads and writes."""

    lan: bool = False
    allowed_hosts: tuple[str, ...] = ()
    spa: bool = False
    ws_port: int | None = None
    root_id: str = ""
    used: used_paths.Writer | None = None
    opener: editor.Opener | None = None
    timeout: float = command_line.IDLE_TIMEOUT


class Handler(common.Handler, SimpleHTTPRequestHandler):
    """Serves ROOT as plain files, never from a stale cache, never outside ROOT,
    as its ``site`` says (each request is handled in the constructor: socketserver's way)."""

    protocol_version = "HTTP/1.1"  # keep-alive: a reload reuses the connections
    cache_control = "no-cache"  # this answer's Cache-Control (end_headers)
    server_version = wire.SERVER_NAME  # the snippet trusts our no-cache and skips its refetch
    disable_nagle_algorithm = True  # headers and body are two sends: no 40 ms delayed-ACK stall
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **answer_headers.CONTENT_TYPES}

    def __init__(self, *args: Any, site: Site, **kwargs: Any) -> None:
        self.lan, self.allowed_hosts, self.spa, self.ws_port = site.lan, site.allowed_hosts, site.spa, site.ws_port
        self.root_id, self.used, self.opener = site.root_id, site.used, site.opener
        self.timeout = site.timeout  # type: ignore[misc]  # a class variable in typeshed; socketserver reads self's
        super().__init__(*args, **kwargs)

    def send_head(self) -> BinaryIO | injection.Spliced | None:  # type: ignore[override]
        if self.host_refused():
            return None
        if "\x00" in url_path(self.path):  # no file has one: the OS would refuse it (ValueError)
            self.reply(400, "text/plain; charset=utf-8", b"A path with a NUL byte\n")
            return None
        if self.path.startswith(OWN) and self.ws_port:
            self.own(self.path.split("?")[0][len(OWN):])
            return None
        if not self.inside_root():
            return self.not_found()
        path = self.translate_path(self.path)
        if os.path.isdir(path):
            indexes = [i for i in (os.path.join(path, n) for n in INDEXES) if os.path.isfile(i)]
            if not self.path.split("?")[0].endswith("/") or not indexes:
                return super().send_head()  # the stdlib's redirect, or our listing
            path = indexes[0]
        elif not os.path.isfile(path):
            wanted = urlsplit(self.path).path
            if not (self.spa and "." not in wanted.rsplit("/", 1)[-1]):
                return self.not_found()
            path = os.path.join(self.directory, "index.html")
        return self.send_file(path)

    def list_directory(self, path: str | os.PathLike[str]) -> BinaryIO | injection.Spliced | None:  # type: ignore[override]
        """A folder's listing, without what the server refuses to serve (dotfiles),
        with the snippet: a build's output folder is one until the first good build."""
        try:
            fd = confined.open_under(self.directory, os.path.relpath(path, self.directory))
        except OSError:
            return self.not_found()
        try:
            names = sorted(n for n in os.listdir(fd) if self.shown(fd, n))
            folders = {n for n in names if is_folder(fd, n)}
        except OSError:
            return self.not_found()
        finally:
            os.close(fd)
        shown = html.escape(readable(url_path(self.path)))
        links = []
        for name in names:
            slash = "/" * (name in folders)
            href, text = quote(os.fsencode(name)), html.escape(readable(name))
            links.append(f'<li><a href="{href}{slash}">{text}{slash}</a></li>\n')
        self.page(HTTPStatus.OK, f"<title>{shown}</title></head>\n<body><h1>{shown}</h1>\n<ul>\n{''.join(links)}</ul>")
        return None

    def shown(self, folder: int, name: str) -> bool:
        """Whether a listing names ``name`` (in the open ``folder``): what would be served."""
        if confined.refused_name(name):
            return False
        try:
            if not stat.S_ISLNK(os.lstat(name, dir_fd=folder).st_mode):
                return True
            target = os.readlink(name, dir_fd=folder)
        except OSError:
            return False
        return not confined.refused(target.split("/"))

    def page(self, status: int, inside: str) -> None:
        """A small page of ours (``inside``: from the title to the end of the
        body's content), with the snippet when pages get it."""
        page = f"<!doctype html>\n<html><head><meta charset=\"utf-8\">{inside}</body></html>\n".encode()
        page = injection.inject(page, self.snippet_tag()) if self.ws_port else page
        self.reply(status, "text/html; charset=utf-8", page)

    def send_file(self, path: str, status: int = HTTPStatus.OK) -> BinaryIO | injection.Spliced | None:
        """Headers for ``path`` (a Range, an injected snippet), then its body, streamed."""
        try:
            f = os.fdopen(confined.open_under(self.directory, os.path.relpath(path, self.directory)), "rb")
            if stat.S_ISDIR(os.fstat(f.fileno()).st_mode):
                f.close()
                return self.not_found(custom=status == HTTPStatus.OK)
            if self.used is not None and status == HTTPStatus.OK:
                self.used.add(os.path.abspath(path))
            ctype, size = self.guess_type(path), os.fstat(f.fileno()).st_size
            at = injection.place(f) if self.ws_port and ctype.startswith("text/html") else None
        except OSError:  # refused (confined) or gone; a refused 404.html: ours instead
            return self.not_found(custom=status == HTTPStatus.OK)
        tag = self.snippet_tag() if at is not None else b""
        total = size + len(tag)
        first, last = self.byte_range(total) if status == HTTPStatus.OK else (None, None)
        if first is not None and last is not None:
            self.send_response(HTTPStatus.PARTIAL_CONTENT)
            self.send_header("Content-Range", f"bytes {first}-{last}/{total}")
        else:
            first, last = 0, total - 1
            self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return injection.Spliced(f, size if at is None else at, tag, first, last - first + 1)

    def byte_range(self, size: int) -> tuple[int, int] | tuple[None, None]:
        """(first, last) of a single satisfiable ``Range: bytes=`` header, else (None, None)."""
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if not match or match.groups() == ("", ""):
            return None, None
        a, b = match.groups()
        first = int(a) if a else max(0, size - int(b))
        last = min(int(b), size - 1) if a and b else size - 1
        return (first, last) if first <= last else (None, None)

    def snippet_tag(self) -> bytes:
        """The snippet, on the page's own origin: its socket is there too (one port)."""
        return snippet.tag(OWN + "reload.js")

    def do_POST(self) -> None:
        """/_sigreload/open: the snippet asks to open a file in the editor (editor.Opener checks it)."""
        if self.host_refused():
            return
        size = self.headers.get("Content-Length", "")
        if url_path(self.path) != editor.PATH or not self.opener:
            self.reply(405, "text/plain; charset=utf-8", b"sigreload serves files: nothing to POST to\n",
                       [("Allow", "GET, HEAD")])
            self.close_connection = True  # its body is unread
            return
        if not size.isdigit() or int(size) > editor.MOST_BODY:
            self.reply(400, "text/plain; charset=utf-8", b"a short JSON body, with its length, is needed\n")
            self.close_connection = True
            return
        same = common.same_origin(self.headers.get("Origin"), self.headers.get("Host"), self.scheme())
        status, why = self.opener.answer(same, self.rfile.read(int(size)), self.ours())
        self.reply(status, "text/plain; charset=utf-8", f"{why}\n".encode() if why else b"")

    def own(self, name: str) -> None:
        """/_sigreload/reload.js is the snippet (idiomorph.js, its morphing library);
        /_sigreload/socket, the broadcaster's socket, relayed for a page of this origin."""
        if name in snippet.SERVED:  # versioned: kept by the browser; else 304 while the same
            status, body, headers = snippet.answer(name, self.path, self.headers.get("If-None-Match"))
            self.cache_control = dict(headers)["Cache-Control"]
            self.reply(status, "text/javascript; charset=utf-8", body, [h for h in headers if h[0] != "Cache-Control"])
        elif name == "":
            self.reply(200, "text/html; charset=utf-8", snippet.status_page(), snippet.STATUS_HEADERS)
        elif name == "token" and self.opener:
            status, body = self.opener.token_answer(self.headers.get("Sec-Fetch-Site"), self.ours())
            self.reply(status, "application/json", body, editor.TOKEN_HEADERS)
        elif name != "socket":
            self.reply(404, "text/plain; charset=utf-8", b"Nothing at this address\n")
        elif self.headers.get("Upgrade", "").lower() != "websocket" or self.command != "GET":
            self.reply(426, "text/plain; charset=utf-8", b"A WebSocket, for sigreload's snippet\n",
                       [("Upgrade", "websocket")])
        elif not common.same_origin(self.headers.get("Origin"), self.headers.get("Host"), self.scheme()):
            self.reply(403, "text/plain; charset=utf-8", b"Only this origin's pages get its socket\n")
        else:
            assert self.ws_port is not None
            self.wfile.flush()
            path = wire.STATUS_SOCKET_PATH if urlsplit(self.path).query == wire.STATUS_QUERY else wire.SOCKET_PATH
            why = relay.relay(self.connection, list(self.headers.items()), self.ws_port, self.server.server_port, path)
            if why is None:
                self.server.hand_over(self.connection)
            else:
                self.reply(502, "text/plain; charset=utf-8", f"sigreload: {why}\n".encode())
            self.close_connection = True
        return None

    def ours(self) -> bool:
        """Whether the client is a process of this user on this machine (editor.ours)."""
        return editor.ours((str(self.client_address[0]), int(self.client_address[1])), self.server.server_port)

    def scheme(self) -> str:
        """The scheme this request came by."""
        return "https" if isinstance(self.connection, ssl.SSLSocket) else "http"

    def not_found(self, custom: bool = True) -> BinaryIO | injection.Spliced | None:
        """The site's own 404.html when it has one (and ``custom``), else a short
        clear page; with the snippet: the page may exist after the next build or save."""
        page = os.path.join(self.directory, "404.html")
        if custom and os.path.isfile(page):
            return self.send_file(page, HTTPStatus.NOT_FOUND)
        self.page(HTTPStatus.NOT_FOUND, "<title>Not found</title></head>\n<body><h1>Not found</h1>\n"
                  "<p>Nothing at this address in the served folder.</p>")
        return None

    def translate_path(self, path: str) -> str:
        """The file a URL path names under ROOT; any bytes in it, as the file system has them."""
        parts = [p for p in posixpath.normpath(url_path(path)).split("/") if p and p not in (".", "..")]
        local = os.path.join(self.directory, *parts)
        return local + "/" if url_path(path).endswith("/") else local

    def inside_root(self) -> bool:
        """False for dotfiles and VCS folders named in the URL (what is opened is
        checked again, race-free, by ``confined``: symlinks, ``..``)."""
        return not confined.refused(url_path(self.path).split("/"))

    def end_headers(self) -> None:
        # always revalidate: never a stale file (but the snippet's versioned URL: this answer's own, once)
        self.send_header("Cache-Control", self.__dict__.pop("cache_control", "no-cache"))
        # lets the snippet map changed paths (its page: Server-Timing; anything else: the header)
        self.send_header("Server-Timing", f'{wire.TIMING_NAME};desc="{self.root_id}"')
        self.send_header(wire.ROOT_HEADER, self.root_id)
        super().end_headers()



def url_path(path: str) -> str:
    """A request's path, decoded as the file system would (bytes that are not UTF-8 kept)."""
    return unquote(urlsplit(path).path, errors="surrogateescape")


def is_folder(folder: int, name: str) -> bool:
    """Whether ``name`` in the open ``folder`` is a folder (through a symlink too)."""
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=folder).st_mode)
    except OSError:
        return False


def readable(name: str) -> str:
    """A name as a page shows it (bytes that are not UTF-8 as U+FFFD)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def make_server(*, root: str, host: str, port: int, lan: bool = False, spa: bool = False,
                ws_port: int | None = None, idle_timeout: float = command_line.IDLE_TIMEOUT,
                allowed_hosts: tuple[str, ...] = (), tls: ssl.SSLContext | None = None,
                editor_command: str | None = None, source: str | None = None) -> ThreadingHTTPServer:
    """Bind (port 0 picks a free one); raises OSError like socketserver."""
    used = used_paths.Writer(discovery.Locator(ws_port).lookup, "http") if ws_port else None
    site = Site(lan=lan, allowed_hosts=allowed_hosts, spa=spa, ws_port=ws_port, root_id=watcher_ids.root_id(root),
                used=used, opener=editor.Opener(root, editor_command, source) if ws_port else None,
                timeout=idle_timeout)
    return common.bind(host, port, partial(Handler, site=site, directory=root), MOST_CONNECTIONS, tls)
