"""The LiveReload protocol, with the real client from npm (livereload-js,
pinned in tests/node): a page served by a server that is not ours includes
livereload.js from sigreload's LiveReload port, as the browser extensions
and Jekyll's or Hugo's templates do, in Chromium."""

import os
import sys
import time
from pathlib import Path

import pytest

from conftest import SCALE, free_port, module, write

CLIENT = Path(__file__).parent / "node" / "node_modules" / "livereload-js" / "dist" / "livereload.min.js"
PAGE = """<!doctype html><html><head><link rel="stylesheet" href="style.css">
<script>document.addEventListener("LiveReloadConnect", () => {{ window.connected = true; }});</script>
</head><body><h1 id="title">{text}</h1><img id="pic" src="pic.svg">
<script src="http://127.0.0.1:{port}/livereload.js"></script></body></html>"""


def svg(width):
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="10"></svg>'


@pytest.fixture
def livereload_site(livereload_stack):
    return livereload_stack[:3]


@pytest.fixture
def livereload_stack(procs, tmp_path):
    """sigreload --livereload beside the stdlib's server of a site: (site, URL, LiveReload port, sigreload)."""
    if not CLIENT.exists():
        pytest.fail("livereload-js is missing: npm ci --prefix tests/node")
    lr_port = free_port()
    write(tmp_path / "index.html", PAGE.format(text="one", port=lr_port))
    write(tmp_path / "style.css", "h1 { color: rgb(0, 0, 255); }")
    write(tmp_path / "pic.svg", svg(10))
    old = time.time() - 60  # the stock http.server answers If-Modified-Since in whole seconds: no same-second 304
    for name in ("index.html", "style.css", "pic.svg"):
        os.utime(tmp_path / name, (old, old))
    main = procs(module("sigreload") + [tmp_path, "--no-http", "--ws-port", free_port(), "--livereload", lr_port])
    main.wait_seen(rf"LiveReload protocol on port {lr_port}")
    main.wait_seen("watching")
    http_port = free_port()  # not our server: the stdlib's, as it comes
    foreign = procs([sys.executable, "-m", "http.server", http_port, "--bind", "127.0.0.1", "-d", tmp_path])
    foreign.wait_for("Serving HTTP")
    return tmp_path, f"http://127.0.0.1:{http_port}/", lr_port, main


def test_livereload_js_is_the_clients_own_file(livereload_site):
    import urllib.request

    _, _, lr_port = livereload_site
    with urllib.request.urlopen(f"http://127.0.0.1:{lr_port}/livereload.js", timeout=10) as served:
        assert served.read().startswith(CLIENT.read_bytes())  # then our plugin: the page refetched before a reload


def test_the_real_livereload_client_swaps_a_stylesheet_and_an_image_and_reloads_on_an_html_edit(
        livereload_site, page):
    site, url, _ = livereload_site
    page.goto(url)
    page.wait_for_function("window.connected === true", timeout=10_000 * SCALE)
    page.evaluate("window.marker = 'kept'")
    write(site / "style.css", "h1 { color: rgb(255, 0, 0); }")
    page.wait_for_function("getComputedStyle(document.getElementById('title')).color === 'rgb(255, 0, 0)'")
    assert page.evaluate("window.marker") == "kept"  # swapped in place
    write(site / "pic.svg", svg(20))
    page.wait_for_function("document.getElementById('pic').naturalWidth === 20")  # liveImg: a new src, in place
    assert page.evaluate("window.marker") == "kept"
    with page.expect_event("load", timeout=10_000 * SCALE):
        write(site / "index.html", PAGE.format(text="two", port=livereload_site[2]))
    assert page.locator("#title").inner_text() == "two"


LR_SQUATTER = r'''
import asyncio, json, sys
from websockets.asyncio.server import serve
from websockets.http11 import Response
from websockets.datastructures import Headers

def script(connection, request):
    if request.path.startswith("/livereload.js"):
        print("served their script", flush=True)
        return Response(200, "OK", Headers({"Content-Type": "text/javascript"}), b"document.title = 'theirs';")

async def handler(ws):
    await ws.recv()
    await ws.send(json.dumps({"command": "hello", "protocols": ["http://livereload.com/protocols/official-7"]}))
    print("said hello", flush=True)
    while True:
        await ws.send(json.dumps({"command": "reload", "path": "/index.html", "liveCSS": True}))
        await asyncio.sleep(0.3)

async def main():
    async with serve(handler, "127.0.0.1", int(sys.argv[1]), process_request=script):
        print("listening", flush=True)
        await asyncio.Future()

asyncio.run(main())
'''


def test_a_livereload_page_never_reloads_for_a_server_on_the_freed_port(livereload_stack, procs, page):
    """LiveReload's protocol proves nothing: once sigreload stopped, another
    user's server on its port reloaded the tab into their script (r36a4, 4 of
    4). sigreload's plugin in the client asks for a proof, as the snippet does."""
    _, url, lr_port, main = livereload_stack
    said = []
    page.on("console", lambda m: said.append(m.text))
    loads = []
    page.on("load", lambda: loads.append(page.url))
    page.goto(url)
    page.wait_for_function("window.connected === true", timeout=10_000 * SCALE)
    main.kill()
    theirs = procs([sys.executable, "-u", "-c", LR_SQUATTER, lr_port])
    theirs.wait_for("listening")
    theirs.wait_for("said hello", 30)  # the client came back to the port
    page.wait_for_timeout(1500)  # five of their reloads by now
    assert loads == [url] and page.title() != "theirs", (loads, said)
    assert any("not the sigreload this page came from" in line for line in said), said
    assert "served their script" not in theirs.output()
