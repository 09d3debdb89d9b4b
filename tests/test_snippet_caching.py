"""What a reload costs in requests: the snippet sigreload's servers insert has a
versioned URL the browser keeps (immutable); any other of its URLs (the
broadcaster's pasted /reload.js, overlay.js, idiomorph.js) revalidates without a
body (ETag, 304) while the file is the same."""

import http.client
import re
from urllib.parse import urlsplit

import pytest

from conftest import ROOT, free_port, module
from sigreload.serving import snippet

SOURCE = (ROOT / "snippet" / "reload.js").read_bytes()


def get(base, path, headers=None):
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def revalidates(base, path):
    """``path``: no-cache with an ETag, then 304 and no body for that ETag; the same with a stale ?v=."""
    first, body = get(base, path)
    assert first.status == 200 and first.headers["Cache-Control"] == "no-cache" and first.headers["ETag"]
    again, empty = get(base, path, {"If-None-Match": first.headers["ETag"]})
    assert again.status == 304 and empty == b"" and again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Cache-Control"] and "Content-Length" not in again.headers  # RFC 9110 8.6: not 0
    changed, body2 = get(base, path, {"If-None-Match": '"another"'})
    assert changed.status == 200 and body2 == body
    return body


@pytest.fixture(params=["file server", "proxy"])
def own_server(request, procs, site):
    """(base URL, a page's path) of sigreload's file server, or its proxy (no app behind it)."""
    if request.param == "file server":
        proc = procs(module("http_server") + [site, "--port", "0", "--inject", str(free_port())])
        return proc.wait_for(r"at (http://\S+/)").group(1), "/index.html"
    proc = procs(module("sigreload") + [site, "--proxy", f"http://127.0.0.1:{free_port()}",
                                        "--port", free_port(), "--ws-port", free_port()])
    return proc.wait_seen(r"proxying \S+ at (http://\S+/)").group(1), "/"


def test_the_inserted_snippet_is_versioned_and_kept_immutable(own_server):
    base, page = own_server
    _, html = get(base, page)
    src = re.search(rb'<script src="(/_sigreload/reload\.js\?v=[0-9a-f]+)"', html)
    assert src, html[:500]
    response, body = get(base, src.group(1).decode())
    assert response.status == 200 and body == SOURCE
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert revalidates(base, "/_sigreload/reload.js") == SOURCE  # unversioned (or pasted): asked again
    assert revalidates(base, "/_sigreload/reload.js?v=0123456789abcdef") == SOURCE  # another version: not kept
    assert revalidates(base, "/_sigreload/overlay.js") == (ROOT / "snippet" / "overlay.js").read_bytes()


def test_the_version_follows_the_file(tmp_path, monkeypatch):
    (tmp_path / "reload.js").write_text("one")
    monkeypatch.setattr(snippet, "folder", lambda: tmp_path)
    first = snippet.tag("/_sigreload/reload.js")
    (tmp_path / "reload.js").write_text("two, longer")
    assert snippet.tag("/_sigreload/reload.js") != first
    assert snippet.tag("http://127.0.0.1:5678/reload.js") == b'<script src="http://127.0.0.1:5678/reload.js"></script>'


def test_the_broadcasters_reload_js_revalidates_without_a_body(broadcaster):
    _, port = broadcaster
    assert revalidates(f"http://127.0.0.1:{port}/", "/reload.js") == SOURCE
