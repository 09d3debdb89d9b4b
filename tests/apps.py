"""Real app servers for the tests and the benchmark: Flask (Werkzeug's stat and
watchdog reloaders), Django's runserver and uvicorn --reload, each serving one
view whose output names a version, in a folder of its own.

``App(kind, folder, start, snippet)`` writes the app, starts its dev server
(with ``start``, e.g. the procs fixture) on a free port and waits until it
answers; ``edit(version)`` saves the view as an editor would.
"""

import contextlib
import errno
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

PAGE = ("<!doctype html><html><head><meta charset='utf-8'><title>app</title></head>"
        "<body><h1 id='out'>{version}</h1>{snippet}</body></html>")

FLASK = '''from flask import Flask

app = Flask(__name__)
VERSION = "{version}"


@app.route("/")
def index():
    return {page!r}.format(version=VERSION)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port={port}, debug=True, reloader_type="stat")
'''

DJANGO_MANAGE = '''import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
'''
DJANGO_SETTINGS = '''SECRET_KEY = "only-for-a-test"
DEBUG = True
ROOT_URLCONF = "urls"
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {}
'''
DJANGO_URLS = '''from django.urls import path

import views

urlpatterns = [path("", views.index)]
'''
DJANGO_VIEWS = '''from django.http import HttpResponse

VERSION = "{version}"


def index(request):
    return HttpResponse({page!r}.format(version=VERSION))
'''

UVICORN = '''VERSION = "{version}"


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = {page!r}.format(version=VERSION).encode()
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html; charset=utf-8")]}})
    await send({{"type": "http.response.body", "body": body}})
'''

KINDS = ("flask-stat", "flask-watchdog", "django", "uvicorn")


# Ports handed out come from below the kernel's range for outgoing connections
# (ip_local_port_range, 32768-60999 by default): a port the kernel gave for
# ("127.0.0.1", 0) could be an outgoing connection's end a moment later, and a
# --lan server's bind on every address then failed (2 of 800 tests, while
# other programs made thousands of connections). Each port once per run, in
# random order (a port next to one handed out is where a busy default moves).
PORTS = iter(random.Random(os.getpid()).sample(range(10000, 32000), 22000))


def free_port():
    """A free TCP port on every address (for tests and the benchmark)."""
    for port in PORTS:
        if not taken(socket.AF_INET, "0.0.0.0", port) and not taken(socket.AF_INET6, "::", port):
            return port
    raise RuntimeError("no free port left below 32000")


def taken(family, host, port):
    try:
        with socket.socket(family) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT one is free
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((host, port))
    except OSError as exc:
        return exc.errno == errno.EADDRINUSE  # (no IPv6 here: not taken)
    return False


def save(path, text):
    """Save like an editor does: write a temp file, rename it into place."""
    path = Path(path)
    tmp = path.with_name(path.name + ".sigreload-tmp~")
    tmp.write_text(text)
    os.replace(tmp, path)


def fetch(url, timeout=2.0):
    """The body at ``url``, or None when nothing answers (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode()
    except (OSError, http.client.HTTPException):  # refused, or cut off by a restart
        return None


class App:
    """One app server of ``kind`` serving ``folder`` on a free loopback port."""

    def __init__(self, kind, folder, start, snippet="", scale=1.0):
        self.kind, self.folder, self.snippet = kind, Path(folder), snippet
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.folder.mkdir(parents=True, exist_ok=True)
        if kind == "django":
            for name, text in (("manage.py", DJANGO_MANAGE), ("settings.py", DJANGO_SETTINGS),
                               ("urls.py", DJANGO_URLS)):
                (self.folder / name).write_text(text)
        self.edit("v0")
        py = [sys.executable, "-u"]
        argv = {
            "flask-stat": py + ["app.py"],
            "flask-watchdog": py + ["-m", "flask", "--app", "app", "run", "--debug", "--port", str(self.port)],
            "django": py + ["manage.py", "runserver", f"127.0.0.1:{self.port}"],
            "uvicorn": py + ["-m", "uvicorn", "app:app", "--reload", "--host", "127.0.0.1",
                             "--port", str(self.port), "--lifespan", "off"],
        }[kind]
        self.proc = start(argv, cwd=self.folder, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        self.wait_answers("v0", 30 * scale)

    @property
    def source(self):
        return self.folder / ("views.py" if self.kind == "django" else "app.py")

    def edit(self, version):
        """Save the view so that it answers ``version``."""
        page = PAGE.replace("{snippet}", self.snippet)
        template = {"django": DJANGO_VIEWS, "uvicorn": UVICORN}.get(self.kind, FLASK)
        save(self.source, template.format(version=version, page=page, port=self.port))

    def wait_answers(self, version, seconds):
        """Block until the app answers with ``version`` (its own restart time)."""
        end, tick = time.monotonic() + seconds, threading.Event()
        while f">{version}<" not in (fetch(self.url) or ""):
            if time.monotonic() > end:
                raise AssertionError(f"{self.kind} did not answer {version} within {seconds:.0f}s")
            tick.wait(0.01)  # no event announces it: asking the app is what is measured


PROBE = """
import json, sys, threading, time
from websockets.sync.client import connect
with connect(f"ws://127.0.0.1:{sys.argv[1]}{sys.argv[2]}", open_timeout=10) as ws:
    if sys.argv[2] == "/sigreload":
        ws.recv(timeout=10)  # its hello
    trips, done = [], threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    print("probing", flush=True)
    while not done.is_set():
        began = time.monotonic()
        if not ws.ping().wait(30):
            break
        trips.append((began, time.monotonic() - began))
        time.sleep(0.002)
print(json.dumps(trips), flush=True)
"""


class Probe:
    """Pings the broadcaster on ``port`` again and again, from a process of its
    own (the clients it watches would hold this one's GIL): the longest round
    trip within a window is how long the broadcaster was blocked."""

    def __init__(self, port, path="/sigreload"):
        import subprocess

        self.proc = subprocess.Popen([sys.executable, "-c", PROBE, str(port), path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "probing"
        self.trips = []

    def stop(self):
        """Stop probing; the round trips, as (began, seconds)."""
        if self.proc.poll() is None:
            out, _ = self.proc.communicate("", timeout=60)
            self.trips = json.loads(out or "[]")
        return self.trips

    def longest(self, since, until=None):
        """The longest round trip (ms) that began in [since, until]."""
        return 1000 * max((t for b, t in self.trips if b >= since and (until is None or b <= until)), default=0.0)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def crowd(port, count=4000, settle=1.5, path="/sigreload"):
    """``count`` snippets connect to the broadcaster on ``port`` at once, each
    says what its page uses, then all drop at once: (longest ms the broadcaster
    was blocked while they joined, while they dropped), from a Probe."""
    import asyncio

    from websockets.asyncio.client import connect

    probe = Probe(port, path)
    try:
        began = time.monotonic()

        async def one(i):
            ws = await connect(f"ws://127.0.0.1:{port}{path}", open_timeout=60, ping_interval=None)
            if path == "/sigreload":  # a snippet: its hello, then what its page uses
                await ws.recv()
                await ws.send(f'{{"type": "using", "paths": ["/page{i}.html", "/style.css"]}}')
            return ws

        clients = await asyncio.gather(*(one(i) for i in range(count)))
        await asyncio.sleep(settle)
        dropped_at = time.monotonic()
        for ws in clients:
            ws.transport.abort()
        await asyncio.sleep(settle)
        probe.stop()
        return probe.longest(began, dropped_at), probe.longest(dropped_at)
    finally:
        probe.close()


class Forwarder:
    """A port forwarder, as SSH -L or docker -p: connections to its own
    loopback port go to ``target``, byte for byte; with ``tls``, TLS ends here
    (as Codespaces' and Gitpod's HTTPS fronts). Each socket is closed by the
    thread that uses it, once done (a socket closed under a thread that still
    reads it frees its number for the next file opened: a child's lifeline)."""

    def __init__(self, target, tls=None):
        self.target, self.tls = target, tls
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.open = []
        self.threads = [threading.Thread(target=self.accept, daemon=True)]
        self.threads[0].start()

    def accept(self):
        with self.server:
            while True:
                try:
                    conn, _ = self.server.accept()
                except OSError:
                    return  # shut down
                thread = threading.Thread(target=self.forward, args=(conn,), daemon=True)
                self.threads.append(thread)
                thread.start()

    def forward(self, conn):
        try:
            if self.tls:
                conn = self.tls.wrap_socket(conn, server_side=True)
            upstream = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            conn.close()
            return
        self.open += [conn, upstream]
        back = threading.Thread(target=self.pump, args=(upstream, conn), daemon=True)
        back.start()
        self.pump(conn, upstream)
        back.join()
        conn.close()
        upstream.close()

    @staticmethod
    def pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        for sock in [self.server, *self.open]:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes its thread, which closes it
            except OSError:
                pass
        for thread in self.threads:
            thread.join(10)


@contextlib.contextmanager
def network_host(tag):
    """A NetworkHost made for the test and deleted after; skipped without root and
    iproute2 (a failure in CI, where the LAN tests must run)."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        if os.environ.get("CI"):
            pytest.fail("the LAN tests need root and iproute2 in CI")
        pytest.skip("a network namespace needs root and iproute2 (ip)")
    host = NetworkHost(tag)
    try:
        host.make()
        yield host
    finally:
        host.delete()


@contextlib.contextmanager
def network_devices(tag, count):
    """A network_host with ``count`` more source addresses on it: (host, addresses),
    each address one device of the LAN (a phone, a laptop, an attacker's)."""
    with network_host(tag) as host:
        net = host.there.rsplit(".", 1)[0]
        sources = [f"{net}.{n}" for n in range(3, 3 + count)]
        for address in sources:
            host.ip("addr", "add", f"{address}/24", "dev", "eth9", inside=True)
        yield host, sources


def lan_stack(procs, tmp_path, server, **popen):
    """`sigreload --lan` serving a one-page site (``server`` "files"), or its proxy in
    front of a stock http.server serving it ("proxy"), waited for: (stack, HTTP port)."""
    from conftest import module

    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>mine</title><h1>mine</h1>")
    port, extra = free_port(), []
    if server == "proxy":
        app = free_port()
        procs([sys.executable, "-u", "-m", "http.server", app, "--bind", "127.0.0.1", "--directory", site]
              ).wait_for("Serving HTTP")
        extra = ["--proxy", f"http://127.0.0.1:{app}"]
    stack = procs(module("sigreload") + [site, "--lan", "--port", port, "--ws-port", free_port(), *extra], **popen)
    stack.wait_stack(30)  # the HTTP server's line too: on 3.13 in CI the proxy listened after "watching"
    return stack, port


class NetworkHost:
    """A second host for the test: a network namespace of its own, joined to
    this machine by a veth pair (root only). ``here`` is this machine's address
    on that link, ``there`` the host's; ``run`` runs a command on the host."""

    def __init__(self, tag):
        self.name, self.link = f"sigreload-{tag}", f"srh{tag}"
        net = 16 + tag % 200
        self.here, self.there = f"10.213.{net}.1", f"10.213.{net}.2"
        self.made = False

    def ip(self, *args, inside=False):
        argv = ["ip", "netns", "exec", self.name, "ip", *args] if inside else ["ip", *args]
        subprocess.run(argv, check=True, capture_output=True, text=True)

    def make(self):
        self.ip("netns", "add", self.name)
        self.made = True
        self.ip("link", "add", self.link, "type", "veth", "peer", "name", "eth9", "netns", self.name)
        self.ip("addr", "add", f"{self.here}/24", "dev", self.link)
        self.ip("link", "set", self.link, "up")
        self.ip("addr", "add", f"{self.there}/24", "dev", "eth9", inside=True)
        self.ip("link", "set", "eth9", "up", inside=True)
        self.ip("link", "set", "lo", "up", inside=True)

    def run(self, argv, **kwargs):
        return subprocess.run(["ip", "netns", "exec", self.name, *map(str, argv)], **kwargs)

    def delete(self):
        if self.made:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True)  # its end of the pair too
            subprocess.run(["ip", "link", "del", self.link], capture_output=True)
