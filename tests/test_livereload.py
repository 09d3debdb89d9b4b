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
def livereload_site(procs, tmp_path):
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
    return tmp_path, f"http://127.0.0.1:{http_port}/", lr_port


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
