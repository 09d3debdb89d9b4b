"""The middleware in real frameworks, in Chromium: Flask (WSGI), Django
(runserver, and ASGI under uvicorn), FastAPI and Starlette (uvicorn
--reload), each with the README's recipe line as written, started as its
user starts it, beside ``sigreload . --no-http --app URL`` (the README's
command). Per framework: inert before sigreload runs, a streamed page gets
the snippet in its first chunk, a fetch() answer is untouched, a stylesheet
is swapped without a load, a template edit (Django: a page with
{% csrf_token %} and the cached loader) and a .py edit each show on the one
load after them."""

import os
import re
import socket
import sys
import urllib.request

import pytest

from apps import fetch, save
from conftest import ROOT, SCALE, free_port, module, open_page, until

KINDS = ["flask", "django", "django-asgi", "fastapi", "starlette"]
FRAGMENT = "<p id='frag'>only a fragment</p>"


def readme_lines():
    """The lines of the README's "Inside your app" section that the tests use, as written there."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Inside your app\n", 1)[1].split("\n## ", 1)[0]
    code = [line.strip() for line in section.splitlines() if line.startswith("    ")]

    def one(pattern):
        found = [line for line in code if re.search(pattern, line)]
        assert len(found) >= 1, f"no recipe line matching {pattern!r} in the README"
        return found[0]

    return {
        "import wsgi": one(r"^from sigreload\.middleware import WSGIMiddleware$"),
        "import asgi": one(r"^from sigreload\.middleware import ASGIMiddleware$"),
        "flask": one(r"^app\.wsgi_app = WSGIMiddleware\(app\.wsgi_app\)$"),
        "fastapi": one(r"^app\.add_middleware\(ASGIMiddleware\)$"),
        "asgi": one(r"^app = ASGIMiddleware\(app\)$"),
        "django": one(r"^MIDDLEWARE \+= \[\"sigreload\.middleware\.DjangoMiddleware\"\]$"),
        "command": one(r"^sigreload \. --no-http --app http://127\.0\.0\.1:5000$"),
    }


PARTS = f'''import asyncio
import os
import time

FRAGMENT = {FRAGMENT!r}
HEAD = "<!doctype html><html><head><title>streamed</title></head>"
REST = "<body><p id='streamed'>the rest</p></body></html>"
GO = os.environ["SIGRELOAD_TEST_GO"]  # the test says when the rest may come


def streamed():
    yield HEAD
    end = time.monotonic() + 60
    while not os.path.exists(GO) and time.monotonic() < end:
        time.sleep(0.01)
    yield REST


async def astreamed():
    yield HEAD
    end = time.monotonic() + 60
    while not os.path.exists(GO) and time.monotonic() < end:
        await asyncio.sleep(0.01)
    yield REST
'''

TEMPLATE = ('<!doctype html><html><head><meta charset="utf-8"><title>app</title>\n'
            '<link rel="stylesheet" href="/static/style.css"></head>\n'
            '<body><h1 id="out">{{{{ version }}}}</h1><p id="tpl">{edit}</p>\n'
            '<form method="post">{csrf}</form></body></html>\n')

FLASK = '''from flask import Flask, Response, render_template
{import wsgi}

import parts

VERSION = "{version}"
app = Flask(__name__)
{flask}


@app.route("/")
def index():
    return render_template("index.html", version=VERSION)


@app.route("/frag")
def frag():
    return parts.FRAGMENT


@app.route("/stream")
def stream():
    return Response(parts.streamed(), mimetype="text/html")
'''

FASTAPI = '''from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
{import asgi}

import parts

VERSION = "{version}"
app = FastAPI()
{fastapi}
templates = Jinja2Templates(directory="templates")
app.mount("/static", StaticFiles(directory="static"), name="static")


@app.get("/", response_class=HTMLResponse)
async def index(request: Request):
    return templates.TemplateResponse(request, "index.html", {{"version": VERSION}})


@app.get("/frag", response_class=HTMLResponse)
async def frag():
    return parts.FRAGMENT


@app.get("/stream")
async def stream():
    return StreamingResponse(parts.astreamed(), media_type="text/html")
'''

STARLETTE = '''from starlette.applications import Starlette
from starlette.responses import HTMLResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
{import asgi}

import parts

VERSION = "{version}"
templates = Jinja2Templates(directory="templates")


async def index(request):
    return templates.TemplateResponse(request, "index.html", {{"version": VERSION}})


async def frag(request):
    return HTMLResponse(parts.FRAGMENT)


async def stream(request):
    return StreamingResponse(parts.astreamed(), media_type="text/html")


app = Starlette(routes=[Route("/", index), Route("/frag", frag), Route("/stream", stream),
                        Mount("/static", StaticFiles(directory="static"))])
{asgi}
'''

DJANGO_MANAGE = '''import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
'''
DJANGO_ASGI = '''import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
from django.core.asgi import get_asgi_application

application = get_asgi_application()
'''
DJANGO_SETTINGS = '''from pathlib import Path

SECRET_KEY = "only-for-a-test"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "urls"
INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.csrf.CsrfViewMiddleware"]
{django}
TEMPLATES = [{{"BACKEND": "django.template.backends.django.DjangoTemplates",
              "DIRS": [Path(__file__).resolve().parent / "templates"]}}]
DATABASES = {{}}
'''
DJANGO_URLS = '''from django.urls import path

import views

urlpatterns = [path("", views.index), path("frag", views.frag), path("stream", views.stream),
               path("lazy", views.lazy), path("static/style.css", views.css)]
'''
DJANGO_VIEWS = '''from pathlib import Path

from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string

import parts

VERSION = "{version}"


def index(request):
    return render(request, "index.html", {{"version": VERSION}})


def frag(request):
    return HttpResponse(parts.FRAGMENT)


def stream(request):  # under ASGI an async iterator streams; under runserver, a sync one
    return StreamingHttpResponse(parts.astreamed() if hasattr(request, "scope") else parts.streamed())


def lazy(request):  # a template rendered as the body is read, after the view returned
    def pieces():
        yield "<!doctype html><html><head><title>lazy</title></head><body>"
        yield render_to_string("lazy.html")
        yield "</body></html>"

    async def apieces():
        for piece in pieces():
            yield piece
    return StreamingHttpResponse(apieces() if hasattr(request, "scope") else pieces())


def css(request):
    return HttpResponse((Path(__file__).parent / "static" / "style.css").read_text(), content_type="text/css")
'''


class Live:
    """One framework's app with the middleware, started as its user starts it."""

    def __init__(self, kind, procs, tmp_path):
        self.kind, self.folder, self.go = kind, tmp_path / "app", tmp_path / "go"
        self.lines, self.procs = readme_lines(), procs
        self.port, self.ws_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        (self.folder / "templates").mkdir(parents=True)
        (self.folder / "static").mkdir()
        (self.folder / "parts.py").write_text(PARTS)
        self.css("rgb(1, 2, 3)")
        self.template("t0")
        if kind.startswith("django"):
            for name, text in (("manage.py", DJANGO_MANAGE), ("asgi.py", DJANGO_ASGI), ("urls.py", DJANGO_URLS),
                               ("settings.py", DJANGO_SETTINGS.format(**self.lines))):
                (self.folder / name).write_text(text)
        self.edit("v0")
        py = [sys.executable, "-u"]
        uvicorn = ["-m", "uvicorn", "--reload", "--host", "127.0.0.1", "--port", str(self.port), "--lifespan", "off"]
        argv = {
            "flask": py + ["-m", "flask", "--app", "app", "run", "--debug", "--port", str(self.port)],
            "django": py + ["manage.py", "runserver", f"127.0.0.1:{self.port}"],
            "django-asgi": py + uvicorn + ["asgi:application"],
            "fastapi": py + uvicorn + ["main:app"],
            "starlette": py + uvicorn + ["main:app"],
        }[kind]
        env = {**os.environ, "SIGRELOAD_WS_PORT": str(self.ws_port), "PYTHONDONTWRITEBYTECODE": "1",
               "SIGRELOAD_TEST_GO": str(self.go)}
        self.app = procs(argv, cwd=self.folder, env=env)
        until(lambda: fetch(self.url) is not None, 30, f"{kind} answers")

    @property
    def source(self):
        return self.folder / {"flask": "app.py", "fastapi": "main.py", "starlette": "main.py"}.get(self.kind,
                                                                                                 "views.py")

    def edit(self, version):
        template = {"flask": FLASK, "fastapi": FASTAPI, "starlette": STARLETTE}.get(self.kind, DJANGO_VIEWS)
        save(self.source, template.format(version=version, **self.lines))

    def template(self, text):
        csrf = "{% csrf_token %}" if self.kind.startswith("django") else ""
        save(self.folder / "templates" / "index.html", TEMPLATE.format(edit=text, csrf=csrf))

    def css(self, color):
        save(self.folder / "static" / "style.css", f"h1 {{ color: {color} }}\n")

    def get(self, path):
        request = urllib.request.Request(self.url + path.lstrip("/"), headers={"Sec-Fetch-Dest": "document"})
        with urllib.request.urlopen(request, timeout=10 * SCALE) as answer:
            return answer.read().decode()

    def start_sigreload(self):
        """The README's command, naming this app, its broadcaster on ws_port."""
        words = self.lines["command"].split()
        assert words[:2] == ["sigreload", "."]
        argv = module("sigreload") + [w if not w.startswith("http://") else self.url for w in words[1:]]
        self.sigreload = self.procs(argv + ["--ws-port", self.ws_port], cwd=self.folder)
        for ready in ("ready on", "watching"):
            self.sigreload.wait_seen(ready, 20)


def streamed_first_chunk(live):
    """The streamed page: the snippet arrives before the app sends its second chunk."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=20 * SCALE) as s:
        s.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nSec-Fetch-Dest: document\r\n"
                  b"Connection: close\r\n\r\n" % live.port)
        data = b""
        while b"</head>" not in data:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        assert b"reload.js" in data and b"the rest" not in data, data
        live.go.touch()
        while chunk := s.recv(65536):
            data += chunk
    assert b"the rest" in data
    return data


def loads_of(page):
    loads = []
    page.on("load", lambda p: loads.append(p.url))
    return loads


@pytest.mark.parametrize("kind", KINDS)
def test_middleware_in_the_framework(kind, procs, tmp_path, page):
    live = Live(kind, procs, tmp_path)
    assert "reload.js" not in live.get("/"), "no broadcaster runs: nothing is inserted"
    live.start_sigreload()
    tag = f'src="http://127.0.0.1:{live.ws_port}/reload.js"'
    until(lambda: tag in live.get("/"), 5, "the broadcaster is found (looked for at most once a second)")
    streamed_first_chunk(live)

    loads = loads_of(page)
    open_page(page, live.url)  # the inserted snippet got its hello
    assert page.evaluate("fetch('/frag').then((r) => r.text())") == FRAGMENT
    assert page.locator("#out").inner_text() == "v0"

    live.css("rgb(0, 128, 0)")
    page.wait_for_function("getComputedStyle(document.getElementById('out')).color === 'rgb(0, 128, 0)'",
                           timeout=10_000 * SCALE)
    assert len(loads) == 1, loads

    for n, text in enumerate(("t1", "t2"), start=2):
        page.wait_for_timeout(1100)  # the defect of the issue: an edit more than a second after the load
        with page.expect_event("load", timeout=10_000 * SCALE):
            live.template(text)
        assert page.locator("#tpl").inner_text() == text
        assert len(loads) == n, loads

    with page.expect_event("load", timeout=40_000 * SCALE):
        live.edit("v1")
    assert page.locator("#out").inner_text() == "v1"
    assert page.locator("#tpl").inner_text() == "t2"
    assert len(loads) == 4, loads


@pytest.mark.parametrize("kind", ["flask", "fastapi"])
def test_a_broken_view_shows_over_the_page_and_the_fix_reloads_it(kind, procs, tmp_path, page):
    live = Live(kind, procs, tmp_path)
    live.start_sigreload()
    tag = f'src="http://127.0.0.1:{live.ws_port}/reload.js"'
    until(lambda: tag in live.get("/"), 5, "the broadcaster is found")
    open_page(page, live.url)
    source = live.source.read_text()
    save(live.source, source.replace('VERSION = "v0"', 'VERSION = 1 / 0'))  # the restarted app fails to import
    # Flask's server answers with its error page, drawn over the page; uvicorn's child exits: nothing
    # answers, which the page says (the watcher's notice)
    shown = "sigreload-error" if kind == "flask" else "sigreload-notice"
    page.wait_for_selector(shown, state="attached", timeout=40_000 * SCALE)
    with page.expect_event("load", timeout=40_000 * SCALE):
        live.edit("v1")
    assert page.locator("#out").inner_text() == "v1"


DOWN = "Your app does not answer"  # the notice every page shows while the watcher finds the app down


@pytest.mark.parametrize("kind", ["fastapi", "flask"])
def test_an_app_that_does_not_answer_is_said_in_the_page_which_comes_back_by_itself(kind, procs, tmp_path, page):
    """FastAPI: the restarted app fails to import (uvicorn's parent keeps the
    socket, nothing answers) until the fix. Flask: the restarted app takes
    its time at import (a database not up yet) and answers by itself. Either
    way the page says so while the app does not answer, and reloads once it
    does, onto the new output, the notice gone."""
    live = Live(kind, procs, tmp_path)
    live.start_sigreload()
    tag = f'src="http://127.0.0.1:{live.ws_port}/reload.js"'
    until(lambda: tag in live.get("/"), 5, "the broadcaster is found")
    loads = loads_of(page)
    open_page(page, live.url)
    notice = page.locator("sigreload-notice").get_by_text(DOWN)
    source = live.source.read_text().replace('VERSION = "v0"', 'VERSION = "v1"')
    with page.expect_event("load", timeout=60_000 * SCALE):
        if kind == "fastapi":
            save(live.source, source.replace('VERSION = "v1"', "VERSION = 1 / 0"))
            notice.wait_for(timeout=40_000 * SCALE)
            assert loads == [live.url]  # still the page, the notice over it
            save(live.source, source)
        else:
            save(live.source, f"import time\ntime.sleep({8 * SCALE})\n{source}")
            notice.wait_for(timeout=40_000 * SCALE)
            assert loads == [live.url]
    assert page.locator("#out").inner_text() == "v1"
    page.locator("sigreload-notice").wait_for(state="detached", timeout=10_000 * SCALE)
    page.wait_for_timeout(300)  # a second load would come now
    assert loads == [live.url] * 2, loads


@pytest.mark.parametrize("kind", ["django", "django-asgi"])
def test_a_django_template_no_page_rendered_reloads_nothing_at_once_and_one_it_rendered_reloads(
        kind, procs, tmp_path, page):
    """The middleware tells the watcher which templates the pages rendered: an
    edit of another one (an htmx partial's) is decided at once, no load; an
    edit of the page's own template reloads it (the cached loader's old copy never shown)."""
    import time

    live = Live(kind, procs, tmp_path)
    save(live.folder / "templates" / "partial.html", "<li>p0</li>")
    live.start_sigreload()
    tag = f'src="http://127.0.0.1:{live.ws_port}/reload.js"'
    until(lambda: tag in live.get("/"), 5, "the broadcaster is found")
    loads = loads_of(page)
    open_page(page, live.url)
    took = []
    for n in (1, 2):
        said = live.sigreload.output().count("no page rendered it")
        began = time.monotonic()
        save(live.folder / "templates" / "partial.html", f"<li>p{n}</li>")
        until(lambda: live.sigreload.output().count("no page rendered it") > said, 10, "the watcher's decision")
        took.append(time.monotonic() - began)
        page.wait_for_timeout(500)  # a load would come now
        assert loads == [live.url], loads
    print(f"{kind}: save -> decided, for a template no page rendered: {', '.join(f'{t:.2f}s' for t in took)}")
    with page.expect_event("load", timeout=10_000 * SCALE):
        live.template("t1")
    assert page.locator("#tpl").inner_text() == "t1"


@pytest.mark.parametrize("kind", ["django", "django-asgi"])
def test_a_template_a_streamed_django_page_renders_as_it_streams_is_one_it_rendered(kind, procs, tmp_path, page):
    """r33n3: a StreamingHttpResponse whose generator renders a template after the
    view returned: that template went unrecorded, and its edits were dropped as
    no page's once another page had been recorded (the page kept its old text)."""
    live = Live(kind, procs, tmp_path)
    save(live.folder / "templates" / "lazy.html", "<p id='lazy'>lazy 1</p>")
    live.start_sigreload()
    tag = f'src="http://127.0.0.1:{live.ws_port}/reload.js"'
    until(lambda: tag in live.get("/"), 5, "the broadcaster is found")
    open_page(page, live.url)  # a page recorded: index.html
    open_page(page, live.url + "lazy")
    assert page.locator("#lazy").inner_text() == "lazy 1"
    with page.expect_event("load", timeout=10_000 * SCALE):
        save(live.folder / "templates" / "lazy.html", "<p id='lazy'>lazy 2</p>")
    assert page.locator("#lazy").inner_text() == "lazy 2"
    assert "lazy.html changed: no page rendered it" not in live.sigreload.output()


@pytest.mark.parametrize("kind", ["django", "django-asgi"])
def test_after_the_forms_post_a_django_template_edit_shows(kind, procs, tmp_path, page):
    """r32n4: after the CSRF form's POST, a template edit reloaded the page by a GET (a
    POST is never sent again), which carries no Cache-Control: the cached loaders were
    not reset and the old template showed, 2 of 2."""
    live = Live(kind, procs, tmp_path)
    live.start_sigreload()
    tag = f'src="http://127.0.0.1:{live.ws_port}/reload.js"'
    until(lambda: tag in live.get("/"), 5, "the broadcaster is found")
    open_page(page, live.url)
    with page.expect_navigation():
        page.evaluate("document.forms[0].submit()")  # POST /, answered with the page
    page.wait_for_function("!!document.querySelector('script[data-sigreload-posted]')")
    for text in ("t1", "t2"):
        page.wait_for_timeout(1100)  # more than a second after the load: the cached loader holds the old one
        with page.expect_event("load", timeout=10_000 * SCALE):
            live.template(text)
        page.wait_for_function(f"document.getElementById('tpl').textContent === '{text}'", timeout=5_000 * SCALE)
