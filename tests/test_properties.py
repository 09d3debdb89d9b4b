"""Property-based tests (hypothesis) of every parser of outside input that
sigreload writes itself: where the snippet goes in a page (streamed in any
pieces = whole), the message folder's records, what pages send (``using``,
``console``, ``challenge``), LiveReload's hello and commands, the Host and
Origin rules. A short run by default; ``HYPOTHESIS_PROFILE=long`` for a long
one (profiles: conftest.py)."""

import gzip
import io
import json
import logging
import re
import zlib

from hypothesis import assume, given, strategies as st

from sigreload import broadcasting, consoles, livereload, secret
from sigreload.contract import changes, watcher_ids
from sigreload.serving import common, injection

TAG = b"<script src=/_sigreload/reload.js></script>"
PIECES = ["<!doctype html>", "<html>", "<html lang=en>", "<head>", "<HEAD class=x>", "</head>", "<body>",
          "</body>", "<!-- c -->", "<!--", "-->", "<?xml version=1?>", "<p>", "text", " ", "\n", "<", ">",
          "</x>", "<h", "ead>", "<meta charset=utf-8>", "é", "<title>t</title>", "<svg>", "<>", "<!>", "</",
          "<a\n href=x>", "<head\t>", "\x00", "<headline>"]
pages = st.lists(st.sampled_from(PIECES) | st.text(max_size=5), max_size=40).map(lambda p: "".join(p).encode())
anything = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                    max_size=4), max_leaves=12)


def splits(data, cuts):
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0] + points, points + [len(data)], strict=True)]


def whole(html):
    at = injection.where(html)
    return html[:at] + TAG + html[at:]


# --- the snippet's insertion point ------------------------------------------------------------

@given(pages, st.lists(st.integers(min_value=0), max_size=8))
def test_a_page_streamed_in_any_pieces_gets_the_snippet_where_the_whole_page_does(html, cuts):
    inserter = injection.Inserter(TAG)
    out = b"".join(inserter.feed(piece) for piece in splits(html, cuts)) + inserter.end()
    assert out == whole(html)
    assert out.count(TAG) == 1 and out.replace(TAG, b"", 1) == html


@given(pages, st.lists(st.integers(min_value=0), max_size=8), st.sampled_from(["gzip", "deflate", "raw"]))
def test_a_compressed_page_in_any_pieces_gets_it_there_too(html, cuts, encoding):
    if encoding == "gzip":
        body = gzip.compress(html)
    else:
        squeeze = zlib.compressobj(wbits=zlib.MAX_WBITS if encoding == "deflate" else -zlib.MAX_WBITS)
        body = squeeze.compress(html) + squeeze.flush()
    inserter = injection.Inserter(TAG, "gzip" if encoding == "gzip" else "deflate")
    out = b"".join(inserter.feed(piece) for piece in splits(body, cuts)) + inserter.end()
    assert out == whole(html)


@given(pages)
def test_a_page_file_gets_it_where_the_whole_page_does(html):
    assume(not injection.HAS_SNIPPET.search(html))
    assert injection.place(io.BytesIO(html)) == injection.where(html)
    assert injection.inject(html, TAG) == whole(html)


@given(pages, st.integers(min_value=0, max_value=5000), st.integers(min_value=0, max_value=5000))
def test_any_range_of_a_spliced_file_is_that_range_of_the_whole(html, first, length):
    full = whole(html)
    first = first % (len(full) + 1)
    length = min(length, len(full) - first)
    spliced = injection.Spliced(io.BytesIO(html), injection.where(html), TAG, first, length)
    got = b""
    while chunk := spliced.read(7):
        got += chunk
    assert got == full[first:first + length]


# --- the message folder's records ----------------------------------------------------------

@given(st.lists(st.binary(max_size=60) | anything.map(lambda x: json.dumps(x).encode()), max_size=6))
def test_any_records_in_the_message_folder_make_one_event_never_an_error(tmp_path_factory, records):
    folder = tmp_path_factory.mktemp("messages")
    for i, data in enumerate(records):
        (folder / f"{i:020d}-1.json").write_bytes(data)
    collected = changes.read(folder)
    assert len(collected) == len(records) and all(isinstance(m, dict) for m in collected)
    error, paths, root = broadcasting.merge(collected)
    assert error is None or isinstance(error, str)
    assert paths is None or all(isinstance(p, str) for p in paths)
    (folder / watcher_ids.CHANNEL.name).write_bytes(records[0] if records else b"")
    assert watcher_ids.read(folder) is None or isinstance(watcher_ids.read(folder), tuple)


# --- what pages send -----------------------------------------------------------------------

@given(anything)
def test_whatever_a_page_sends_is_read_or_ignored_never_an_error(message):
    frame = json.dumps(message)
    parsed = broadcasting.parsed(frame)
    assert parsed is None or isinstance(parsed, dict)
    if parsed is not None:
        paths = broadcasting.reported(parsed)
        assert paths is None or (len(paths) <= broadcasting.MAX_USING
                                 and all(p.startswith("/") and p.isprintable() for p in paths))
        proof = secret.proof(b"k" * 32, 5678, parsed.get("nonce"))
        assert proof is None or re.fullmatch(r"[0-9a-f]{64}", proof)
        consoles.Consoles().said(object(), {**parsed, "type": "console"})


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@given(st.sampled_from(list(consoles.KINDS)), st.text(max_size=300), st.text(max_size=3000))
def test_a_console_line_is_one_short_row_without_control_characters(kind, path, text):
    lines, log = Lines(), logging.getLogger("sigreload.page")
    log.addHandler(lines)
    try:
        consoles.Consoles().said(object(), {"kind": kind, "path": path, "text": text})
    finally:
        log.removeHandler(lines)
    (line,) = lines.lines
    assert line.isprintable() and "  " not in line
    assert len(line) <= consoles.columns() - consoles.PREFIX


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_any_frame_parses_or_is_ignored(frame):
    assert broadcasting.parsed(frame) is None or isinstance(broadcasting.parsed(frame), dict)


# --- LiveReload ----------------------------------------------------------------------------

@given(anything)
def test_any_first_livereload_message_is_a_hello_or_refused_never_an_error(message):
    assert livereload.is_hello(message) in (True, False)


@given(st.sampled_from(["reload", "css"]), st.none() | st.lists(st.text(min_size=1, max_size=30), max_size=30))
def test_livereload_commands_name_a_changed_path_or_every_page(kind, paths):
    sent = [json.loads(c) for c in livereload.commands(kind, paths)]
    assert sent and all(c["command"] == "reload" and c["liveCSS"] is True for c in sent)
    allowed = set(paths or []) | {"/", livereload.EVERY_STYLESHEET}
    assert all(c["path"] in allowed for c in sent)


# --- Host and Origin -----------------------------------------------------------------------

labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
names = st.lists(labels, min_size=1, max_size=4).map(".".join)
ports = st.none() | st.integers(min_value=1, max_value=65535)


def with_port(name, port):
    return name if port is None else f"{name}:{port}"


@given(st.text(max_size=60))
def test_any_host_header_is_judged_never_an_error(host):
    assert common.loopback_host(host) in (True, False)
    assert common.host_allowed(host, False, ("app.test", ".example.org")) in (True, False)
    assert common.same_origin(host, host, "http") in (True, False)


@given(names, ports)
def test_a_name_that_is_not_this_machines_is_refused(name, port):
    assume(name != "localhost" and not name.endswith(".localhost") and not re.fullmatch(r"[\d.]+", name))
    host = with_port(name, port)
    assert not common.loopback_host(host)
    assert not common.host_allowed(host, False, ())
    assert common.host_allowed(host, False, (name,))  # --allow-host NAME lets it in
    for scheme in ("http", "https"):
        assert not origin_accepted(f"{scheme}://{host}")


@given(st.sampled_from(["localhost", "127.0.0.1", "127.1.2.3", "[::1]", "app.localhost"]), ports)
def test_this_machines_names_are_accepted(name, port):
    host = with_port(name, port)
    assert common.loopback_host(host) and common.host_allowed(host, False, ())
    assert origin_accepted(f"http://{host}") and origin_accepted(f"https://{host}")
    assert common.same_origin(f"http://{host}", host, "http")


@given(names, ports, names, ports)
def test_the_relay_gives_a_page_only_its_own_origins_socket(name, port, other, other_port):
    assume((name, port) != (other, other_port))
    assert not common.same_origin(f"http://{with_port(name, port)}", with_port(other, other_port), "http")


@given(st.sampled_from(["localhost", "127.0.0.1", "[::1]"]), names)
def test_a_loopback_name_inside_a_foreign_origin_is_not_loopback(loop, name):
    for origin in (f"http://{loop}.{name}", f"http://{name}.{loop}x", f"http://{loop}@{name}", f"null{loop}"):
        assume(not name.endswith("localhost"))
        assert not origin_accepted(origin), origin


def origin_accepted(origin):
    """As websockets judges an Origin header against the broadcaster's list."""
    return any(o == origin if isinstance(o, str) or o is None else o.fullmatch(origin) is not None
               for o in broadcasting.accepting([]))
