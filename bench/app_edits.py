"""An edit that leaves the page as it was (a comment in the rendered template),
behind an app server: save -> the page loaded again, and where the time goes.
Measures, never asserts.

    python3 bench/app_edits.py [--kind django|flask|uvicorn] [--mode proxy|pasted|middleware] [--edits 7]

Runs the real app server (Django's runserver, Flask --debug, uvicorn --reload
with Starlette and Jinja2) and ``python -m sigreload`` (``--proxy``, or
``--no-http --app`` beside a pasted snippet or Django's middleware), drives
headless Chromium (Debian's, through Playwright), and prints, per edit and
as medians, in seconds from the save: ``look`` (Django's reloader's next look
ended: its main thread ran and sleeps again), ``told`` (the page's console says
it reloads), ``asked`` (the reload's request went out), ``first_byte``,
``loaded`` (its load event), ``total`` (as the test side saw the load) and
``past_look`` (``loaded`` after Django's look: what is not Django's second).
Saves are spaced at random, so they fall anywhere in Django's second.
"""

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

PAGE = "<!doctype html><html><head><title>t</title>{head}</head><body><h1 id='out'>same</h1>{comment}</body></html>"
SETTINGS = ("SECRET_KEY = 'bench'\nDEBUG = True\nROOT_URLCONF = 'urls'\nINSTALLED_APPS = []\nMIDDLEWARE = {chain}\n"
            "DATABASES = {{}}\nALLOWED_HOSTS = ['*']\nTEMPLATES = [{{'BACKEND': "
            "'django.template.backends.django.DjangoTemplates', 'DIRS': ['templates']}}]\n")
URLS = ("from django.shortcuts import render\nfrom django.urls import path\n\n"
        "urlpatterns = [path('', lambda request: render(request, 'index.html'))]\n")
FLASK = ("from flask import Flask, render_template\n\napp = Flask(__name__)\n\n\n"
         "@app.route('/')\ndef index():\n    return render_template('index.html')\n")
STARLETTE = ("from starlette.applications import Starlette\nfrom starlette.routing import Route\n"
             "from starlette.templating import Jinja2Templates\n\n"
             "templates = Jinja2Templates(directory='templates')\n\n\n"
             "async def index(request):\n    return templates.TemplateResponse(request, 'index.html')\n\n"
             "app = Starlette(routes=[Route('/', index)])\n")
CONNECTED = "window[Symbol.for('sigreload')] && window[Symbol.for('sigreload')].connected"
TIMING = ("(() => { const n = performance.getEntriesByType('navigation')[0];"
          " return [performance.timeOrigin, n.requestStart, n.responseStart, n.loadEventEnd]; })()")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            r.read()
        return True
    except OSError:
        return False


def wait(predicate, seconds, what):
    end = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > end:
            sys.exit(f"bench/app_edits.py: {what} not within {seconds} s")
        time.sleep(0.05)


def write_app(folder, kind, mode, ws_port):
    """The app's files, and the command that serves it on ``port`` (a format field)."""
    (folder / "templates").mkdir(parents=True)
    head = f"<script src='http://127.0.0.1:{ws_port}/reload.js'></script>" if mode == "pasted" else ""
    (folder / "templates" / "index.html").write_text(PAGE.format(head=head, comment=""))
    py = [sys.executable, "-u"]
    if kind == "django":
        chain = ["sigreload.middleware.DjangoMiddleware"] if mode == "middleware" else []
        (folder / "settings.py").write_text(SETTINGS.format(chain=chain))
        (folder / "urls.py").write_text(URLS)
        return head, py + ["-m", "django", "runserver", "127.0.0.1:{port}"]
    if kind == "flask":
        (folder / "app.py").write_text(FLASK)
        return head, py + ["-m", "flask", "--app", "app", "run", "--debug", "--port", "{port}"]
    (folder / "app.py").write_text(STARLETTE)
    return head, py + ["-m", "uvicorn", "app:app", "--reload", "--port", "{port}", "--lifespan", "off"]


class Looks:
    """When the main thread of process ``pid`` (Django's reloader) ended each run (/proc, Linux)."""

    def __init__(self, pid):
        self.path, self.ends, self.stop = f"/proc/{pid}/task/{pid}/schedstat", [], threading.Event()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        last, running = None, False
        while not self.stop.is_set():
            try:
                with open(self.path) as f:
                    now = int(f.read().split()[0])
            except OSError:
                return
            if last is not None and now != last:
                running = True
            elif running:
                self.ends.append(time.time())
                running = False
            last = now
            time.sleep(0.002)

    def after(self, t):
        return next((e for e in self.ends if e > t + 0.005), float("nan"))


def measure(kind, mode, edits, folder):
    port, http_port, ws_port = free_port(), free_port(), free_port()
    head, argv = write_app(folder, kind, mode, ws_port)
    env = {**os.environ, "SIGRELOAD_WS_PORT": str(ws_port), "DJANGO_SETTINGS_MODULE": "settings",
           "PYTHONPATH": str(folder)}
    procs = [subprocess.Popen([a.format(port=port) for a in argv], cwd=folder, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        app_url = f"http://127.0.0.1:{port}/"
        wait(lambda: answers(app_url), 30, "the app's answer")
        front = ["--proxy", app_url.rstrip("/"), "--port", str(http_port)] if mode == "proxy" else [
            "--no-http", "--app", app_url]
        log = folder.parent / "sigreload.log"
        with open(log, "w") as out:
            procs.append(subprocess.Popen([sys.executable, "-m", "sigreload", str(folder), *front, "--ws-port",
                                           str(ws_port)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        url = f"http://127.0.0.1:{http_port}/" if mode == "proxy" else app_url
        wait(lambda: "watching" in log.read_text() and answers(url), 30, "sigreload")
        import psutil

        looks = Looks(psutil.Process(procs[0].pid).children()[-1].pid) if kind == "django" else None
        return edit(url, folder / "templates" / "index.html", head, edits, looks)
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()


def edit(url, template, head, edits, looks):
    from playwright.sync_api import sync_playwright

    rows, told = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page()
        page.on("console", lambda m: told.append(time.time()) if m.text.startswith("sigreload: reload") else None)
        page.goto(url)
        page.wait_for_function(CONNECTED)
        for n in range(1, edits + 1):
            page.wait_for_timeout(1000 + random.randint(0, 1000))
            told.clear()
            fresh = template.with_name(".index.html.new")
            fresh.write_text(PAGE.format(head=head, comment=f"{{# {n} #}}"))
            with page.expect_event("load", timeout=10_000):
                saved = time.time()
                os.replace(fresh, template)
            total = time.time() - saved
            origin, asked, first, loaded = page.evaluate(TIMING)
            at = origin / 1000 - saved
            rows.append({"look": (looks.after(saved) - saved) if looks else float("nan"),
                         "told": (told[0] - saved) if told else float("nan"), "asked": at + asked / 1000,
                         "first_byte": at + first / 1000, "loaded": at + loaded / 1000, "total": total})
            rows[-1]["past_look"] = rows[-1]["loaded"] - rows[-1]["look"]  # ours, once Django looked
            page.wait_for_function(CONNECTED)
        browser.close()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=["django", "flask", "uvicorn"], default="django")
    parser.add_argument("--mode", choices=["proxy", "pasted", "middleware"], default="proxy")
    parser.add_argument("--edits", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(args.kind, args.mode, args.edits, Path(tmp) / "app")
    for row in rows:
        print("  ".join(f"{k} {v:.3f}" for k, v in row.items()))
    print(f"{args.kind}, {args.mode}, medians of {len(rows)}: "
          + "  ".join(f"{k} {statistics.median(r[k] for r in rows):.3f}" for k in rows[0]))


if __name__ == "__main__":
    main()
