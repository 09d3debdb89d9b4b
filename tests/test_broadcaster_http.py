"""The broadcaster's plain HTTP answers (the pasted ``/reload.js`` and its
siblings), byte by byte over raw sockets: HEAD is GET's headers alone; a
conditional GET is answered as RFC 9110 13.1.2 says (``*``, weak comparison),
and its 304 carries the validators and no content."""

import dataclasses
import socket

import pytest
from websockets.http11 import Request

from conftest import ROOT, SCALE, free_port, module

SOURCE = (ROOT / "snippet" / "reload.js").read_bytes()
# websockets 17 reads any method; 16 (the newest for Python 3.10) closes the
# connection on anything but GET, before sigreload sees it: GET is all it answers.
ANY_METHOD = "method" in {field.name for field in dataclasses.fields(Request)}
METHODS = ("GET", "HEAD") if ANY_METHOD else ("GET",)
needs_any_method = pytest.mark.skipif(not ANY_METHOD, reason="websockets < 17 (Python 3.10) takes GET alone")


@pytest.fixture
def port(procs):
    """A broadcaster's port."""
    port = free_port()
    procs(module("broadcaster") + ["--port", port], cwd=ROOT).wait_for("ready on", 15)
    return port


def exchange(port, method, path="/reload.js", headers=()):
    """(status, {lowercased header: value}, the bytes after the headers) of one raw request."""
    request = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *headers, "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=10 * SCALE) as sock:
        sock.sendall("\r\n".join(request).encode())
        data = b""
        while chunk := sock.recv(65536):  # the broadcaster closes after any answer but 101
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        assert name.lower() not in fields, f"{name} twice: {head!r}"
        fields[name.lower()] = value.strip()
    return int(lines[0].split()[1]), fields, rest


def etag(port):
    status, fields, body = exchange(port, "GET")
    assert status == 200 and body == SOURCE and fields["content-length"] == str(len(SOURCE))
    return fields["etag"]


@needs_any_method
def test_head_is_the_get_headers_without_a_body(port):
    status, got, _ = exchange(port, "GET")
    head_status, fields, rest = exchange(port, "HEAD")
    assert head_status == 200 and rest == b"", rest[:100]
    same = ("content-length", "content-type", "etag", "cache-control")
    assert {name: fields[name] for name in same} == {name: got[name] for name in same}


def test_if_none_match_star_and_weak_tags_are_304_with_the_validators(port):
    tag = etag(port)
    for value in ("*", tag, f"W/{tag}", f'"other", W/{tag}', f'"other",{tag}'):
        for method in METHODS:
            status, fields, rest = exchange(port, method, headers=[f"If-None-Match: {value}"])
            assert status == 304 and rest == b"", (value, method, status)
            assert fields["etag"] == tag and fields["cache-control"] == "no-cache", fields
            assert "content-length" not in fields and "content-type" not in fields, fields  # RFC 9110 8.6
    for value in ('"other"', 'W/"other"', tag[:-2] + '"'):
        status, _, body = exchange(port, "GET", headers=[f"If-None-Match: {value}"])
        assert status == 200 and body == SOURCE, value


def test_the_versioned_and_sibling_urls_answer_the_same_way(port):
    for path in ("/reload.js?v=0123456789abcdef", "/overlay.js"):
        status, fields, _ = exchange(port, "GET", path)
        assert status == 200
        status, again, rest = exchange(port, METHODS[-1], path, [f"If-None-Match: {fields['etag']}"])
        assert status == 304 and rest == b"" and again["etag"] == fields["etag"]


@needs_any_method
def test_other_methods_are_405(port):
    status, fields, _ = exchange(port, "POST", headers=["Content-Length: 0"])
    assert status in (400, 405) and "GET" in fields.get("allow", "GET"), status  # websockets < 15: its own 400
