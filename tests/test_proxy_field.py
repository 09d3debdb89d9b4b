"""The proxy under what real apps and ordinary-but-hostile clients send: fragments,
1xx answers, cut bodies, silent streams, chunked and huge uploads, a gzip that
inflates a thousandfold, strict parsing, forwarded headers, keep-alive, and an
app that accepts nothing. What frameworks cannot send comes from a raw-socket
upstream (``Upstream``) that answers each request with bytes the test chose."""

import gzip
import http.client
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import HELLO_SEEN, SCALE, free_port, module
from sigreload.serving import snippet

TAG = snippet.tag("/_sigreload/reload.js")  # its URL versioned
DOC = b"<!doctype html><html><body><h1 id=out>page</h1></body></html>"


class Upstream:
    """A raw HTTP server on loopback: ``answer(request_head, sock)`` writes whatever
    it likes. Counts connections; keeps every request head it read."""

    def __init__(self, answer):
        self.answer, self.heads, self.connections = answer, [], 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.each, args=(conn,), daemon=True).start()

    def each(self, conn):
        try:
            self.exchange(conn)
        except OSError:
            pass  # the proxy went away mid-answer (what some tests make it do)

    def exchange(self, conn):
        reader = conn.makefile("rb")
        with conn:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                self.heads.append(head)
                fields = {k.strip().lower(): v.strip() for k, v in
                          (h.split(b":", 1) for h in head.split(b"\r\n")[1:] if b":" in h)}
                if fields.get(b"transfer-encoding") == b"chunked":
                    body = b""
                    while size := int(reader.readline().split(b";")[0], 16):
                        body += reader.read(size)
                        reader.readline()
                    reader.readline()
                else:
                    left, body = int(fields.get(b"content-length", 0)), b""
                    while left:  # big uploads are counted, not kept
                        data = reader.read(min(left, 1 << 20))
                        left -= len(data)
                        body = body + data if len(body) < (1 << 20) else body
                        self.received = getattr(self, "received", 0) + len(data)
                if self.answer(head, body, conn) is False:
                    return

    def close(self):
        self.sock.close()


def reply(status, headers, body, conn):
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    conn.sendall(head.encode() + body)


@pytest.fixture
def front(procs, tmp_path):
    """front(answer, *flags) -> (proxy URL host, port, Upstream): sigreload's proxy before a raw upstream."""
    made = []

    def start(answer, *flags, ws=None):
        upstream = Upstream(answer)
        made.append(upstream)
        port = free_port()
        proc = procs(module("http_server") + ["--proxy", f"http://127.0.0.1:{upstream.port}", "--port", port,
                                              "--inject", ws or free_port(), *flags])
        proc.wait_for("proxying")
        return port, upstream, proc

    yield start
    for upstream in made:
        upstream.close()


def request(port, method="GET", path="/", headers=(), body=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * SCALE)
    try:
        conn.request(method, path, body=body, headers=dict(headers))
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def header(headers, name):
    return next((v for k, v in headers if k.lower() == name.lower()), None)


def exchange(port, raw, wait=10):
    """What the proxy sends back for the raw bytes ``raw``, until it closes (or ``wait``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait * SCALE) as s:
        s.sendall(raw)
        out = b""
        try:
            while data := s.recv(65536):
                out += data
        except TimeoutError:
            return out, False
        return out, True


# --- 4. Only documents get the snippet ----------------------------------------------------------

FRAGMENTS = {"/frag": b"<li>one</li>", "/42": b"42", "/doc": DOC, "/empty": b""}


def pages(head, body, conn):
    path = head.split(b" ")[1].decode()
    status = "302 Found" if path == "/empty" else "200 OK" if path in FRAGMENTS else "404 Not Found"
    data = FRAGMENTS.get(path, b"")  # a browser also asks for /favicon.ico
    reply(status, [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", len(data))], data, conn)


@pytest.mark.parametrize("dest", ["empty", None])
def test_fragments_fetch_answers_and_empty_bodies_stay_byte_identical(front, dest):
    port, _, _ = front(pages)
    sent = [("Sec-Fetch-Dest", dest), ("Sec-Fetch-Mode", "cors")] if dest else []
    for path in ("/frag", "/42", "/empty") + (("/doc",) if dest else ()):
        status, headers, body = request(port, path=path, headers=sent)
        assert body == FRAGMENTS[path] and header(headers, "Content-Length") == str(len(FRAGMENTS[path])), path


def test_a_navigation_and_a_whole_document_get_the_snippet(front):
    port, _, _ = front(pages)
    assert request(port, path="/doc")[2] == DOC.replace(b"<body>", TAG + b"<body>")  # no Sec-Fetch: sniffed
    navigation = [("Sec-Fetch-Dest", "document"), ("Sec-Fetch-Mode", "navigate")]
    assert request(port, path="/42", headers=navigation)[2] == b"42" + TAG  # Flask's return "42", navigated to
    status, headers, body = request(port, "HEAD", "/doc")
    assert body == b"" and header(headers, "Content-Length") == str(len(DOC) + len(TAG))  # as GET's


def test_a_non_html_error_answer_to_a_navigation_is_shown_with_live_reload(front, broadcaster, page):
    def error(head, body, conn):
        reply("500 Internal Server Error", [("Content-Type", "text/plain"), ("Content-Length", 21)],
              b"Internal Server Error", conn)

    port, _, _ = front(error, ws=broadcaster[1])
    page.goto(f"http://127.0.0.1:{port}/")
    page.wait_for_function(HELLO_SEEN)
    assert page.locator("pre").inner_text() == "Internal Server Error"
    assert request(port, headers=[("Sec-Fetch-Dest", "empty")])[2] == b"Internal Server Error"  # fetch(): as is


# --- 5. HTTP done right --------------------------------------------------------------------------------

def test_early_hints_are_dropped_and_the_answer_arrives(front):
    def hints(head, body, conn):
        conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        reply("200 OK", [("Content-Type", "text/plain"), ("Content-Length", 5)], b"final", conn)

    port, _, _ = front(hints)
    status, _, body = request(port)
    assert (status, body) == (200, b"final")


@pytest.mark.parametrize("kind", ["length", "chunked-html"])
def test_a_body_the_app_cuts_short_cuts_the_clients_answer_at_once(front, kind):
    def cut(head, body, conn):
        if kind == "length":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\nContent-Length: 100000\r\n\r\n"
                         + bytes(1000))
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"10\r\n<!doctype html>\n\r\n")
        conn.shutdown(socket.SHUT_RDWR)
        return False

    port, _, proc = front(cut)
    began = time.monotonic()
    out, closed = exchange(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", wait=5)
    assert closed and time.monotonic() - began < 2 * SCALE, out[:200]
    assert out.startswith(b"HTTP/1.1 200") and not out.endswith(b"0\r\n\r\n")
    assert "Traceback" not in proc.output()


def test_a_silent_stream_is_never_cut(front):
    def sse(head, body, conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"8\r\ndata: 1\n\r\n")
        time.sleep(3)  # longer than the proxy's --idle-timeout below
        conn.sendall(b"8\r\ndata: 2\n\r\n0\r\n\r\n")

    port, _, _ = front(sse, "--idle-timeout", "1")
    status, _, body = request(port, timeout=20)
    assert body == b"data: 1\ndata: 2\n"


def test_request_bodies_chunked_or_expecting_100_reach_the_app(front):
    got = []

    def echo(head, body, conn):
        got.append((head, body))
        reply("200 OK", [("Content-Length", 2)], b"ok", conn)

    port, upstream, _ = front(echo)
    out, _ = exchange(port, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                            b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"ok")
    assert got[-1][1] == b"hello world"


def test_strict_parsing_answers_400_and_closes(front):
    port, upstream, _ = front(pages)
    for raw in (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
                b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"0\r\n\r\nGET /frag HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                b"GET /frag HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\r\n b\r\n\r\n",
                b"GET /frag HTTP/1.1\nHost: 127.0.0.1\n\n"):
        out, closed = exchange(port, raw)
        assert out.startswith(b"HTTP/1.") and b" 400 " in out.split(b"\r\n")[0] and closed, out
    assert upstream.heads == []  # nothing reached the app


def test_forwarding_headers_are_replaced_and_connections_kept_alive(front):
    port, upstream, _ = front(pages)
    for _ in range(20):
        request(port, path="/42", headers=[("X-Forwarded-For", "6.6.6.6"), ("Forwarded", "for=6.6.6.6"),
                                           ("X-Forwarded-Host", "evil.example")])
    heads = b"".join(upstream.heads).lower()
    assert b"6.6.6.6" not in heads and b"evil.example" not in heads and b"forwarded:" not in heads
    assert b"x-forwarded-for" not in heads  # a client on this machine: the app sees the proxy's address and port
    assert upstream.connections <= 2, "one new upstream connection per request"


def test_the_request_target_reaches_the_app_as_the_client_sent_it(front):
    port, upstream, _ = front(pages)
    target = "/a%2Fb/%7Euser/caf%C3%A9;v=1/x,y?q=a%20b&q=c+d&e=%zz&f=/?g"
    request(port, path=target)
    assert upstream.heads[-1].split(b" ")[1] == target.encode()  # not decoded, requoted or normalized


def test_idle_and_half_sent_requests_are_timed_out_and_a_client_gone_is_no_traceback(front):
    def slow(head, body, conn):
        reply("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", 64 << 20)],
              bytes(64 << 20), conn)

    port, _, proc = front(slow, "--idle-timeout", "1", "-v")
    began = time.monotonic()
    out, closed = exchange(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n", wait=10)  # never finished
    assert closed and time.monotonic() - began < 4 * SCALE
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        s.recv(65536)
    proc.wait_for("went away")
    assert "Traceback" not in proc.output()


def peak_rss(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_a_huge_upload_and_a_gzip_that_inflates_a_thousandfold_stream_at_flat_memory(front):
    bomb = gzip.compress(b"<!doctype html><body>" + bytes(1 << 30), 1)  # 1 GiB of HTML, about 1 MiB zipped
    sizes = []

    def sink(head, body, conn):
        if head.startswith(b"POST"):
            sizes.append(upstream_of[0].received)
            reply("200 OK", [("Content-Length", 2)], b"ok", conn)
        else:
            reply("200 OK", [("Content-Type", "text/html"), ("Content-Encoding", "gzip"),
                             ("Content-Length", len(bomb))], bomb, conn)

    upstream_of = []
    port, upstream, proc = front(sink)
    upstream_of.append(upstream)
    before = peak_rss(proc.pid)
    upload = 400 << 20
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60 * SCALE)
    conn.putrequest("POST", "/upload")
    conn.putheader("Content-Length", str(upload))
    conn.endheaders()
    piece = bytes(1 << 20)
    for _ in range(upload >> 20):
        conn.send(piece)
    assert conn.getresponse().read() == b"ok" and sizes == [upload]
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120 * SCALE)
    conn.request("GET", "/", headers={"Sec-Fetch-Dest": "document"})
    response = conn.getresponse()
    total = 0
    while data := response.read(1 << 20):
        total += len(data)
    conn.close()
    assert total == len(b"<!doctype html><body>") + (1 << 30) + len(TAG)
    assert peak_rss(proc.pid) - before < 64 << 20


@pytest.mark.portable_too
def test_an_app_that_accepts_nothing_gets_the_down_page_within_seconds(procs, tmp_path):
    stuck = socket.create_server(("127.0.0.1", 0), backlog=16)  # listens, never accepts: uvicorn after a syntax error
    port = free_port()
    proc = procs(module("http_server") + ["--proxy", f"http://127.0.0.1:{stuck.getsockname()[1]}", "--port", port,
                                          "--inject", free_port()])
    proc.wait_for("proxying")
    began = time.monotonic()
    status, headers, body = request(port, headers=[("Sec-Fetch-Dest", "document")], timeout=20)
    took = time.monotonic() - began
    stuck.close()
    assert status == 502 and header(headers, "X-Sigreload-Down") == "1" and b"does not answer" in body
    assert took < 5 * SCALE, took


def test_an_https_app_is_proxied_without_verifying_its_certificate(procs, tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    key, chain = tmp_path / "key.pem", tmp_path / "cert.pem"
    cert.private_key_pem.write_to_path(key)
    cert.cert_chain_pems[0].write_to_path(chain)
    app_port = free_port()
    app = procs([sys.executable, "-u", "-m", "uvicorn", "proxy_app:app", "--app-dir",
                 Path(__file__).parent, "--port", app_port, "--ssl-keyfile", key, "--ssl-certfile", chain,
                 "--lifespan", "off"], env={**os.environ, "APP_PORT": str(app_port)})
    app.wait_for("Uvicorn running on")
    port = free_port()
    proc = procs(module("http_server") + ["--proxy", f"https://127.0.0.1:{app_port}", "--port", port,
                                          "--inject", free_port()])
    proc.wait_for("proxying")
    assert sum("not verified" in line for line in proc.seen) == 1
    status, _, body = request(port, headers=[("Sec-Fetch-Dest", "document")])
    assert status == 200 and b"<h1 id='out'>home</h1>" in body and TAG in body


def test_expect_100_continue_is_the_apps_to_answer(procs):
    app_port, port = free_port(), free_port()
    app = procs([sys.executable, "-u", "-m", "uvicorn", "proxy_app:app", "--app-dir", Path(__file__).parent,
                 "--port", app_port, "--lifespan", "off"], env={**os.environ, "APP_PORT": str(app_port)})
    app.wait_for("Uvicorn running on")
    procs(module("http_server") + ["--proxy", f"http://127.0.0.1:{app_port}", "--port", port]).wait_for("proxying")
    with socket.create_connection(("127.0.0.1", port), timeout=10 * SCALE) as s:
        s.sendall(b"POST /form HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: 8\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        reader = s.makefile("rb")
        assert reader.readline() == b"HTTP/1.1 100 Continue\r\n" and reader.readline() == b"\r\n"
        s.sendall(b"name=bob")
        answer = reader.read()
    assert answer.startswith(b"HTTP/1.1 200") and b"got name=bob" in answer


def test_one_page_load_is_one_request_to_the_app(front, broadcaster, page):
    port, upstream, _ = front(pages, ws=broadcaster[1])
    page.goto(f"http://127.0.0.1:{port}/doc")
    page.wait_for_function(HELLO_SEEN)
    page.wait_for_timeout(500)  # what the snippet does once loaded, done
    assert [h.split(b" ")[:2] for h in upstream.heads if h.split(b" ")[1] == b"/doc"] == [[b"GET", b"/doc"]]


DJANGO_TEMPLATES = {
    "manage.py": "import os, sys\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'settings')\n"
                 "from django.core.management import execute_from_command_line\nexecute_from_command_line(sys.argv)\n",
    "settings.py": "from pathlib import Path\nSECRET_KEY = 'only-for-a-test'\nDEBUG = True\nROOT_URLCONF = 'urls'\n"
                   "INSTALLED_APPS = []\nMIDDLEWARE = []\nDATABASES = {}\nALLOWED_HOSTS = ['*']\n"
                   "TEMPLATES = [{'BACKEND': 'django.template.backends.django.DjangoTemplates',"
                   " 'DIRS': [Path(__file__).parent / 'templates']}]\n",
    "urls.py": "from django.shortcuts import render\nfrom django.urls import path\n\n"
               "urlpatterns = [path('', lambda request: render(request, 'page.html'))]\n",
}


def test_a_django_template_edit_shows_the_new_template_on_the_first_load(procs, tmp_path, page):
    """Django's cached template loader serves the old template until its reloader's
    next tick (up to a second): the proxy asks again until the page changed."""
    for name, text in DJANGO_TEMPLATES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "templates").mkdir()
    template = tmp_path / "templates" / "page.html"
    save = lambda v: template.write_text(f"<!doctype html><html><body><h1 id='out'>{v}</h1></body></html>")  # noqa: E731
    save("v0")
    app_port = free_port()
    procs([sys.executable, "-u", "manage.py", "runserver", f"127.0.0.1:{app_port}"], cwd=tmp_path,
          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}).wait_for("Quit the server with", 30)
    main = procs(module("sigreload") + [tmp_path, "--proxy", f"http://127.0.0.1:{app_port}", "--port", free_port(),
                                        "--ws-port", free_port()])
    url = main.wait_seen(r"proxying \S+ at (http://\S+/)").group(1)
    main.wait_seen("watching")
    page.goto(url)
    page.wait_for_function(HELLO_SEEN)
    shown = []
    for n in range(1, 11):
        with page.expect_event("load", timeout=15_000 * SCALE):
            save(f"v{n}")
        shown.append(page.locator("#out").inner_text())
        page.wait_for_function(HELLO_SEEN)
    assert shown == [f"v{n}" for n in range(1, 11)]


WRITING_APP = '''import json, pathlib
from flask import Flask

app = Flask(__name__)
DATA = pathlib.Path(__file__).with_name("data.json")


@app.route("/")
def index():
    data = json.loads(DATA.read_text()) if DATA.exists() else {{"views": 0, "note": ""}}
    data["views"] += 1
    DATA.write_text(json.dumps(data))  # its own store, beside its code
    return "<!doctype html><html><body><h1 id='out'>" + data["note"] + "</h1></body></html>"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port={port}, debug=True, reloader_type="stat")
'''


def test_what_the_app_writes_while_answering_is_no_edit_but_a_persons_edit_is(procs, tmp_path, page):
    app_port = free_port()
    (tmp_path / "app.py").write_text(WRITING_APP.format(port=app_port))
    (tmp_path / "data.json").write_text('{"views": 0, "note": "first"}')
    procs([sys.executable, "-u", "app.py"], cwd=tmp_path,
          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}).wait_for("Debugger PIN", 30)  # Flask's last line
    main = procs(module("sigreload") + [tmp_path, "--proxy", f"http://127.0.0.1:{app_port}", "--port", free_port(),
                                        "--ws-port", free_port()])
    url = main.wait_seen(r"proxying \S+ at (http://\S+/)").group(1)
    main.wait_seen("watching")
    views = lambda: __import__("json").loads((tmp_path / "data.json").read_text())["views"]  # noqa: E731
    page.goto(url)
    page.wait_for_function(HELLO_SEEN)
    page.wait_for_timeout(3000)  # a loop would be dozens of views by now
    assert views() <= 2, main.output()
    main.wait_seen("written by the app while it answered, not an edit")
    with page.expect_event("load", timeout=15_000 * SCALE):  # a person's edit of the same file reloads
        (tmp_path / "data.json").write_text(f'{{"views": {views()}, "note": "edited"}}')
    assert page.locator("#out").inner_text() == "edited"
