"""The middleware's rules, against a real broadcaster (or none), with the
frameworks' own request paths: Flask's test client (WSGI), a bare ASGI
app called as a server does, Django's settings. The browser flows are in
test_middleware_browser.py."""

import asyncio
import gzip
import subprocess
import sys
import zlib

import pytest
from hypothesis import given, strategies as st

from conftest import ROOT, SCALE, free_port, run_async
from sigreload.middleware import ASGIMiddleware, WSGIMiddleware

PAGE = b"<!doctype html><html><head><title>x</title></head><body>hi</body></html>"
FRAGMENT = b"<p id='frag'>only a fragment</p>"
DOC = {"Sec-Fetch-Dest": "document", "Host": "127.0.0.1:5000"}


def test_importing_it_imports_no_framework_and_starts_nothing():
    code = ("import sys, threading; import sigreload.middleware as m; m.WSGIMiddleware, m.ASGIMiddleware, "
            "m.DjangoMiddleware; print(sorted(n for n in ('flask', 'django', 'starlette', 'fastapi', 'werkzeug', "
            "'aiohttp', 'psutil', 'asgiref') if n in sys.modules), threading.active_count())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["[]", "1"], out


def flask_app(port):
    from flask import Flask, Response

    app = Flask(__name__)
    app.add_url_rule("/", "page", lambda: Response(PAGE, mimetype="text/html"))
    app.add_url_rule("/frag", "frag", lambda: Response(FRAGMENT, mimetype="text/html"))
    app.add_url_rule("/gz", "gz", lambda: Response(gzip.compress(PAGE, mtime=0), mimetype="text/html",
                                                      headers={"Content-Encoding": "gzip"}))
    app.add_url_rule("/csp", "csp", lambda: Response(PAGE, mimetype="text/html", headers={
        "Content-Security-Policy": "script-src 'nonce-abc123'"}))
    app.add_url_rule("/empty", "empty", lambda: Response(b"", mimetype="text/html"))
    app.add_url_rule("/twice", "twice", lambda: Response(PAGE.replace(
        b"<head>", b"<head><script src='http://127.0.0.1:5678/reload.js'></script>"), mimetype="text/html"))

    def streamed():
        yield b"<!doctype html><html><head><title>s</title></head>"
        yield b"<body>streamed</body></html>"

    app.add_url_rule("/stream", "stream", lambda: Response(streamed(), mimetype="text/html"))
    bare = app.wsgi_app
    app.wsgi_app = WSGIMiddleware(app.wsgi_app, port=port)
    return app, bare


PATHS = ["/", "/frag", "/gz", "/csp", "/empty", "/twice", "/stream"]
HOST = {"Host": "127.0.0.1:5000"}
HEADERS = [DOC, {"Sec-Fetch-Dest": "empty"} | HOST, HOST, {"Sec-Fetch-Dest": "document", "HX-Request": "true"} | HOST]


def answers(app, method="GET"):
    client = app.test_client()
    out = {}
    for path in PATHS:
        for headers in HEADERS:
            r = client.open(path, method=method, headers=headers)
            out[path, tuple(headers.items())] = (r.status, sorted(r.headers.items()), r.get_data())
    return out


def test_without_a_broadcaster_every_answer_passes_byte_for_byte():
    app, bare = flask_app(free_port())  # nothing listens there
    wrapped = answers(app) | {("HEAD",) + k: v for k, v in answers(app, "HEAD").items()}
    app.wsgi_app = bare
    assert wrapped == answers(app) | {("HEAD",) + k: v for k, v in answers(app, "HEAD").items()}


def test_with_a_broadcaster_only_documents_get_the_snippet_once(broadcaster):
    _, port = broadcaster
    app, bare = flask_app(port)
    changed = answers(app)
    heads = answers(app, "HEAD")
    app.wsgi_app = bare
    plain, plain_heads = answers(app), answers(app, "HEAD")
    tag = f'<script src="http://127.0.0.1:{port}/reload.js" data-sigreload-app></script>'.encode()
    doc = tuple(DOC.items())
    assert changed["/", doc][2] == PAGE.replace(b"<head>", b"<head>" + tag)
    assert ("Content-Length", str(len(PAGE) + len(tag))) in changed["/", doc][1]
    assert changed["/gz", doc][2] == PAGE.replace(b"<head>", b"<head>" + tag)  # decoded, no Content-Encoding
    assert all(k != "Content-Encoding" for k, _ in changed["/gz", doc][1])
    assert changed["/csp", doc][2] == PAGE.replace(b"<head>", b"<head>" + tag.replace(
        b" data-sigreload-app>", b' nonce="abc123" data-sigreload-app>'))
    assert changed["/stream", doc][2] == b"".join([b"<!doctype html><html><head>", tag,
                                                  b"<title>s</title></head><body>streamed</body></html>"])
    # no Sec-Fetch headers: a whole document gets it
    assert changed["/stream", tuple(HOST.items())][2] == changed["/stream", doc][2]
    assert changed["/", tuple(HOST.items())][2] == changed["/", doc][2]
    untouched = [key for key in changed if key[0] in ("/empty", "/twice") or key[1] not in (doc, tuple(HOST.items()))]
    untouched += [("/frag", tuple(HOST.items()))]  # no Sec-Fetch headers and not a whole document: a fragment
    for key in untouched:
        assert changed[key] == plain[key], key
    assert heads == plain_heads


class Server:
    """An ASGI app called as a server calls it: the messages it sends back."""

    def __init__(self, app):
        self.app = app

    def get(self, path, headers, method="GET"):
        sent = []

        async def receive():
            await asyncio.sleep(3600)  # no disconnect while it answers

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
                 "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()], "scheme": "http",
                 "http_version": "1.1", "asgi": {"version": "3.0"}, "root_path": "",
                 "extensions": {"http.response.pathsend": {}}}
        run_async(asyncio.wait_for(self.app(scope, receive, send), 5 * SCALE))
        return sent


OFFERED = []


async def bare_asgi(scope, receive, send):
    chunks = {"/": [PAGE], "/frag": [FRAGMENT], "/stream": [PAGE[:30], PAGE[30:50], PAGE[50:]],
              "/empty": [b""]}[scope["path"]]
    OFFERED.append("http.response.pathsend" in scope["extensions"])  # a body sent by path bypasses the middleware
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    if len(chunks) == 1:
        headers.append((b"content-length", str(len(chunks[0])).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for n, data in enumerate(chunks):
        await send({"type": "http.response.body", "body": data, "more_body": n < len(chunks) - 1})


def test_asgi_streams_a_page_holding_back_only_what_precedes_head(broadcaster):
    _, port = broadcaster
    server = Server(ASGIMiddleware(bare_asgi, port=port))
    tag = f'<script src="http://127.0.0.1:{port}/reload.js" data-sigreload-app></script>'.encode()
    whole = server.get("/", DOC)
    assert OFFERED[-1] is False
    assert whole[0]["headers"][-1] == (b"content-length", str(len(PAGE) + len(tag)).encode())
    assert whole[1]["body"] == PAGE.replace(b"<head>", b"<head>" + tag)
    streamed = server.get("/stream", DOC)
    bodies = [m["body"] for m in streamed[1:]]
    at = PAGE.index(b"<head>") + 6
    assert bodies[0] == PAGE[:at] + tag + PAGE[at:30]  # the app's first chunk (it holds <head>), at once
    assert b"".join(bodies) == PAGE.replace(b"<head>", b"<head>" + tag)
    assert all(k != b"content-length" for k, _ in streamed[0]["headers"])
    plain = Server(bare_asgi)
    for path, headers in [("/frag", HOST), ("/frag", {"Sec-Fetch-Dest": "empty"}), ("/", {"Sec-Fetch-Dest": "empty"}),
                          ("/empty", DOC), ("/", DOC | {"HX-Request": "true"})]:
        assert server.get(path, headers) == plain.get(path, headers), path


def test_django_middleware_leaves_itself_out_unless_debug(tmp_path):
    code = ("import django; from django.conf import settings; settings.configure(DEBUG={debug}); django.setup()\n"
            "from django.core.exceptions import MiddlewareNotUsed\n"
            "from sigreload.middleware import DjangoMiddleware\n"
            "try:\n    DjangoMiddleware(lambda r: r)\nexcept MiddlewareNotUsed:\n    print('left out')\n"
            "else:\n    print('used')\n")
    for debug, said in (("False", "left out"), ("True", "used")):
        out = subprocess.run([sys.executable, "-c", code.format(debug=debug)], capture_output=True, text=True,
                             cwd=tmp_path, timeout=30 * SCALE)
        assert out.stdout.strip() == said, out


def test_without_the_variable_the_port_is_the_configuration_files(tmp_path, monkeypatch):
    """As sigreload reads it (hall3: a ws-port in sigreload.toml left the middleware on 5678)."""
    from sigreload.middleware import presence

    (tmp_path / "app").mkdir()
    (tmp_path / "sigreload.toml").write_text("ws-port = 5690\n")
    monkeypatch.chdir(tmp_path / "app")
    monkeypatch.delenv("SIGRELOAD_WS_PORT", raising=False)
    assert presence.ws_port() == 5690
    monkeypatch.setenv("SIGRELOAD_WS_PORT", "5700")
    assert presence.ws_port() == 5700  # the variable wins


@pytest.mark.parametrize("value", ["x", "70000"])
def test_a_bad_ws_port_is_one_line_and_the_default(value, monkeypatch):
    from sigreload.middleware import presence

    monkeypatch.setenv("SIGRELOAD_WS_PORT", value)
    assert presence.ws_port() == 5678


@pytest.mark.parametrize("text, said", [
    ('ws-port = "x"\n', "ws-port takes a port (0 to 65535), not 'x'; using 5678"),
    ("ws-port = = 1\n", "not valid TOML"),
    ("ws-port = 0\n", "ws-port 0 (any free port) leaves pages no way to find the broadcaster; using 5678"),
])
def test_a_bad_ws_port_in_the_file_is_said_as_the_files(tmp_path, monkeypatch, caplog, text, said):
    """The file's bad value was blamed on SIGRELOAD_WS_PORT, which was not set, and broken
    TOML was silent (r32n4, r32n5, r32a4)."""
    from sigreload.middleware import presence

    (tmp_path / "sigreload.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIGRELOAD_WS_PORT", raising=False)
    with caplog.at_level("WARNING", logger="sigreload"):
        assert presence.ws_port() == 5678
    assert said in caplog.text and "SIGRELOAD_WS_PORT" not in caplog.text, caplog.text


async def broken_asgi(scope, receive, send):
    raise ZeroDivisionError("the app's own bug")


def test_asgi_an_app_that_raises_before_answering_a_navigation_shows_why_in_a_live_page(broadcaster):
    _, port = broadcaster
    app, sent = ASGIMiddleware(broken_asgi, port=port), []

    async def one(headers):
        async def receive():
            await asyncio.sleep(3600)

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/", "headers": headers, "scheme": "http"}
        with pytest.raises(ZeroDivisionError):  # on to the server, which logs it
            await app(scope, receive, send)

    run_async(one([(b"host", b"127.0.0.1:5000"), (b"sec-fetch-dest", b"document")]))
    assert sent[0]["status"] == 500 and (b"content-type", b"text/html; charset=utf-8") in sent[0]["headers"]
    assert f"http://127.0.0.1:{port}/reload.js".encode() in sent[1]["body"]
    assert b"ZeroDivisionError: the app&#x27;s own bug" in sent[1]["body"]
    sent.clear()
    run_async(one([(b"host", b"127.0.0.1:5000"), (b"sec-fetch-dest", b"empty")]))  # fetch(): the server's answer
    assert sent == []


def test_another_program_on_the_port_is_no_broadcaster():
    import socket

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        app, _ = flask_app(other.getsockname()[1])
        answer = app.test_client().get("/", headers=DOC)
        assert answer.get_data() == PAGE


def test_wsgi_write_callable_and_close_are_honoured(broadcaster):
    _, port = broadcaster
    closed = []

    class Result(list):
        def close(self):
            closed.append(True)

    def legacy(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/html")])
        write(PAGE[:20])  # PEP 3333's write(): before the iterable's bytes
        return Result([PAGE[20:]])

    out, told = [], []
    wrapped = WSGIMiddleware(legacy, port=port)
    body = wrapped({"REQUEST_METHOD": "GET", "HTTP_SEC_FETCH_DEST": "document", "HTTP_HOST": "127.0.0.1:5000",
                    "wsgi.url_scheme": "http"}, lambda status, headers, exc_info=None: told.append(headers))
    out = b"".join(body)
    body.close()
    tag = f'<script src="http://127.0.0.1:{port}/reload.js" data-sigreload-app></script>'.encode()
    assert out == PAGE.replace(b"<head>", b"<head>" + tag) and closed == [True]
    assert told == [[("Content-Type", "text/html")]]  # no length given: none made up for a stream


@given(cuts=st.lists(st.integers(0, len(PAGE)), max_size=8), gz=st.booleans(), dest=st.sampled_from(["document", None]))
def test_a_page_in_any_pieces_gets_the_snippet_where_a_whole_one_does(cuts, gz, dest):
    from sigreload.serving import injection

    tag = b"<script src='x'></script>"
    raw = zlib.compress(PAGE) if gz else PAGE
    bounds = [0, *sorted(c * len(raw) // len(PAGE) for c in cuts), len(raw)]
    page = injection.Page(tag, "deflate" if gz else "identity", dest, None)
    out = b"".join(page.feed(raw[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)) + page.end()
    assert page.changed and out == injection.inject(PAGE, tag)
