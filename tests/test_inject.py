"""Injection by default: `sigreload` gives live reload to pages that carry no
snippet, leaves pages that include it alone, and a page that includes it twice
still holds one connection."""

import gzip
import urllib.request

import pytest

from conftest import ROOT, free_port, module, open_page, write

SNIPPET = (ROOT / "snippet" / "reload.js").read_text()
PAGE = "<!doctype html><html><head><meta charset='utf-8'></head><body><h1 id='title'>{title}</h1>{extra}</body></html>"


def start(procs, root, *flags, ws_port=None):
    """`sigreload ROOT` on free ports: (base URL, ws port, its output)."""
    ws_port = ws_port or free_port()
    proc = procs(module("sigreload") + [root, "--port", free_port(), "--ws-port", ws_port, *flags])
    url = proc.wait_seen(r"serving \S+ at (http://\S+/)").group(1)
    for ready in ("ready on", "watching"):
        proc.wait_seen(ready)
    return url, ws_port, proc


def body(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode(), r.headers


def test_a_page_without_the_snippet_gets_live_reload(procs, tmp_path, page):
    (tmp_path / "index.html").write_text(PAGE.format(title="v1", extra=""))
    url, ws_port, proc = start(procs, tmp_path)
    assert "the snippet is inserted into HTML pages" in proc.wait_seen("serving").string
    html, headers = body(url)
    assert html.count("reload.js") == 1 and int(headers["Content-Length"]) == len(html.encode())
    assert (tmp_path / "index.html").read_text().count("script") == 0  # on disk: untouched
    open_page(page, url)
    with page.expect_event("load"):
        write(tmp_path / "index.html", PAGE.format(title="v2", extra=""))
    assert page.locator("#title").inner_text() == "v2"


def test_a_page_that_includes_the_snippet_is_left_alone(procs, tmp_path):
    pasted = f"<script data-port='1'>{SNIPPET}</script>"
    (tmp_path / "pasted.html").write_text(PAGE.format(title="p", extra=pasted))
    (tmp_path / "line.html").write_text(PAGE.format(title="l", extra='<script src="reload.js"></script>'))
    url, _, _ = start(procs, tmp_path)
    assert body(url + "pasted.html")[0] == PAGE.format(title="p", extra=pasted)
    assert body(url + "line.html")[0].count("<script") == 1


def test_no_inject_serves_pages_as_they_are(procs, tmp_path):
    (tmp_path / "index.html").write_text(PAGE.format(title="v1", extra=""))
    url, _, proc = start(procs, tmp_path, "--no-inject")
    assert "where they include the snippet" in proc.wait_seen("serving").string
    assert "script" not in body(url)[0]


def test_a_page_with_the_snippet_twice_holds_one_connection(procs, tmp_path, page):
    ws_port = free_port()
    twice = (f'<script src="http://127.0.0.1:{ws_port}/reload.js"></script>'
             f"<script data-port='{ws_port}'>{SNIPPET}</script>")
    (tmp_path / "index.html").write_text(PAGE.format(title="v1", extra=twice))  # before the watcher: no edit
    url, _, _ = start(procs, tmp_path, "--no-inject", ws_port=ws_port)
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    open_page(page, url)  # both copies ran before the load event
    assert len(sockets) == 1, sockets
    with page.expect_event("load"):
        write(tmp_path / "index.html", PAGE.format(title="v2", extra=twice))
    assert page.locator("#title").inner_text() == "v2"
    assert len(sockets) == 2, sockets  # one per load


PLACES = [  # (page, the page with the snippet [S] where it goes)
    (b"<!doctype html><html><head><meta charset=utf-8><script>x()</script></head><body>b</body></html>",
     b"<!doctype html><html><head>[S]<meta charset=utf-8><script>x()</script></head><body>b</body></html>"),
    (b"\xef\xbb\xbf<!DOCTYPE html>\n<!-- <head> --><HTML lang=en><HEAD >t", b"\xef\xbb\xbf<!DOCTYPE html>\n"
     b"<!-- <head> --><HTML lang=en><HEAD >[S]t"),  # a byte-order mark stays first; a comment is passed
    (b"<!doctype html><title>t</title><p>x", b"<!doctype html>[S]<title>t</title><p>x"),  # no <head>: first element
    (b"<header>h</header>", b"[S]<header>h</header>"),
    (b"</p>text only", b"</p>text only[S]"),
    (b"<!-- never closed <head>", b"[S]<!-- never closed <head>"),
    # a ">" in a quoted value is no tag's end (r33a4: the tag went into the value); a quote opens one only after "="
    (b"<html><head data-x=\"a>b\" class='c>d'><title>t", b"<html><head data-x=\"a>b\" class='c>d'>[S]<title>t"),
    (b"<head it's><title>t</title>", b"<head it's>[S]<title>t</title>"),
]


@pytest.mark.parametrize("html, injected", PLACES)
def test_the_snippet_goes_first_in_head_whole_or_in_pieces(html, injected):
    """Before any script of the page (so it sees all their errors), in a whole
    page and in one that arrives a byte at a time or compressed."""
    from sigreload.serving import injection

    assert injection.inject(html, b"[S]") == injected
    bytewise = injection.Inserter(b"[S]")
    assert b"".join(bytewise.feed(html[i:i + 1]) for i in range(len(html))) + bytewise.end() == injected
    gzipped = injection.Inserter(b"[S]", "gzip")
    assert gzipped.feed(gzip.compress(html)) + gzipped.end() == injected


def test_a_streamed_page_is_held_back_only_up_to_its_head_tag():
    from sigreload.serving import injection

    inserter = injection.Inserter(b"[S]")
    assert inserter.feed(b"<!doctype html><html><he") == b""  # might be <head>, might be <header>
    assert inserter.feed(b"ad><title>") == b"<!doctype html><html><head>[S]<title>"
    assert inserter.feed(b"rest") == b"rest" and inserter.end() == b""
