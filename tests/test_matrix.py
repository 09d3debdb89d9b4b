"""The browser matrix: after a save the page shows exactly what was saved, in
Chromium, Firefox and WebKit (the ``tab`` fixture), against our HTTP server
and against stock ``python -m http.server`` (whose headers let browsers cache
heuristically and which answers If-Modified-Since in whole seconds).

Sites are either a day old (browsers cache such files heuristically) or
freshly saved: then each edit is two saves back to back, within one second
of each other and of the page's load. Each case is written once, against
``engines.Tab``; the test pages count their own loads (sessionStorage), keep
their WebSockets in ``window.sockets``, and the snippet says whether its socket
is open, so no engine-specific events are needed.
"""

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, SCALE, free_port, module, write

SNIPPET = (ROOT / "snippet" / "reload.js").read_text()
DAY = 24 * 3600
COUNTER = """<script>
sessionStorage.setItem("loads", +(sessionStorage.getItem("loads") || 0) + 1);
window.errors = []; addEventListener("error", (e) => errors.push(String(e.message)));
window.sockets = [];
window.WebSocket = class extends WebSocket { constructor(...a) { super(...a); sockets.push(this); } };
</script>"""
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{name}</title>""" + COUNTER.replace("{", "{{").replace("}", "}}") + """
<link rel="stylesheet" href="style.css"></head>
<body><h1 id="title">{title}</h1>
<img id="pic" src="pic.svg">
<div style="height: 5000px">tall</div>
<script src="app.js"></script>
{snippet}
</body></html>
"""
# (window.sockets cannot say it: an inserted snippet runs first in <head>, before the page's own scripts)
CONNECTED = ("(window[Symbol.for('sigreload')]?.connected === true"
             " || (window.sockets || []).some((s) => s.readyState === 1))")  # the seed's snippet: not ours
LOADS = "+sessionStorage.getItem('loads')"


def svg(width):
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="10"></svg>'


def make_site(root, snippet, age):
    root.mkdir(exist_ok=True)
    for name in ("index", "other"):
        (root / f"{name}.html").write_text(PAGE.format(name=name, title=f"{name} v1", snippet=snippet))
    (root / "plain.html").write_text(PAGE.format(name="plain", title="plain", snippet=snippet)
                                     .replace('<link rel="stylesheet" href="style.css">', "")
                                     .replace('<script src="app.js"></script>', "")
                                     .replace('<img id="pic" src="pic.svg">', ""))
    (root / "style.css").write_text("h1 { color: rgb(0, 0, 255); }")
    (root / "app.js").write_text('window.appVersion = "v1";')
    (root / "pic.svg").write_text(svg(10))
    if age == "old":  # long unmodified: browsers cache such files heuristically
        old = time.time() - DAY
        for path in root.iterdir():
            os.utime(path, (old, old))


def inline(port):
    return f'<script data-port="{port}">\n{SNIPPET}</script>'


class Live:
    """A site, the broadcaster, the watcher and an HTTP server: all real processes."""

    def __init__(self, procs, tmp_path, server, include="inline", watch=True, age="old", file_pages=False,
                 morph=False, files=None):
        self.procs, self.server, self.age, self.file_pages, self.morph = procs, server, age, file_pages, morph
        self.root = tmp_path / "site"
        self.ws_port = free_port()
        self.broadcaster = self.start_broadcaster()
        self.snippet = {"inline": inline(self.ws_port),
                        "src": f'<script src="http://127.0.0.1:{self.ws_port}/reload.js"></script>',
                        "blog": BLOG_SNIPPET.replace("5678", str(self.ws_port))}[include]  # same code, free port
        make_site(self.root, self.snippet, age)  # before the watcher starts: setup is no edit
        for name, text in (files or {}).items():  # ``files(snippet)``: more of the site, as {name: text}
            (self.root / name).write_text(text(self.snippet) if callable(text) else text)
        if watch:
            watcher = procs(module("watcher") + [self.root, "--ws-port", self.ws_port, "--interval", "0.05"])
            watcher.wait_for("watching")
        if server == "ours":
            http = procs(module("http_server") + [self.root, "--port", "0"])
            self.url = http.wait_for(r"at (http://\S+/)").group(1)
        else:
            port = free_port()
            http = procs([sys.executable, "-u", "-m", "http.server", port, "--bind", "127.0.0.1"], cwd=self.root)
            http.wait_for("Serving HTTP")
            self.url = f"http://127.0.0.1:{port}/"

    def start_broadcaster(self):
        proc = self.procs(module("broadcaster") + ["--port", self.ws_port] + ["--allow-file-pages"] * self.file_pages
                          + ["--morph"] * self.morph)
        proc.wait_for("ready on")
        return proc

    def restart_broadcaster(self):
        self.broadcaster.popen.send_signal(signal.SIGTERM)
        assert self.broadcaster.exit_code() == 0
        self.broadcaster = self.start_broadcaster()

    def edit(self, name, text):
        """Save ``name``. A fresh site saves it twice, back to back, each time with
        the mtime of the save before (several saves within one second)."""
        path = self.root / name
        if self.age == "old":
            return write(path, text)
        then = path.stat().st_mtime
        for version in (text + "\n", text):
            tmp = path.with_name(path.name + ".sigreload-tmp~")
            tmp.write_text(version)
            os.utime(tmp, (then, then))
            os.replace(tmp, path)

    def page(self, title, name="index"):
        return PAGE.format(name=name, title=title, snippet=self.snippet)


@pytest.fixture(params=[("ours", "old"), ("stock", "old"), ("ours", "fresh"), ("stock", "fresh")],
                ids=lambda p: "-".join(p))
def live(request, procs, tmp_path):
    server, age = request.param
    return Live(procs, tmp_path, server, age=age)


def open_page(tab, url):
    """Load ``url`` and wait until its snippet is connected."""
    tab.goto(url)
    tab.wait_for(CONNECTED, 10 * SCALE)


@contextlib.contextmanager
def reloaded(tab, seconds=10):
    """The tab's next load, with its snippet connected again."""
    before = tab.evaluate(LOADS)
    yield
    tab.wait_for(f"{LOADS} > {before} && document.readyState === 'complete' && {CONNECTED}", seconds * SCALE)


def quiet(seconds=1.0):
    """Let the page run for ``seconds``: the absence of reloads is what is tested."""
    threading.Event().wait(seconds * SCALE)


def title(tab):
    return tab.evaluate("document.getElementById('title').textContent")


def color(tab):
    return tab.evaluate("getComputedStyle(document.querySelector('h1')).color")


def test_html_edit_reloads_with_the_new_text(live, tab):
    open_page(tab, live.url)
    with reloaded(tab):
        live.edit("index.html", live.page("index v2"))
    tab.wait_for("document.getElementById('title').textContent === 'index v2'", 5 * SCALE)
    quiet(0.5)
    assert title(tab) == "index v2" and tab.evaluate(LOADS) <= 3  # the two saves: one or two loads


def test_stylesheet_edit_applies_without_reload_and_never_unstyled(live, tab):
    open_page(tab, live.url)
    tab.evaluate("""(() => {
        window.marker = 42; scrollTo(0, 700);
        window.unstyled = 0;
        new MutationObserver(() => {
            const loaded = [...document.querySelectorAll('link[rel=stylesheet]')].filter((l) => l.sheet);
            if (!loaded.length) window.unstyled++;
        }).observe(document.head, {childList: true});
    })()""")
    live.edit("style.css", "h1 { color: rgb(255, 0, 0); }")
    tab.wait_for("getComputedStyle(document.querySelector('h1')).color === 'rgb(255, 0, 0)'", 5 * SCALE)
    tab.wait_for("document.querySelectorAll('link[rel=stylesheet]').length === 1", 5 * SCALE)
    assert tab.evaluate("[window.marker, scrollY, window.unstyled]") == [42, 700, 0]


def test_script_edit_reloads_and_runs_the_new_script(live, tab):
    open_page(tab, live.url)
    assert tab.evaluate("appVersion") == "v1"
    for version in ("v2", "v3"):  # twice: nothing stale after a reload either
        with reloaded(tab):
            live.edit("app.js", f'window.appVersion = "{version}";')
        tab.wait_for(f"window.appVersion === '{version}'", 5 * SCALE)
        assert color(tab) == "rgb(0, 0, 255)"


def test_stylesheet_and_script_fresh_after_a_full_reload(live, tab):
    """Both changed while only a reload is sent: no stale cached copy survives."""
    open_page(tab, live.url)
    (live.root / "style.css").write_text("h1 { color: rgb(0, 128, 0); }")
    with reloaded(tab):
        live.edit("app.js", 'window.appVersion = "both";')
    tab.wait_for("window.appVersion === 'both'", 5 * SCALE)
    assert color(tab) == "rgb(0, 128, 0)"


def test_page_edit_shows_the_current_stylesheet_and_script(live, tab):
    """The stylesheet and script changed (and were swapped or reloaded), then the page."""
    open_page(tab, live.url)
    live.edit("style.css", "h1 { color: rgb(9, 9, 9); }")
    tab.wait_for("getComputedStyle(document.querySelector('h1')).color === 'rgb(9, 9, 9)'", 5 * SCALE)
    with reloaded(tab):
        live.edit("app.js", 'window.appVersion = "v7";')
    with reloaded(tab):
        live.edit("index.html", live.page("index v7"))
    tab.wait_for("document.getElementById('title').textContent === 'index v7'", 5 * SCALE)
    assert [color(tab), tab.evaluate("appVersion")] == ["rgb(9, 9, 9)", "v7"]


def test_image_edit_shows_the_new_image(live, tab):
    """Our server: the image is swapped in place (no reload). Another server: a reload."""
    open_page(tab, live.url)
    tab.evaluate("window.marker = 'kept'")
    assert tab.evaluate("document.getElementById('pic').naturalWidth") == 10
    loads = tab.evaluate(LOADS)
    live.edit("pic.svg", svg(20))
    tab.wait_for("document.getElementById('pic') && document.getElementById('pic').naturalWidth === 20", 5 * SCALE)
    if live.server == "ours":
        assert tab.evaluate("window.marker") == "kept" and tab.evaluate(LOADS) == loads


def test_full_reload_keeps_the_scroll_position(live, tab):
    open_page(tab, live.url)
    tab.evaluate("scrollTo(0, 1200)")
    tab.wait_for("scrollY === 1200", 5 * SCALE)
    with reloaded(tab):
        live.edit("app.js", 'window.appVersion = "scrolled";')
    tab.wait_for("scrollY === 1200 && window.appVersion === 'scrolled'", 5 * SCALE)


def test_two_tabs_on_different_pages_both_update(live, tab):
    other = tab.browser.tab()
    try:
        open_page(tab, live.url + "index.html")
        open_page(other, live.url + "other.html")
        with reloaded(tab), reloaded(other):
            live.edit("app.js", 'window.appVersion = "tabs";')
        for t in (tab, other):
            t.wait_for("window.appVersion === 'tabs'", 5 * SCALE)
        assert title(other) == "other v1"
    finally:
        other.close()


def test_a_page_that_does_not_use_the_changed_file_stays(procs, tmp_path, tab):
    """Targeted reloads (our server): a script edit reloads the page that runs it only."""
    live = Live(procs, tmp_path, "ours")
    open_page(tab, live.url + "plain.html")
    tab.evaluate("window.marker = 'stayed'")
    live.edit("app.js", 'window.appVersion = "v2";')
    quiet(1.0)
    assert tab.evaluate("[window.marker, +sessionStorage.getItem('loads')]") == ["stayed", 1]


@pytest.mark.parametrize("server", ["ours", "stock"])
def test_kill_usr1_reloads_and_usr2_refreshes_stylesheets_only(procs, tmp_path, tab, server):
    live = Live(procs, tmp_path, server, watch=False)  # signals by hand only, nothing else
    open_page(tab, live.url)
    tab.evaluate("window.marker = 7")
    (live.root / "style.css").write_text("h1 { color: rgb(1, 2, 3); }")  # written directly
    os.kill(live.broadcaster.pid, signal.SIGUSR2)
    tab.wait_for("getComputedStyle(document.querySelector('h1')).color === 'rgb(1, 2, 3)'", 5 * SCALE)
    assert tab.evaluate("window.marker") == 7
    with reloaded(tab):
        os.kill(live.broadcaster.pid, signal.SIGUSR1)
    assert tab.evaluate("window.marker === undefined")


def test_no_reload_on_first_connect_and_at_most_one_per_restart(procs, tmp_path, tab):
    """Reconnects: a restarted broadcaster is found again, without reload loops."""
    live = Live(procs, tmp_path, "ours")
    open_page(tab, live.url)
    quiet()
    assert tab.evaluate(LOADS) == 1  # the first load only
    with reloaded(tab):
        live.restart_broadcaster()
    for _ in range(4):  # five restarts within ten seconds in all
        live.restart_broadcaster()
    tab.wait_for(CONNECTED, 10 * SCALE)  # (on a loaded machine its next try came after 2 s: 3 loads, not 2)
    quiet(2.0)
    settled = tab.evaluate(LOADS)
    assert 2 <= settled <= 6
    quiet(2.0)
    assert tab.evaluate(LOADS) == settled  # never a loop
    tab.wait_for(CONNECTED, 10 * SCALE)
    with reloaded(tab):  # and it still works
        os.kill(live.broadcaster.pid, signal.SIGUSR1)


def test_one_line_include_from_the_broadcaster(procs, tmp_path, tab):
    live = Live(procs, tmp_path, "ours", include="src")
    open_page(tab, live.url)
    with reloaded(tab):
        live.edit("index.html", live.page("src v2"))
    assert title(tab) == "src v2"


BLOG_SNIPPET = """<script>
const host = `${window.location.protocol}//${window.location.hostname}`;
const socketUrl = `ws://${window.location.hostname}:5678`;
const webSocket = new WebSocket(socketUrl);
webSocket.onmessage = () => { window.location.reload(); };
</script>"""


def test_the_original_blog_snippet_works_and_never_loops(procs, tmp_path, tab):
    live = Live(procs, tmp_path, "ours", include="blog")
    open_page(tab, live.url)
    quiet(0.5)
    assert tab.evaluate(LOADS) == 1
    with reloaded(tab):
        live.edit("index.html", live.page("blog v2"))
    assert title(tab) == "blog v2"
    with reloaded(tab):
        os.kill(live.broadcaster.pid, signal.SIGUSR2)  # plain clients get "reload" for USR2 too
    settled = tab.evaluate(LOADS)
    quiet(1.5)
    assert tab.evaluate(LOADS) == settled == 3


def test_file_url_page_reloads_without_errors_with_allow_file_pages(procs, tmp_path, tab):
    live = Live(procs, tmp_path, "ours", file_pages=True)  # Origin: null is refused unless asked for
    open_page(tab, (live.root / "index.html").as_uri())
    with reloaded(tab):
        os.kill(live.broadcaster.pid, signal.SIGUSR1)
    assert tab.evaluate("window.errors") == []


@pytest.fixture
def https_site(tmp_path):
    """A page served over https (a self-signed certificate): its URL."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    (tmp_path / "index.html").write_text(PAGE.format(name="https", title="https", snippet=inline(5999)))
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=tmp_path))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_https_page_uses_wss_without_errors(https_site, tab):
    tab.goto(https_site)
    tab.wait_for("window.sockets.length > 0", 5 * SCALE)
    # (nothing listens there: retried every 200 ms, the same URL)
    assert tab.evaluate("[...new Set(window.sockets.map((s) => s.url))]") == ["wss://127.0.0.1:5999/sigreload"]
    assert tab.evaluate("window.errors") == []


def test_injected_snippet_reloads_a_page_that_has_none(procs, tmp_path, tab):
    root = tmp_path / "plain"
    make_site(root, "", "old")  # no snippet in the file
    ws_port = free_port()
    b = procs(module("broadcaster") + ["--port", ws_port])
    b.wait_for("ready on")
    w = procs(module("watcher") + [root, "--ws-port", ws_port])
    w.wait_for("watching")
    http = procs(module("http_server") + [root, "--port", "0", "--inject", ws_port])
    url = http.wait_for(r"at (http://\S+/)").group(1)
    open_page(tab, url)
    with reloaded(tab):
        write(root / "index.html", PAGE.format(name="index", title="injected v2", snippet=""))
    assert title(tab) == "injected v2"
    assert "reload.js" not in (root / "index.html").read_text()


def test_a_failed_build_shows_its_output_until_a_good_one(procs, tmp_path, tab):
    """The build-error overlay, in every engine."""
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    (src / "page.txt").write_text("good 1")
    build = (f"{sys.executable} -c \"import pathlib, sys; t = pathlib.Path('page.txt').read_text(); "
             f"'bad' in t and sys.exit('bad input in page.txt'); pathlib.Path('{out}/index.html').write_text("
             f"'<h1 id=title>' + t + '</h1>')\"")
    proc = procs(module("sigreload") + [src, "--exec", build, "--output", out, "--port", "0", "--ws-port", free_port()])
    url = proc.wait_seen(r"at (http://\S+/)").group(1)
    for ready in ("watching", "ready on"):
        proc.wait_seen(ready)
    tab.goto(url)
    tab.wait_for("document.getElementById('title').textContent === 'good 1'", 10 * SCALE)
    tab.wait_for("performance.getEntriesByType('resource').some((r) => /reload\\.js/.test(r.name))", 5 * SCALE)
    overlay = "(document.querySelector('sigreload-error') || {}).shadowRoot"
    write(src / "page.txt", "bad 2")
    tab.wait_for(f"{overlay} && {overlay}.textContent.includes('bad input in page.txt')", 10 * SCALE)
    write(src / "page.txt", "good 3")
    tab.wait_for("document.getElementById('title').textContent === 'good 3' "
                 "&& !document.querySelector('sigreload-error')", 10 * SCALE)


ESCAPED_COUNTER = COUNTER.replace("{", "{{").replace("}", "}}")  # inside a str.format template
FORM_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>form</title>""" + ESCAPED_COUNTER + """</head>
<body><h1 id="title">{title}</h1>
<form id="f">
<input id="name"><input name="email" type="email"><textarea name="note"></textarea>
<select name="one"><option>a</option><option>b</option></select>
<select name="many" multiple><option>x</option><option>y</option><option>z</option></select>
<input type="checkbox" name="agree"><input type="radio" name="size" value="s"><input type="radio" name="size" value="l">
<input type="password" name="pw"><input type="hidden" name="secret" value="orig">
<input name="otp" autocomplete="one-time-code"><input name="nope" autocomplete="off">
{changing}
</form>
<div contenteditable="true" id="editor">start</div>
<details id="more"><summary>more</summary>inside</details>
<div id="panel" style="height: 100px; overflow: auto"><div style="height: 1000px">tall</div></div>
<div data-sigreload-keep="off"><input name="optout"></div>
{snippet}
</body></html>
"""
TYPED = """(() => {
  const f = document.forms.f, set = (el, v) => { el.value = v; };
  set(document.getElementById("name"), "Ada Lovelace"); set(f.email, "ada@example.com"); set(f.note, "line 1\\nline 2");
  f.one.value = "b"; [...f.many.options].forEach((o) => { o.selected = o.value !== "y"; });
  f.agree.checked = true; f.size[1].checked = true;
  set(f.pw, "hunter2"); f.secret.value = "changed"; set(f.otp, "123456"); set(f.nope, "private");
  set(f.gone, "lost"); set(f.kind, "42");
  document.querySelector("[name=optout]").value = "mine";
  document.getElementById("editor").innerHTML = "typed <b>here</b>";
  document.getElementById("more").open = true;
  document.getElementById("panel").scrollTop = 300;
  const name = document.getElementById("name"); name.focus(); name.setSelectionRange(2, 6);
})()"""
STATE = """(() => {
  const f = document.forms.f;
  return {
    name: document.getElementById("name").value, email: f.email.value, note: f.note.value, one: f.one.value,
    many: [...f.many.options].filter((o) => o.selected).map((o) => o.value), agree: f.agree.checked,
    size: f.size.value, pw: f.pw.value, secret: f.secret.value, otp: f.otp.value, nope: f.nope.value,
    gone: f.gone ? f.gone.value : null, kind: f.kind ? f.kind.value : null,
    optout: document.querySelector("[name=optout]").value,
    editor: document.getElementById("editor").innerHTML, more: document.getElementById("more").open,
    panel: document.getElementById("panel").scrollTop,
    focus: document.activeElement.id,
    range: [document.activeElement.selectionStart, document.activeElement.selectionEnd],
  };
})()"""


@pytest.mark.parametrize("server", ["ours", "stock"])
def test_a_reload_sigreload_causes_gives_back_what_the_person_typed(procs, tmp_path, tab, server):
    before = '<input name="gone"><input name="kind" type="text">'
    live = Live(procs, tmp_path, server,
                files={"form.html": lambda snippet: FORM_PAGE.format(title="v1", changing=before, snippet=snippet)})
    open_page(tab, live.url + "form.html")
    tab.evaluate(TYPED)
    after = '<input name="kind" type="number">'  # "gone" removed, "kind" another type now
    with reloaded(tab):
        live.edit("form.html", FORM_PAGE.format(title="v2", changing=after, snippet=live.snippet))
    tab.wait_for("document.getElementById('title').textContent === 'v2' && document.getElementById('more').open",
                 5 * SCALE)
    assert tab.evaluate(STATE) == {
        "name": "Ada Lovelace", "email": "ada@example.com", "note": "line 1\nline 2", "one": "b",
        "many": ["x", "z"], "agree": True, "size": "l",
        "pw": "", "secret": "orig", "otp": "", "nope": "", "gone": None, "kind": "", "optout": "",
        "editor": "typed <b>here</b>", "more": True, "panel": 300, "focus": "name", "range": [2, 6]}
    tab.evaluate("location.reload()")  # a reload the person makes: sigreload gives back nothing
    tab.wait_for(f"{LOADS} >= 3 && document.readyState === 'complete' && {CONNECTED}", 10 * SCALE)
    state = tab.evaluate(STATE)
    assert (state["editor"], state["more"]) == ("start", False)  # no browser keeps these by itself
    tab.evaluate("document.getElementById('editor').innerHTML = 'typed again'")
    opted_out = FORM_PAGE.format(title="v3", changing=after, snippet=live.snippet).replace(
        "<html>", '<html data-sigreload-keep="off">', 1)  # the whole page opts out
    with reloaded(tab):
        live.edit("form.html", opted_out)
    tab.wait_for("document.getElementById('title').textContent === 'v3'", 5 * SCALE)
    assert tab.evaluate("document.getElementById('editor').innerHTML") == "start"


MORPH_PAGE = """<!doctype html>
<html{html}><head><meta charset="utf-8"><title>{title}</title>""" + ESCAPED_COUNTER + """{head}</head>
<body><h1 id="title">{title}</h1>
<input id="typed">
<div id="widget"></div>
{body}
<div style="height: 3000px">tall</div>
<script defer src="widget.js"></script>
{snippet}
</body></html>
"""
WIDGET = """// a third-party-style widget: DOM built at load, state in JavaScript
window.widget = { clicks: 0 };
const button = document.createElement("button");
button.id = "clicker";
button.onclick = () => { widget.clicks++; button.textContent = String(widget.clicks); };
document.getElementById("widget").append(button);
"""
MORPHED = """(() => ({
  title: document.title, h1: document.getElementById("title").textContent, marker: window.marker,
  typed: document.getElementById("typed").value, focus: document.activeElement.id,
  added: !!document.getElementById("added"), color: getComputedStyle(document.getElementById("title")).color,
  clicks: (document.getElementById("clicker").click(), widget.clicks),
}))()"""


@pytest.mark.parametrize("server", ["ours", "stock"])
def test_morph_applies_an_html_edit_in_place_and_reloads_when_a_script_changed(procs, tmp_path, tab, server):
    def first(snippet):
        return MORPH_PAGE.format(html="", title="v1", head="", body="", snippet=snippet)

    live = Live(procs, tmp_path, server, morph=True,
                files={"widget.js": WIDGET, "extra.css": "h1 { color: rgb(0, 128, 0); }", "morph.html": first})
    page = MORPH_PAGE.replace("{snippet}", live.snippet.replace("{", "{{").replace("}", "}}"))
    open_page(tab, live.url + "morph.html")
    tab.wait_for("!!window.Idiomorph && !!document.getElementById('clicker')", 10 * SCALE)
    tab.evaluate("""(() => { window.marker = "kept"; document.getElementById("clicker").click(); scrollTo(0, 500);
        const t = document.getElementById("typed"); t.value = "typing"; t.focus({ preventScroll: true }); })()""")
    live.edit("morph.html", page.format(html="", title="v2", head='<link rel="stylesheet" href="extra.css">',
                                        body='<p id="added">new</p>'))
    tab.wait_for("document.getElementById('title').textContent === 'v2' && !!document.getElementById('added')"
                 " && getComputedStyle(document.getElementById('title')).color === 'rgb(0, 128, 0)'", 10 * SCALE)
    assert tab.evaluate(MORPHED) == {"title": "v2", "h1": "v2", "marker": "kept", "typed": "typing", "focus": "typed",
                                     "added": True, "color": "rgb(0, 128, 0)", "clicks": 2}
    # <head> again: a stylesheet removed, a meta tag added; the scroll stays
    live.edit("morph.html", page.format(html="", title="v2b", head='<meta name="description" content="new">',
                                        body='<p id="added">new</p>'))
    tab.wait_for("document.title === 'v2b' && !!document.querySelector('meta[name=description]') && scrollY === 500",
                 10 * SCALE)  # (the title comes first: WebKit on a loaded machine was read before the scroll was back)
    assert tab.evaluate("""[getComputedStyle(document.getElementById('title')).color,
        document.querySelector('meta[name=description]').content, scrollY, window.marker]""") == [
        "rgb(0, 0, 0)", "new", 500, "kept"]
    assert tab.evaluate(LOADS) == 1  # no reload so far
    tab.evaluate("(() => { Idiomorph.morph = () => { throw new Error('a morph that fails'); }; })()")
    with reloaded(tab):  # the morph threw: the page reloads instead
        live.edit("morph.html", page.format(html="", title="v2c", head="", body=""))
    tab.wait_for("document.getElementById('title').textContent === 'v2c'", 10 * SCALE)
    with reloaded(tab):  # a script element changed: its new code must run, so the page reloads
        live.edit("morph.html", page.format(html="", title="v3", head="", body="<script>window.fresh = 1;</script>"))
    tab.wait_for("window.fresh === 1 && document.getElementById('title').textContent === 'v3'", 10 * SCALE)
    opted_out = ' data-sigreload-morph="off"'  # morphed in, then the page's next edit reloads it
    live.edit("morph.html", page.format(html=opted_out, title="v4", head="", body="<script>window.fresh = 1;</script>"))
    tab.wait_for("document.documentElement.dataset.sigreloadMorph === 'off'", 10 * SCALE)
    with reloaded(tab):
        live.edit("morph.html", page.format(html=opted_out, title="v5", head="",
                                            body="<script>window.fresh = 1;</script>"))
    tab.wait_for("document.getElementById('title').textContent === 'v5'", 10 * SCALE)
