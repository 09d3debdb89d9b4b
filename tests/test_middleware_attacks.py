"""What an attacker found in the middleware and the proxy (issue 33), each
against a real broadcaster (or a program that squats its port) and the
frameworks' own request paths: the script's address, the presence look off
the request path, no tag once sigreload stopped, never a changed 206 or
download, only sigreload's own tag counts as "already there", nothing held
past the declared length, the CSP nonce of scripts."""

import socket
import threading
import time

import pytest
from flask import Flask, Response

from conftest import SCALE, module, until
from sigreload.middleware import ASGIMiddleware, WSGIMiddleware, presence
from sigreload.serving import injection, snippet

PAGE = b"<!doctype html><html><head><title>x</title></head><body>hi</body></html>"
DOC = {"Sec-Fetch-Dest": "document"}


def tag_of(port, host="127.0.0.1", nonce=""):
    extra = f' nonce="{nonce}"' if nonce else ""
    return f'<script src="http://{host}:{port}/reload.js"{extra} data-sigreload-app></script>'.encode()


def flask_app(port, routes=None):
    app = Flask(__name__)
    app.add_url_rule("/", "page", lambda: Response(PAGE, mimetype="text/html"))
    for n, (path, make) in enumerate((routes or {}).items()):
        app.add_url_rule(path, f"r{n}", make)
    app.wsgi_app = WSGIMiddleware(app.wsgi_app, port=port)
    return app


def get(app, path="/", host="127.0.0.1:5000", **headers):
    return app.test_client().get(path, headers=DOC | {"Host": host} | headers)


# 1. The script comes from an address the broadcaster listens on, never the page's other host.

@pytest.mark.parametrize("host", ["192.0.2.2:5000", "[2001:db8::2]:5000", "example.test"])
def test_a_page_by_another_address_gets_the_script_from_where_the_broadcaster_listens(broadcaster, host):
    _, port = broadcaster  # it listens on loopback only: another user may listen on 192.0.2.2:port
    body = get(flask_app(port), host=host).get_data()
    assert body == PAGE.replace(b"<head>", b"<head>" + tag_of(port)), body


def test_a_loopback_page_keeps_its_loopback_name(broadcaster):
    _, port = broadcaster
    app = flask_app(port)
    assert tag_of(port) in get(app, host="127.0.0.1:5000").get_data()
    both = presence.LOOPBACKS <= app.wsgi_app.running.listens
    assert tag_of(port, "localhost" if both else "127.0.0.1") in get(app, host="localhost:5000").get_data()


def test_the_address_rule():
    loop, lan = frozenset({"127.0.0.1", "::1"}), frozenset({"0.0.0.0", "::"})
    assert presence.address("192.0.2.2:5000", loop) == "127.0.0.1"
    assert presence.address("192.0.2.2:5000", lan) == "192.0.2.2"  # --lan: every address
    assert presence.address("192.0.2.2", frozenset({"192.0.2.2"})) == "192.0.2.2"
    assert presence.address("[::1]:80", loop) == "[::1]"
    assert presence.address("localhost:80", frozenset({"127.0.0.1"})) == "127.0.0.1"  # ::1 may be someone else's
    assert presence.address("[2001:db8::1]:80", frozenset({"::1"})) == "[::1]"


# 2. The presence look (psutil) never runs in a request.

def test_the_look_for_the_broadcaster_never_runs_in_a_request(monkeypatch):
    from sigreload.contract import discovery

    threads = []
    real = discovery.Locator.locate

    def locate(self, quiet=False):
        threads.append(threading.current_thread())
        return real(self, quiet)

    monkeypatch.setattr(discovery.Locator, "locate", locate)
    monkeypatch.setattr(presence, "OTHER_EVERY", 0.2)  # look often: several looks while requests come
    with socket.create_server(("127.0.0.1", 0)) as squatter:  # not a broadcaster: the psutil look every time
        port = squatter.getsockname()[1]
        app = flask_app(port)
        end = time.monotonic() + 20 * SCALE  # a psutil look may take seconds on a loaded machine
        while len(threads) < 2 and time.monotonic() < end:
            assert get(app).get_data() == PAGE
        assert len(threads) >= 2
        assert threading.current_thread() not in threads
        assert all(t.name == "sigreload-presence" and t.daemon for t in threads)


def test_asgi_requests_never_look_either(monkeypatch, broadcaster):
    from sigreload.contract import discovery

    _, port = broadcaster
    threads = []
    real = discovery.Locator.locate
    monkeypatch.setattr(discovery.Locator, "locate",
                        lambda self, quiet=False: threads.append(threading.current_thread()) or real(self, quiet))

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": PAGE})

    from test_middleware import Server

    server = Server(ASGIMiddleware(app, port=port))
    sent = server.get("/", DOC | {"Host": "127.0.0.1:8000"})
    assert tag_of(port) in b"".join(m.get("body", b"") for m in sent)
    until(lambda: threads, 5, "a look")
    assert all(t.name == "sigreload-presence" for t in threads)


# 3. A stopped broadcaster: pages get no tag once its port is free (within FRESH: 0.1 s).

def test_once_the_broadcaster_stops_pages_get_no_tag(broadcaster):
    proc, port = broadcaster
    app = flask_app(port)
    assert tag_of(port) in get(app).get_data()
    proc.kill()
    until(lambda: not presence.listened(port), 10, "the broadcaster's port free")
    running = app.wsgi_app.running
    until(lambda: time.monotonic() - max(running.looked, running.confirmed) >= presence.FRESH or not running.found,
          5, "an old look, and an old probe")
    assert get(app).get_data() == PAGE  # within FRESH, not after up to a second: a squatter may be there by then


# 4, 5. Never a 206, any answer with Content-Range, or a download.

KEPT = {
    "/part": lambda: Response(PAGE[:40], status=206, mimetype="text/html",
                              headers={"Content-Range": f"bytes 0-39/{len(PAGE)}"}),
    "/ranged": lambda: Response(PAGE, mimetype="text/html", headers={"Content-Range": f"bytes 0-{len(PAGE) - 1}/*"}),
    "/download": lambda: Response(PAGE, mimetype="text/html",
                                  headers={"Content-Disposition": 'attachment; filename="a.html"'}),
    "/Download": lambda: Response(PAGE, mimetype="text/html", headers={"Content-Disposition": "ATTACHMENT"}),
    "/plain": lambda: Response(PAGE, content_type="text/plain; charset=html"),
}


@pytest.mark.parametrize("path", sorted(KEPT))
def test_parts_downloads_and_non_html_pass_as_they_are(broadcaster, path):
    _, port = broadcaster
    answer = get(flask_app(port, KEPT), path)
    assert b"reload.js" not in answer.get_data(), answer.get_data()
    inline = get(flask_app(port, {"/inline": lambda: Response(PAGE, mimetype="text/html", headers={
        "Content-Disposition": "inline"})}), "/inline")
    assert tag_of(port) in inline.get_data()


@pytest.mark.parametrize("path", ["/part", "/download"])
def test_asgi_parts_and_downloads_pass_as_they_are(broadcaster, path):
    from test_middleware import Server

    _, port = broadcaster
    headers = {"/part": [(b"content-range", b"bytes 0-9/99")],
               "/download": [(b"content-disposition", b"attachment")]}[path]

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 206 if path == "/part" else 200,
                    "headers": [(b"content-type", b"text/html")] + headers})
        await send({"type": "http.response.body", "body": PAGE})

    sent = Server(ASGIMiddleware(app, port=port)).get(path, DOC | {"Host": "127.0.0.1:8000"})
    assert b"".join(m.get("body", b"") for m in sent) == PAGE


def test_the_shared_rule():
    assert injection.injects("document", "text/html; charset=utf-8", "identity", False)
    assert injection.injects("document", "application/xhtml+xml", "identity", False)
    assert not injection.injects("document", "text/plain; charset=html", "identity", False)
    assert not injection.injects("document", "text/htmlx", "identity", False)
    assert not injection.injects("document", "text/html", "identity", False, partial=True)
    assert not injection.injects("document", "text/html", "identity", False, disposition="attachment; filename=x")
    assert injection.injects("document", "text/html", "identity", False, disposition="inline; filename=x")


# 6. Only sigreload's own tag counts as "already there".

@pytest.mark.parametrize("src", ["/static/livereload.js", "page-reload.js", "https://cdn.test/x/reload.js",
                                 "http://127.0.0.1:8000/static/reload.js"])
def test_another_reload_js_is_not_the_snippet(src):
    page = PAGE.replace(b"<title>", f'<script src="{src}"></script><title>'.encode())
    assert b"SNIPPET" in injection.inject(page, b"SNIPPET")


@pytest.mark.parametrize("src", ["/_sigreload/reload.js", "http://localhost:5678/reload.js",
                                 "http://127.0.0.1:5678/reload.js?x=1", "/reload.js", "reload.js",
                                 "http://127.0.0.1:35729/livereload.js"])
def test_sigreload_s_own_tag_is_left_alone(src):
    page = PAGE.replace(b"<title>", f"<script src='{src}'></script><title>".encode())
    assert injection.inject(page, b"SNIPPET") == page


# 7. An app that sends more than its Content-Length: nothing held past it.

def test_more_than_the_declared_length_is_never_held(broadcaster):
    _, port = broadcaster
    made = []

    def chunks():
        yield PAGE
        for n in range(1000):
            made.append(n)
            yield b"x" * 65536

    def too_long(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(PAGE)))])
        return chunks()

    app = WSGIMiddleware(too_long, port=port)
    body = app({"REQUEST_METHOD": "GET", "HTTP_SEC_FETCH_DEST": "document", "HTTP_HOST": "127.0.0.1:5000",
                "wsgi.url_scheme": "http"}, lambda status, headers, exc_info=None: None)
    first = next(iter(body))
    assert len(made) <= 1, len(made)  # passed on past the declared length, not held to the end
    assert first.startswith(PAGE[:20])
    body.close()


def test_a_page_holds_at_most_its_length():
    page = injection.Page(b"T", "identity", "document", len(PAGE))
    assert page.feed(PAGE[:10]) == b""
    out = page.feed(PAGE[10:] + b"more")  # past the length: the app's bytes, unchanged, from here on
    assert out == PAGE + b"more" and page.changed is False
    assert page.feed(b"x" * 100) == b"x" * 100


# 8. The CSP nonce of scripts; several CSP headers.

@pytest.mark.parametrize("policies, nonce", [
    (["style-src 'nonce-STYLE'; script-src 'nonce-SCRIPT'"], "SCRIPT"),
    (["style-src 'nonce-STYLE'", "script-src 'nonce-SCRIPT'"], "SCRIPT"),
    (["default-src 'nonce-DEF'; style-src 'nonce-STYLE'"], "DEF"),
    (["script-src-elem 'nonce-ELEM'; script-src 'nonce-SCRIPT'"], "ELEM"),
    (["style-src 'nonce-STYLE'"], ""),
])
def test_the_nonce_is_the_script_s(broadcaster, policies, nonce):
    _, port = broadcaster

    def csp():
        response = Response(PAGE, mimetype="text/html")
        for policy in policies:
            response.headers.add("Content-Security-Policy", policy)
        return response

    assert tag_of(port, nonce=nonce) in get(flask_app(port, {"/csp": csp}), "/csp").get_data()



# The proxy: the same rules (4, 5, 8), against a real app (uvicorn).

def test_the_proxy_changes_no_part_no_download_and_takes_the_script_s_nonce(procs, tmp_path):
    from test_proxy import Proxied, get as fetch

    from proxy_app import NONCE

    proxied = Proxied(procs, tmp_path)
    app = f"http://127.0.0.1:{proxied.app_port}/"
    for path in ("part", "download"):
        status, headers, body = fetch(proxied.url + path, headers=DOC)
        assert (status, body) == fetch(app + path, headers=DOC)[::2], path
        assert b"reload.js" not in body and headers.get("Content-Length") == str(len(body))
    _, _, body = fetch(proxied.url + "csp-style-first", headers=DOC)
    assert snippet.tag("/_sigreload/reload.js", NONCE) in body, body


def test_a_forked_worker_looks_in_its_own_thread(broadcaster):
    import os

    _, port = broadcaster
    running = presence.Presence(port)
    assert running  # the parent's thread found it
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a pre-fork server's worker: the parent's thread is not here
        try:
            ok = bool(running) and any(t.name == "sigreload-presence" for t in threading.enumerate())
            os.write(write, b"1" if ok and running.pid == os.getpid() else b"0")
        finally:
            os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 1) == b"1"
    finally:
        os.close(read)
        os.waitpid(pid, 0)


def test_a_listener_on_a_gone_broadcasters_port_gets_no_tag(procs):
    """Another user who listens on the port as the broadcaster stops was taken
    for it until the next look (up to a second; r33a4: 0.8 to 2.4 s loaded),
    and pages then loaded their reload.js: a gone broadcaster is no listener."""
    proc = procs(module("broadcaster") + ["--port", "0"])
    port = int(proc.wait_for(r"ready on ws://127\.0\.0\.1:(\d+)").group(1))
    running = presence.Presence(port)
    assert running
    proc.kill()
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def bound():
        try:
            squatter.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False

    until(bound, 5, "the port freed")
    squatter.listen()
    try:
        threading.Event().wait(presence.FRESH * 1.5)  # the last look's answer is no longer fresh
        assert not running
    finally:
        squatter.close()
