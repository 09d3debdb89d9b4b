"""An ASGI app (run by uvicorn) with what a proxy gets wrong: compressed,
streamed and non-ASCII pages, a redirect to its own address, a cookie, a
POST form, a WebSocket echo, a page whose CSP allows scripts by nonce, and an
error page. Every page shows the Accept-Encoding it was asked with.
"""

import gzip
import os
import zlib

PORT = os.environ.get("APP_PORT", "0")
NONCE = "r4nd0m"


def page(body, accept=""):
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>app</title></head>"
            f"<body>{body}<p id='ae'>{accept}</p></body></html>").encode()


async def app(scope, receive, send):
    if scope["type"] == "websocket":
        return await echo(receive, send)
    if scope["type"] != "http":
        return
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    accept, path = headers.get("accept-encoding", ""), scope["path"]
    status, extra, body = 200, [], None
    if path == "/gzip":
        body, extra = gzip.compress(page("<h1 id='out'>gzip</h1>", accept)), [(b"content-encoding", b"gzip")]
    elif path == "/deflate":
        body, extra = zlib.compress(page("<h1 id='out'>deflate</h1>", accept)), [(b"content-encoding", b"deflate")]
    elif path == "/stream":
        return await stream(send, accept)
    elif path == "/unicode":
        body = page("<h1 id='out'>Grüße, 世界</h1>", accept)
    elif path == "/redirect":
        status, extra = 302, [(b"location", f"http://127.0.0.1:{PORT}/landed".encode())]
        body = b""
    elif path == "/cookie":
        extra = [(b"set-cookie", b"flavor=oat; Path=/; Domain=127.0.0.1"), (b"set-cookie", b"size=big; Path=/")]
        body = page("<h1 id='out'>cookie set</h1>", accept)
    elif path == "/whoami":
        body = page(f"<h1 id='out'>{headers.get('cookie', '')}</h1>", accept)
    elif path == "/form" and scope["method"] == "POST":
        sent = b""
        while True:
            message = await receive()
            sent += message.get("body", b"")
            if not message.get("more_body"):
                break
        body = page(f"<h1 id='out'>got {sent.decode()}</h1>", accept)
    elif path == "/form":
        body = page("<form method='post' action='/form'><input name='name' value='ada'>"
                    "<button id='go'>go</button></form>", accept)
    elif path == "/csp":
        extra = [(b"content-security-policy",
                  f"default-src 'self'; script-src 'nonce-{NONCE}'; connect-src 'self'".encode())]
        body = page(f"<h1 id='out'>csp</h1><script nonce='{NONCE}'>window.appRan = true;</script>", accept)
    elif path == "/error":
        status, body = 500, page("<h1 id='out'>Internal Server Error</h1>", accept)
    elif path == "/part":  # a part of a page: never changed (its Content-Range would lie)
        whole = page("<h1 id='out'>part</h1>", accept)
        status, body, extra = 206, whole[:60], [(b"content-range", f"bytes 0-59/{len(whole)}".encode())]
    elif path == "/download":  # a page saved, not shown: never changed
        body, extra = page("<h1 id='out'>download</h1>", accept), [(b"content-disposition", b"attachment")]
    elif path == "/csp-style-first":  # the style's nonce comes first; the script's is in a second policy
        extra = [(b"content-security-policy", b"style-src 'nonce-STYLE'"),
                 (b"content-security-policy", f"script-src 'nonce-{NONCE}'".encode())]
        body = page("<h1 id='out'>csp</h1>", accept)
    else:
        body = page("<h1 id='out'>home</h1>", accept)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/html; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


async def stream(send, accept):
    """An HTML page in pieces, with no length: uvicorn sends it chunked."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html; charset=utf-8")]})
    pieces = [b"<!doctype html><html><he", b"ad><title>s</title></head><body><h1 id='out'>",
              b"streamed</h1><p id='ae'>" + accept.encode() + b"</p></bo", b"dy><!-- after --></html>"]
    for piece in pieces:
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def echo(receive, send):
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": "echo: " + (message.get("text") or "")})
