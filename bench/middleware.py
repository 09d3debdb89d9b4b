"""The middleware rows of bench/run.py (``--middleware-only`` runs only them):

- in process, what the middleware adds to one answer (µs of the thread's
  CPU time: a loaded machine does not count): a 10 KB HTML page
  that gets the snippet, and a small non-HTML answer, through WSGIMiddleware
  and ASGIMiddleware, with a broadcaster running (the middleware at work),
  and the page with none (inert); the bare app's own time subtracted, runs
  alternating;
- requests per second through uvicorn and Flask's dev server (threaded, kept
  alive), the bare app and the same app with the middleware line, runs
  alternating, and the middleware's share of the bare app's.

    python bench/middleware.py            # the rows alone, printed
"""

import asyncio
import http.client
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
ITEMS = "".join(f'<li class="item"><a href="/items/{i}">Item {i}</a> <span>Lorem ipsum dolor sit amet, '
                'consectetur adipiscing elit.</span></li>\n' for i in range(200))
PAGE = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>bench</title>"
        f"<link rel='stylesheet' href='/static/style.css'></head><body><ul>{ITEMS}").encode()[:10_220]
PAGE += b"</ul></body></html>"  # 10 KB
SMALL = b"body { color: red }\n"
DOC = {"Sec-Fetch-Dest": "document"}


def wsgi_app(environ, start_response):
    page = environ["PATH_INFO"] == "/page"
    body = PAGE if page else SMALL
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8" if page else "text/css"),
                              ("Content-Length", str(len(body)))])
    return [body]


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    page = scope["path"] == "/page"
    body = PAGE if page else SMALL
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/html; charset=utf-8" if page else b"text/css"),
        (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


def environ(path, headers):
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "HTTP_HOST": "127.0.0.1:5000", "wsgi.url_scheme": "http"}
    return env | {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}


def per_call_wsgi(app, path, headers, n):
    env = environ(path, headers)

    def start_response(status, headers, exc_info=None):
        return None

    began = time.thread_time()
    for _ in range(n):
        result = app(dict(env), start_response)
        for _ in result:
            pass
        if hasattr(result, "close"):
            result.close()
    return (time.thread_time() - began) / n * 1e6


def per_call_asgi(app, path, headers, n):
    scope = {"type": "http", "method": "GET", "path": path, "scheme": "http",
             "headers": [(b"host", b"127.0.0.1:5000")] + [(k.lower().encode(), v.encode()) for k, v in headers.items()]}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    async def run():
        began = time.thread_time()
        for _ in range(n):
            await app(scope, receive, send)
        return (time.thread_time() - began) / n * 1e6

    with ThreadPoolExecutor(1) as pool:  # a loop of its own: Playwright's sync API holds this thread's
        return pool.submit(asyncio.run, run()).result()


def added(bare, wrapped, rounds=7, n=2000):
    """µs the wrapped call adds to the bare one: per round (alternating), the difference."""
    wrapped(n // 10), bare(n // 10)  # warm
    return [wrapped(n) - bare(n) for _ in range(rounds)]


def broadcaster(port):
    proc = subprocess.Popen([sys.executable, "-m", "sigreload.broadcaster", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    for line in proc.stdout:
        if b"ready on" in line:
            return proc
    raise RuntimeError("the broadcaster did not start")


def stop(proc):
    try:
        os.killpg(proc.pid, 15)
    except ProcessLookupError:
        pass
    proc.wait()


def in_process_rows(results, summary, port, idle_port):
    from sigreload.middleware import ASGIMiddleware, WSGIMiddleware

    for name, kind, bare, per_call in (("WSGI", WSGIMiddleware, wsgi_app, per_call_wsgi),
                                       ("ASGI", ASGIMiddleware, asgi_app, per_call_asgi)):
        on, off = kind(bare, port=port), kind(bare, port=idle_port)
        for what, path, headers, app in (("10 KB page, snippet inserted", "/page", DOC, on),
                                         ("small stylesheet", "/style.css", {"Sec-Fetch-Dest": "style"}, on),
                                         ("small stylesheet, no Sec-Fetch headers", "/style.css", {}, on),
                                         ("10 KB page, no broadcaster (inert)", "/page", DOC, off)):
            results[f"middleware, {name}: {what}, added (us)"] = summary(added(
                lambda n, path=path, headers=headers: per_call(bare, path, headers, n),
                lambda n, path=path, headers=headers, app=app: per_call(app, path, headers, n)))


def requests_per_second(port, path, headers, seconds=2.0, clients=4):
    end = time.monotonic() + seconds

    def one(_):
        conn, done = http.client.HTTPConnection("127.0.0.1", port, timeout=10), 0
        while time.monotonic() < end:
            conn.request("GET", path, headers=headers)
            conn.getresponse().read()
            done += 1
        conn.close()
        return done

    with ThreadPoolExecutor(clients) as pool:
        return sum(pool.map(one, range(clients))) / seconds


def serve(kind, port, wrapped, ws_port, free_port):
    env = {**os.environ, "SIGRELOAD_WS_PORT": str(ws_port)}
    proc = subprocess.Popen([sys.executable, __file__, "app", kind, str(port), str(int(wrapped))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/page", headers=DOC)
            body = conn.getresponse().read()
            conn.close()
            if wrapped == (b"reload.js" in body):
                return proc
        except OSError:
            pass
        time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"{kind} did not answer as expected")


def rate_rows(results, summary, ws_port, free_port, rounds=3, seconds=2.0):
    """Requests/s, bare and with the middleware (alternating), and the app
    process's CPU per request (µs: what a loaded machine blurs least)."""
    import psutil

    for kind, shown in (("uvicorn", "uvicorn"), ("flask", "Flask's server")):
        for what, path, headers in (("10 KB page", "/page", DOC), ("small file", "/style.css", {})):
            rates, cpu = {False: [], True: []}, {False: [], True: []}
            for _ in range(rounds):
                for wrapped in (False, True):
                    port = free_port()
                    proc = serve(kind, port, wrapped, ws_port, free_port)
                    try:
                        app = psutil.Process(proc.pid)
                        before = sum(app.cpu_times()[:2])
                        rate = requests_per_second(port, path, headers, seconds)
                        cpu[wrapped].append((sum(app.cpu_times()[:2]) - before) / (rate * seconds) * 1e6)
                        rates[wrapped].append(rate)
                    finally:
                        stop(proc)
            name = f"middleware, {shown}, {what}"
            results[f"{name}: bare app requests/s"] = summary(rates[False])
            results[f"{name}: with it, requests/s"] = summary(rates[True])
            results[f"{name}: % of the bare app's"] = summary(
                [100 * statistics.median(rates[True]) / statistics.median(rates[False])])
            results[f"{name}: bare app CPU per request (us)"] = summary(cpu[False])
            results[f"{name}: with it, CPU per request (us)"] = summary(cpu[True])


def rows(results, free_port, summary):
    """Every middleware row (a broadcaster runs meanwhile: the middleware is at work),
    and the machine's load average before and after (requests/s on a loaded machine blur)."""
    results["middleware: load average (1 min) before"] = summary([os.getloadavg()[0]])
    port = free_port()
    proc = broadcaster(port)
    try:
        in_process_rows(results, summary, port, free_port())
        rate_rows(results, summary, port, free_port)
    finally:
        stop(proc)
    results["middleware: load average (1 min) after"] = summary([os.getloadavg()[0]])


def app_main(kind, port, wrapped):
    from sigreload.middleware import ASGIMiddleware, WSGIMiddleware

    if kind == "uvicorn":
        import uvicorn

        uvicorn.run(ASGIMiddleware(asgi_app) if wrapped else asgi_app, host="127.0.0.1", port=port,
                    access_log=False, log_level="warning")
    else:  # Flask's dev server (Werkzeug, threaded, kept alive)
        import logging

        from flask import Flask, Response, request

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app = Flask(__name__)

        @app.route("/page")
        def page():
            return Response(PAGE, mimetype="text/html")

        @app.route("/<name>")
        def small(name):
            assert request.method == "GET"
            return Response(SMALL, mimetype="text/css")

        if wrapped:
            app.wsgi_app = WSGIMiddleware(app.wsgi_app)
        app.run(host="127.0.0.1", port=port, threaded=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["app"]:
        app_main(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1")
    else:
        sys.path.insert(0, str(HERE.parent / "tests"))
        from apps import free_port

        def summary(values):
            ordered = sorted(values)
            return {"median": statistics.median(ordered), "p90": ordered[int(0.9 * (len(ordered) - 1))],
                    "max": ordered[-1], "n": len(ordered)}

        figures = {}
        rows(figures, free_port, summary)
        for name, s in figures.items():
            print(f"{name:<70} {s['median']:>9.1f} {s['p90']:>9.1f} {s['max']:>9.1f} {s['n']:>4}")
