"""What a page holds that a reload must not trip over, with the middleware
in real frameworks, in Chromium (the README's recipe, as in
test_middleware_browser.py):

- an open EventSource: uvicorn --reload waits for open connections to close
  before it restarts, so the snippet closes the page's EventSources when the
  app restarts (else the old app and the page wait for each other for good);
- an answer to a POST: reloaded by a GET of its URL, never sent again (the
  middleware and the proxy mark the tag of an answer to anything but GET/HEAD)."""

import urllib.error
import urllib.request

import pytest
from test_middleware_browser import FASTAPI, FLASK, Live

from apps import App, save
from conftest import SCALE, free_port, module, open_page, until

EVENTS_ROUTE = '''

import asyncio as _asyncio


@app.get("/events")
async def events():
    async def ticks():
        while True:
            yield "data: tick\\n\\n"
            await _asyncio.sleep(0.5)
    return StreamingResponse(ticks(), media_type="text/event-stream")
'''

EVENTS_PAGE = ('<!doctype html><html><head><meta charset="utf-8"><title>events</title></head>\n'
               '<body><h1 id="out">{{{{ version }}}}</h1><p id="tpl">{edit}</p>\n'
               '<script>window.ticks = 0; window.source = new EventSource("/events");\n'
               'source.onmessage = () => {{ window.ticks++; }};</script></body></html>\n')

POST_ROUTES = '''

from flask import request as _request

POSTS = [0]


@app.route("/form", methods=["GET", "POST"])
def form():
    if _request.method == "POST":
        POSTS[0] += 1
    return render_template("form.html", version=VERSION, posts=POSTS[0])


@app.route("/posts")
def posts():
    return str(POSTS[0])
'''

FORM_PAGE = ('<!doctype html><html><head><meta charset="utf-8"><title>form</title></head>\n'
             '<body><h1 id="out">{{{{ version }}}}</h1><p id="tpl">{edit}</p><p id="posts">{{{{ posts }}}}</p>\n'
             '<form method="post"><input name="x" value="1"><button id="send">send</button></form>'
             '</body></html>\n')


class WithEvents(Live):
    """FastAPI under uvicorn --reload, its page with an EventSource open on a stream that never ends."""

    def edit(self, version):
        save(self.source, FASTAPI.format(version=version, **self.lines) + EVENTS_ROUTE)

    def template(self, text):
        save(self.folder / "templates" / "index.html", EVENTS_PAGE.format(edit=text))


class WithForm(Live):
    """Flask, a page at /form that counts the POSTs it answered."""

    def edit(self, version):
        save(self.source, FLASK.format(version=version, **self.lines) + POST_ROUTES)

    def template(self, text):
        super().template(text)
        save(self.folder / "templates" / "form.html", FORM_PAGE.format(edit=text))

    def posts(self):
        with urllib.request.urlopen(self.url + "posts", timeout=10 * SCALE) as answer:
            return int(answer.read())


def started(live):
    live.start_sigreload()
    tag = f'src="http://127.0.0.1:{live.ws_port}/reload.js"'
    until(lambda: tag in live.get("/"), 5, "the broadcaster is found")


def test_a_page_with_an_open_event_source_comes_back_after_a_py_edit(procs, tmp_path, page):
    live = WithEvents("fastapi", procs, tmp_path)
    started(live)
    open_page(page, live.url)
    page.wait_for_function("window.ticks > 0", timeout=10_000 * SCALE)  # the stream is open
    # the wrapper the snippet puts around EventSource is the same class to the page
    seen = page.evaluate("[source instanceof EventSource, EventSource.OPEN, EventSource.CLOSED, EventSource.name,"
                         " source.readyState, String(source)]")
    assert seen == [True, 1, 2, "EventSource", 1, "[object EventSource]"]
    with page.expect_event("load", timeout=60_000 * SCALE):
        live.edit("v1")
    assert page.locator("#out").inner_text() == "v1"
    page.wait_for_function("window.ticks > 0", timeout=10_000 * SCALE)  # and its stream open again


def test_a_page_that_answered_a_post_is_reloaded_by_a_get(procs, tmp_path, page):
    live = WithForm("flask", procs, tmp_path)
    started(live)
    open_page(page, live.url + "form")
    with page.expect_event("load", timeout=10_000 * SCALE):
        page.click("#send")
    page.wait_for_function("window[Symbol.for('sigreload')].connected", timeout=10_000 * SCALE)
    assert page.locator("#posts").inner_text() == "1"
    assert page.evaluate("Boolean(document.querySelector('script[data-sigreload-posted]'))")
    assert live.posts() == 1
    with page.expect_event("load", timeout=10_000 * SCALE):
        live.template("t1")
    assert page.locator("#tpl").inner_text() == "t1"
    assert page.locator("#posts").inner_text() == "1"
    assert live.posts() == 1, "the reload sent the form again"
    assert not page.evaluate("Boolean(document.querySelector('script[data-sigreload-posted]'))")


@pytest.mark.parametrize("app", ["down", "flask"])
def test_the_proxy_marks_its_answer_to_a_post(app, procs, broadcaster, tmp_path):
    """Behind the proxy too (the app's answer, Flask's 405 page; the proxy's own
    page for an app that does not answer): the tag in an answer to a POST is
    marked, in an answer to a GET not."""
    app_port = App("flask-stat", tmp_path, procs).port if app == "flask" else free_port()
    port = free_port()
    proxy = procs(module("http_server") + ["--proxy", f"http://127.0.0.1:{app_port}", "--port", port,
                                           "--inject", broadcaster[1]])
    proxy.wait_for("proxying")

    def page(method):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", method=method, data=b"x=1" if method == "POST"
                                         else None, headers={"Sec-Fetch-Dest": "document"})
        try:
            with urllib.request.urlopen(request, timeout=30 * SCALE) as answer:
                return answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.read().decode()

    posted, got = page("POST"), page("GET")
    assert "reload.js" in posted and "reload.js" in got, (posted, got)
    assert "data-sigreload-posted" in posted and "data-sigreload-posted" not in got
