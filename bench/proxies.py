"""The proxy rows of bench/run.py: one small app (a stock threaded http.server
that also takes uploads), reached directly, through sigreload's proxy and
through browser-sync's (bench/node: `npm ci --prefix bench/node`), in the
same run: requests per second on kept-alive connections (a small file), 100
connections at once, a 100-asset page load in Chromium, and the proxy's
memory while a 400 MiB upload passes. Requests per second also before
uvicorn and Flask's dev server, and, for what any proxy costs on this
machine, through two byte relays that know no HTTP: one in asyncio and
socat (when installed)."""

import asyncio
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
UPLOAD = 400 << 20
ASSETS = 100


class App(SimpleHTTPRequestHandler):
    """The app: files (kept alive), and POST bodies read and dropped."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two sends: no 40 ms delayed-ACK stall

    def log_message(self, *args):
        pass

    def do_POST(self):
        left = int(self.headers.get("Content-Length") or 0)
        while left:
            left -= len(self.rfile.read(min(left, 1 << 20)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


class AppServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # as sigreload's own servers (the stdlib's default: 5)

    def handle_error(self, request, client_address):
        pass  # a client that went away


async def small_file(scope, receive, send):
    """The uvicorn app: small.txt for every request (a bare ASGI app: no framework's cost)."""
    if scope["type"] == "http":
        body = (Path(sys.argv[1]) / "small.txt").read_bytes()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})


class Relay(asyncio.Protocol):
    """What any proxy costs at least: the bytes of one client connection to one
    connection of its own to the app and back, parsing nothing."""

    def __init__(self, upstream, peer=None):
        self.upstream, self.peer, self.waiting = upstream, peer, []

    def connection_made(self, transport):
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.peer:  # the app's side, opened for a client's: what the client sent so far
            self.peer.peer = self
            transport.writelines(self.peer.waiting)
        else:  # a client's side: a connection to the app of its own
            asyncio.ensure_future(asyncio.get_running_loop().create_connection(
                lambda: Relay(None, self), "127.0.0.1", self.upstream))

    def data_received(self, data):
        if self.peer:
            self.peer.transport.write(data)
        else:
            self.waiting.append(data)

    def connection_lost(self, exc):
        if self.peer:
            self.peer.transport.close()


async def relay(upstream, port):
    server = await asyncio.get_running_loop().create_server(lambda: Relay(upstream), "127.0.0.1", port, backlog=128)
    print("relaying", flush=True)
    await server.serve_forever()


def site(root):
    (root / "small.txt").write_text("x" * 512)
    for i in range(ASSETS):
        (root / f"a{i}.css").write_text(f".a{i} {{ color: red }}")
    links = "".join(f'<link rel="stylesheet" href="a{i}.css">' for i in range(ASSETS))
    (root / "page.html").write_text(f"<!doctype html><html><head>{links}</head><body><h1>assets</h1></body></html>")


def requests_per_second(port, seconds=3.0, clients=4):
    """GET /small.txt again and again on ``clients`` kept-alive connections."""
    end = time.monotonic() + seconds

    def one(_):
        conn, done = http.client.HTTPConnection("127.0.0.1", port, timeout=10), 0
        while time.monotonic() < end:
            conn.request("GET", "/small.txt")
            conn.getresponse().read()
            done += 1
        conn.close()
        return done

    with ThreadPoolExecutor(clients) as pool:
        return sum(pool.map(one, range(clients))) / seconds


def at_once(port, count=100, path="/small.txt"):
    """``count`` new connections at once, a GET of ``path`` each: (each one's ms, failures)."""
    start = threading.Barrier(count)

    def one(_):
        start.wait()
        began = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()
        except OSError:
            return None
        return 1000 * (time.monotonic() - began)

    with ThreadPoolExecutor(count) as pool:
        took = list(pool.map(one, range(count)))
    return [t for t in took if t is not None], took.count(None)


def page_load(pw_browser, port, loads=5):
    """A page with ASSETS stylesheets: navigation start -> load event (ms), fresh each time."""
    out = []
    for _ in range(loads):
        context = pw_browser.new_context()
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}/page.html", wait_until="load")
        out.append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventStart"))
        context.close()
    return out


def upload_memory(port, pid):
    """The proxy's peak RSS growth (MB) while a 400 MiB upload passes it."""
    proc = psutil.Process(pid)
    before, peak = proc.memory_info().rss, [0]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]))
            time.sleep(0.02)

    threading.Thread(target=watch, daemon=True).start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.putrequest("POST", "/upload")
    conn.putheader("Content-Length", str(UPLOAD))
    conn.endheaders()
    piece = bytes(1 << 20)
    for _ in range(UPLOAD >> 20):
        conn.send(piece)
    conn.getresponse().read()
    conn.close()
    done.set()
    return (peak[0] - before) / 2**20


def start(argv, ready, env=None):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    said = []
    for line in proc.stdout:
        said.append(line.decode(errors="replace"))
        if ready in said[-1]:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # never a full pipe
            return proc
    raise RuntimeError(f"{argv[0]} exited before {ready!r}:\n{''.join(said[-20:])}")


def stop(proc):
    try:
        os.killpg(proc.pid, 15)
    except ProcessLookupError:
        pass
    proc.wait()


def fronts_of(upstream, free_port):
    """The ways to reach the app on port ``upstream``: {name: (port, process or None)},
    sigreload's proxy and browser-sync's started here (stop them with ``stop``)."""
    fronts = {"direct": (upstream, None)}
    ours = free_port()
    mine = start([sys.executable, "-m", "sigreload.http_server", "--proxy", f"http://127.0.0.1:{upstream}",
                  "--port", str(ours), "--inject", str(free_port())], "proxying")
    fronts["sigreload's proxy"] = (ours, mine)
    bs = HERE / "node" / "node_modules" / ".bin" / "browser-sync"
    if bs.exists():
        port = free_port()
        theirs = start([str(bs), "start", "--proxy", f"127.0.0.1:{upstream}", "--port", str(port),
                        "--listen", "127.0.0.1", "--no-open", "--no-notify", "--no-ui", "--no-ghost-mode"],
                       "Proxying")
        fronts["browser-sync's proxy"] = (port, theirs)
    return fronts


def relays_to(upstream, free_port):
    """Byte relays to the app on port ``upstream`` (no HTTP: what any proxy costs at least), as ``fronts_of``."""
    port = free_port()
    fronts = {"byte relay (asyncio)": (port, start([sys.executable, __file__, "relay", str(upstream), str(port)],
                                                    "relaying"))}
    if shutil.which("socat"):
        port = free_port()
        fronts["byte relay (socat)"] = (port, start(
            ["socat", "-d", "-d", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,backlog=128,nodelay",
             f"TCP:127.0.0.1:{upstream},nodelay"], "listening on"))
    return fronts


def rate_rows(results, fronts, summary, app):
    """Requests per second through each of ``fronts`` (to ``app``), and each proxy's share of direct's."""
    rates = {name: requests_per_second(port) for name, (port, _) in fronts.items()}
    for name, rate in rates.items():
        results[f"proxy, {name}: requests/s, kept alive, small file ({app})"] = summary([rate])
    for name in fronts:
        if name != "direct":
            share = 100 * rates[name] / rates["direct"]
            results[f"proxy, {name}: requests/s, % of direct's ({app})"] = summary([share])


def rows(results, pw_browser, free_port, summary):
    """Every proxy row, for direct, sigreload's proxy and browser-sync's: the
    app is a stock http.server (the cheapest there is: what the proxy costs
    shows most), and for requests/s also uvicorn and Flask's dev server, and
    (http.server) byte relays."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        site(root)
        upstream = free_port()
        app = start([sys.executable, __file__, str(root), str(upstream)], "app ready")  # a process of its own
        fronts = fronts_of(upstream, free_port)
        if "browser-sync's proxy" not in fronts:
            print("bench: no browser-sync (npm ci --prefix bench/node): its proxy rows are skipped")
        relays = {}
        try:
            relays = relays_to(upstream, free_port)
            rate_rows(results, {**fronts, **relays}, summary, "http.server")
            for name, (port, _) in fronts.items():  # the first burst opens new connections to the app, too
                for burst in ("", " again"):
                    took, failed = at_once(port)
                    results[f"proxy, {name}: 100 connections at once{burst}, each (ms)"] = summary(took)
                    results[f"proxy, {name}: 100 connections at once{burst}, failed"] = summary([float(failed)])
            for name, (port, _) in fronts.items():
                results[f"proxy, {name}: {ASSETS}-asset page load in Chromium (ms)"] = summary(
                    page_load(pw_browser, port))
            for name, (port, proc) in fronts.items():
                if proc is not None:
                    results[f"proxy, {name}: memory growth during a 400 MiB upload (MB)"] = summary(
                        [upload_memory(port, proc.pid)])
        finally:
            for _, proc in [*fronts.values(), *relays.values(), (None, app)]:
                if proc is not None:
                    stop(proc)
        for kind, ready in (("uvicorn", "Uvicorn running"), ("flask", "app ready")):
            upstream = free_port()
            app = start([sys.executable, __file__, str(root), str(upstream), kind], ready)
            fronts = fronts_of(upstream, free_port)
            try:
                rate_rows(results, fronts, summary, {"flask": "Flask"}.get(kind, kind))
            finally:
                for _, proc in [*fronts.values(), (None, app)]:
                    if proc is not None:
                        stop(proc)


if __name__ == "__main__":  # the app: python bench/proxies.py ROOT PORT [flask|uvicorn]; relay APP_PORT PORT
    if sys.argv[1] == "relay":
        asyncio.run(relay(int(sys.argv[2]), int(sys.argv[3])))
    elif sys.argv[3:] == ["uvicorn"]:  # uvicorn as the test extra installs it, the bare app above
        import uvicorn

        uvicorn.run(small_file, host="127.0.0.1", port=int(sys.argv[2]), access_log=False)
    elif sys.argv[3:] == ["flask"]:  # Flask's dev server (Werkzeug, threaded, kept alive), its static files
        from flask import Flask

        flask_app = Flask(__name__, static_folder=sys.argv[1], static_url_path="")
        print("app ready", flush=True)
        flask_app.run(host="127.0.0.1", port=int(sys.argv[2]), threaded=True)
    else:
        server = AppServer(("127.0.0.1", int(sys.argv[2])), lambda *a: App(*a, directory=sys.argv[1]))
        print("app ready", flush=True)
        server.serve_forever()
