"""An app that answers, in Chromium, on a real Django: answering is an HTTP
answer, not an accepted connection (Django under uvicorn that hangs in an
import takes connections and never answers), and an app stopped and started
by hand, with no edit, is said in the page and comes back (the middleware:
nothing else asks the app between edits)."""

import os
import sys
import threading

import pytest

from apps import fetch, save
from conftest import SCALE, free_port, module, open_page, until

SETTINGS = ("SECRET_KEY = 'only-for-a-test'\nDEBUG = True\nROOT_URLCONF = 'urls'\nINSTALLED_APPS = []\n"
            "MIDDLEWARE = {middleware}\nDATABASES = {{}}\nALLOWED_HOSTS = ['*']\n")
ASGI = ("import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'settings')\n"
        "from django.core.asgi import get_asgi_application\napplication = get_asgi_application()\n")
# Django imports its URLconf on the first request, not when uvicorn starts it: a hang there is
# a process that takes connections and never answers. It hangs until the test creates "go".
URLS = ("from pathlib import Path\nimport time\n{hang}"
        "from django.http import HttpResponse\nfrom django.urls import path\n\n"
        "PAGE = \"<!doctype html><html><head></head><body><h1 id='out'>{text}</h1></body></html>\"\n"
        "urlpatterns = [path('', lambda request: HttpResponse(PAGE))]\n")
HANG = "while not Path(__file__).with_name('go').exists():\n    time.sleep(0.05)\n"
DOWN = "Your app does not answer"  # the watcher's notice over every page


class DjangoASGI:
    """Django under uvicorn on a free port (``reload``: uvicorn --reload), with
    sigreload's middleware (``middleware``) or not; ``start``/``stop`` by hand."""

    def __init__(self, procs, folder, middleware, reload=True):
        self.procs, self.folder, self.reload = procs, folder, reload
        self.port, self.ws_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        folder.mkdir(parents=True)
        chain = ["sigreload.middleware.DjangoMiddleware"] if middleware else []
        (folder / "settings.py").write_text(SETTINGS.format(middleware=chain))
        (folder / "asgi.py").write_text(ASGI)
        self.edit("v0")
        self.start()

    def edit(self, text, hang=False):
        save(self.folder / "urls.py", URLS.format(text=text, hang=HANG if hang else ""))

    def start(self):
        argv = [sys.executable, "-u", "-m", "uvicorn", "asgi:application", "--host", "127.0.0.1",
                "--port", str(self.port), "--lifespan", "off"] + (["--reload"] if self.reload else [])
        env = {**os.environ, "SIGRELOAD_WS_PORT": str(self.ws_port), "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = self.procs(argv, cwd=self.folder, env=env)
        until(lambda: fetch(self.url) is not None, 30 * SCALE, "Django under uvicorn answers")

    def stop(self):
        self.proc.kill()
        until(lambda: fetch(self.url, 0.5) is None, 10 * SCALE, "the app's port closed")


def with_sigreload(procs, app, mode):
    """sigreload beside the app (the middleware: --no-http --app) or in front of it (--proxy): (Proc, page URL)."""
    if mode == "proxy":
        main = procs(module("sigreload") + [app.folder, "--proxy", app.url, "--port", free_port(),
                                            "--ws-port", app.ws_port])
        url = main.wait_seen(r"proxying \S+ at (http://\S+/)").group(1)
    else:
        main = procs(module("sigreload") + [app.folder, "--no-http", "--app", app.url, "--ws-port", app.ws_port])
        url = app.url
    for ready in ("ready on", "watching"):
        main.wait_seen(ready, 20)
    if mode == "middleware":
        tag = f'src="http://127.0.0.1:{app.ws_port}/reload.js"'
        until(lambda: tag in (fetch_page(url) or ""), 5 * SCALE, "the broadcaster is found")
    return main, url


def fetch_page(url):
    import urllib.request

    try:
        request = urllib.request.Request(url, headers={"Sec-Fetch-Dest": "document"})
        with urllib.request.urlopen(request, timeout=5 * SCALE) as answer:
            return answer.read().decode()
    except OSError:
        return None


def loads_of(page):
    loads = []
    page.on("load", lambda p: loads.append(p.url))
    return loads


@pytest.mark.parametrize("mode", ["middleware", "proxy"])
def test_django_under_uvicorn_that_hangs_in_an_import_is_said_down_and_comes_back_once_it_answers(
        mode, procs, tmp_path, page):
    """uvicorn's restarted child takes connections at once; Django imports the
    URLconf on the first request, which hangs: before, a connection taken was
    "answering", the page reloaded onto a request that hung, with no word."""
    app = DjangoASGI(procs, tmp_path / "app", middleware=mode == "middleware")
    main, url = with_sigreload(procs, app, mode)
    loads = loads_of(page)
    open_page(page, url)
    app.edit("v1", hang=True)
    page.locator("sigreload-notice").get_by_text(DOWN).wait_for(timeout=20_000 * SCALE)
    assert loads == [url], loads  # still the page, the notice over it: no reload into a request that hangs
    with page.expect_event("load", timeout=30_000 * SCALE):
        (app.folder / "go").touch()
    assert page.locator("#out").inner_text() == "v1"
    page.locator("sigreload-notice").wait_for(state="detached", timeout=10_000 * SCALE)
    assert "takes connections but does not answer" in main.output() or "does not answer and waits" in \
        main.output(), main.output()


def test_an_app_stopped_and_started_by_hand_with_the_middleware_is_said_and_comes_back(procs, tmp_path, page):
    """No edit: the watcher looks (a TCP connect, at most once a second) while a page is open."""
    app = DjangoASGI(procs, tmp_path / "app", middleware=True, reload=False)
    main, url = with_sigreload(procs, app, "middleware")
    loads = loads_of(page)
    open_page(page, url)
    app.stop()
    page.locator("sigreload-notice").get_by_text(DOWN).wait_for(timeout=10_000 * SCALE)
    assert page.locator("sigreload-notice").get_by_text("stopped by hand?").count() == 1
    assert loads == [url], loads
    app.edit("v1")  # uvicorn without --reload: the edit shows only once started again
    with page.expect_event("load", timeout=20_000 * SCALE):
        app.start()
    assert page.locator("#out").inner_text() == "v1"
    page.locator("sigreload-notice").wait_for(state="detached", timeout=10_000 * SCALE)
    # the broadcaster says what it told the page, one line each (before: "css sent to 1 page(s) ()")
    main.wait_seen(r"app back: reload sent to 1 page\(s\) \(/urls\.py\)")
    assert main.output().count("app down: said to 1 page(s)") == 1, main.output()
    assert "sent to 1 page(s) ()" not in main.output(), main.output()


def test_no_page_open_no_look_and_a_page_open_a_look_at_most_once_a_second():
    """The Waiter between saves: pages() is asked at most once a second; the app's
    port is looked at only when it says pages are open."""
    import socket
    import time

    from sigreload import app_lookout, app_server

    with socket.socket() as held:  # a port that refuses: bound, not listening
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        sent, asked, open_now = [], [], threading.Event()
        said = threading.Event()

        def pages():
            asked.append(time.monotonic())
            return open_now.is_set()

        app_server.Waiter(url=f"http://127.0.0.1:{port}", send=lambda paths, what: (sent.append(what), said.set()),
                          pages=pages)
        until(lambda: len(asked) >= 2, 5 * SCALE, "two looks at whether pages are open")
        assert not sent, sent  # nothing open: the app was not looked at, nothing said
        open_now.set()
        assert said.wait(5 * SCALE), "an app gone while a page is open is said"
        assert sent[0].startswith(app_server.DOWN) and app_lookout.GONE in sent[0], sent
        assert app_server.notice(sent[0]).startswith(DOWN)
        gaps = [b - a for a, b in zip(asked, asked[1:], strict=False)]
        assert all(gap >= app_lookout.EVERY * 0.9 for gap in gaps), gaps


def test_behind_the_proxy_a_django_template_the_page_does_not_render_reloads_nothing_once_django_read_anew(
        procs, tmp_path, page):
    """Django's cached loader serves the old template until its reloader looks
    (each second): the proxy asked again and again for 1.6 s while the page
    stayed as it was (an edit of a template it does not render: 1.9-2.1 s from
    the save). The first such edit now waits for Django's one look (asked for
    once more then); from then on, Django's template cache having been emptied,
    a template the app never read is no page's: decided at once, no reload."""
    import time

    from test_proxy_apps import django_app, proxied

    app, app_port = django_app(procs, tmp_path)
    main, url = proxied(procs, tmp_path, app_port)
    loads = loads_of(page)
    open_page(page, url)
    asked, began = app.output().count('"GET / HTTP'), time.monotonic()
    with page.expect_event("load", timeout=10_000 * SCALE):  # Django's cache may hold anything: reload
        save(tmp_path / "templates" / "part.html", "<li>part 1</li>")
    first = time.monotonic() - began
    until(lambda: app.output().count('"GET / HTTP') > asked, 5 * SCALE, "the app's log line for the page")
    page.wait_for_timeout(200)  # another ask would be in the log now
    assert app.output().count('"GET / HTTP') - asked <= 2, app.output()  # before: 1 + 5 asked again
    took = []
    for n in (2, 3, 4):
        said = main.output().count("no page rendered it")
        began = time.monotonic()
        save(tmp_path / "templates" / "part.html", f"<li>part {n}</li>")
        until(lambda: main.output().count("no page rendered it") > said, 10 * SCALE, "the watcher's decision")
        took.append(time.monotonic() - began)
        page.wait_for_timeout(300)  # a load would come now
        assert len(loads) == 2, loads
    for n in (1, 2):  # the page's own template: its new text, on the first load
        with page.expect_event("load", timeout=10_000 * SCALE):
            save(tmp_path / "templates" / "page.html", f"<!doctype html><html><body><h1 id='out'>w{n}</h1></body>")
        assert page.locator("#out").inner_text() == f"w{n}"
    print(f"save -> load, the first one (Django's look): {first:.2f}s; save -> decided (no load), then: "
          f"{', '.join(f'{t:.2f}s' for t in took)}")
