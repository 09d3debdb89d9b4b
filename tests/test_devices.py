"""Pages reached some other way than http://127.0.0.1:PORT/ on this desktop:
through a forwarder of the HTTP port alone (SSH -L, docker -p, Codespaces;
another port, another host name, TLS in front), in Chromium."""

import base64
import hashlib
import http.client
import os
import re
import ssl
import sys
import time

import pytest

from apps import Forwarder, NetworkHost, network_host
from conftest import CHROMIUM, CHROMIUM_ARGS, HELLO_SEEN, SCALE, free_port, module, write

FORWARDED_NAME = "devbox.test"  # the forwarder's host name (Chromium maps it to loopback)
LAN_TAG = os.getpid() % 10000  # names this run's network namespace and its addresses
BUILD = """import pathlib, shutil, sys
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for f in src.iterdir():
    if "FAIL" in f.read_text():
        sys.exit(f"{f.name}:1: error: bad input")
    shutil.copy(f, out / f.name)
"""
PAGE = ("<!doctype html><html><head><link rel='stylesheet' href='style.css'></head>"
        "<body><h1 id='title'>{text}</h1></body></html>")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A certificate for FORWARDED_NAME from a throwaway CA (trustme), and its
    key's SPKI hash (Chromium trusts it by --ignore-certificate-errors-spki-list)."""
    trustme = pytest.importorskip("trustme")
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    leaf = trustme.CA().issue_cert(FORWARDED_NAME, "localhost", "127.0.0.1", NetworkHost(LAN_TAG).here)
    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    folder = tmp_path_factory.mktemp("tls")
    leaf.private_key_and_cert_chain_pem.write_to_path(str(folder / "both.pem"))
    return folder / "both.pem", base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="module")
def far_browser(playwright, certificate):
    """Chromium that resolves FORWARDED_NAME (and other.test) to loopback and trusts the certificate."""
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + [
        f"--host-resolver-rules=MAP {FORWARDED_NAME} 127.0.0.1, MAP other.test 127.0.0.1",
        f"--ignore-certificate-errors-spki-list={certificate[1]}"])
    yield chromium
    chromium.close()


@pytest.fixture
def built_site(procs, tmp_path):
    """sigreload building src/ into out/ (a failed build shows its error), one name let in."""
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    write(src / "index.html", PAGE.format(text="one"))
    write(src / "style.css", "h1 { color: rgb(0, 0, 255); }")
    (tmp_path / "build.py").write_text(BUILD)
    ws_port = free_port()
    main = procs(module("sigreload") + [src, "--port", "0", "--ws-port", ws_port, "--allow-host", FORWARDED_NAME,
                                        "--exec", f"{sys.executable} {tmp_path / 'build.py'} {src} {out}",
                                        "--output", out])
    port = int(main.wait_seen(r"at http://127\.0\.0\.1:(\d+)/").group(1))
    for ready in ("ready on", "watching"):
        main.wait_seen(ready)
    return src, port, ws_port


class Hellos:
    """The hellos a page's snippet received, one per socket it opened: after a
    reload, the new page is live once its count went up."""

    def __init__(self, page):
        self.page, self.count = page, 0
        page.on("websocket", lambda ws: ws.on("framereceived", self.received))

    def received(self, payload):
        self.count += '"type": "hello"' in str(payload)

    def wait(self, count):
        end = time.monotonic() + 10 * SCALE
        while self.count < count:  # events arrive while Playwright waits
            assert time.monotonic() < end, f"{self.count} hello(s), not {count}"
            self.page.wait_for_timeout(20)


def reloads_and_swaps(page, url, folder, secure):
    """Open ``url`` (a secure context or not): an HTML edit in ``folder`` reloads
    it, then a stylesheet edit is swapped in place (its JavaScript state kept)."""
    hellos = Hellos(page)
    page.goto(url)
    hellos.wait(1)
    assert page.evaluate("window.isSecureContext") == secure
    with page.expect_event("load"):
        write(folder / "index.html", PAGE.format(text="two"))
    assert page.locator("#title").inner_text() == "two"
    hellos.wait(2)  # the reloaded page is live
    page.evaluate("window.marker = 'kept'")
    write(folder / "style.css", "h1 { color: rgb(255, 0, 0); }")
    page.wait_for_function("getComputedStyle(document.getElementById('title')).color === 'rgb(255, 0, 0)'")
    assert page.evaluate("window.marker") == "kept"


def host_status(port, host):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/", headers={"Host": host})
    status = conn.getresponse().status
    conn.close()
    return status


@pytest.mark.parametrize("front", ["plain", "tls"])
def test_a_page_through_a_forwarded_http_port_alone_reloads_swaps_and_sees_build_errors(
        front, built_site, far_browser, certificate):
    src, port, ws_port = built_site
    tls = None
    if front == "tls":
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(certificate[0])
    forwarder = Forwarder(port, tls)
    context = far_browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000 * SCALE)
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.route_web_socket(re.compile(rf":{ws_port}/"), lambda ws: ws.close())  # the broadcaster's own port: shut
    try:
        scheme = "https" if tls else "http"
        origin = f"{scheme}://{FORWARDED_NAME}:{forwarder.port}"
        reloads_and_swaps(page, origin + "/", src, secure=bool(tls))
        assert set(sockets) == {f"{'wss' if tls else 'ws'}://{FORWARDED_NAME}:{forwarder.port}/_sigreload/socket"}
        write(src / "index.html", PAGE.format(text="FAIL"))
        page.locator("sigreload-error pre").get_by_text("error: bad input").wait_for()
        assert page.evaluate("window.marker") == "kept"
    finally:
        context.close()
        forwarder.close()
    assert host_status(port, f"{FORWARDED_NAME}:{port}") == 200
    assert host_status(port, f"other.test:{port}") == 403  # every other name: still refused
    assert host_status(port, f"192.0.2.7:{port}") == 200  # an address is no name: nothing to rebind


def test_the_pages_socket_is_only_for_its_own_origin(built_site):
    """A page of another site cannot open the socket on a page's origin (a WebSocket has no CORS)."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    _, port, _ = built_site
    url = f"ws://127.0.0.1:{port}/_sigreload/socket"
    with connect(url, origin=f"http://127.0.0.1:{port}", open_timeout=10 * SCALE) as ws:
        assert '"hello"' in ws.recv(timeout=10 * SCALE)
    for origin in ("https://evil.example", "null", f"http://127.0.0.1:{port + 1}"):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, origin=origin, open_timeout=10 * SCALE)
        assert refused.value.response.status_code == 403, origin


CONSOLE_PAGE = """<!doctype html><html><head><script>console.error("from <head>"); notYetDefined();</script>
</head><body><h1>console</h1><script type="module">
console.error("bad \\u001b[31mred\\u001b[0m\\nsigreload.watch: forged line");
for (let i = 0; i < 30; i++) console.error("flood", i);
setTimeout(() => { Promise.reject(new TypeError("nobody caught me")); undefinedFunction(); }, 1100);
</script></body></html>"""


@pytest.mark.parametrize("flag", [[], ["--no-console"]])
def test_a_pages_errors_are_printed_in_the_terminal_bounded_and_escaped(flag, procs, tmp_path, page):
    write(tmp_path / "errors.html", CONSOLE_PAGE)
    main = procs(module("sigreload") + [tmp_path, "--port", "0", "--ws-port", free_port(), *flag])
    url = main.wait_seen(r"at (http://\S+/)").group(1)
    main.wait_seen("watching")
    page.goto(url + "errors.html")
    page.wait_for_function(HELLO_SEEN)
    if flag:
        page.wait_for_timeout(500)  # what would have been printed by now is not
        assert "sigreload.page" not in main.output()
        return
    main.wait_seen(r"\[Chrome /errors.html\] ReferenceError: notYetDefined is not defined \(at ")  # first script
    main.wait_seen(r"\[Chrome /errors.html\] ReferenceError: undefinedFunction is not defined \(at ")
    main.wait_seen(r"\[Chrome /errors.html\] unhandled rejection: TypeError: nobody caught me")
    lines = [line for line in main.output().splitlines() if line.startswith("sigreload.page:")]
    assert "[Chrome /errors.html] console.error: from <head>" in lines[0]
    assert r"[Chrome /errors.html] console.error: bad \x1b[31mred\x1b[0m (sigreload.watch: forged line)" in lines[2]
    assert sum("flood" in line for line in lines) == 7  # at most 10 lines a second from a page
    assert any(re.search(r"\(\d+ more line\(s\) from that page within a second, not shown\)", line) for line in lines)
    assert not any("\x1b" in line for line in main.output().splitlines())  # escaped: no terminal control


@pytest.mark.parametrize("agent, name", [
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.4 Mobile/15E148 Safari/604.1", "Mobile Safari"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
     "Mobile Safari/537.36", "Mobile Chrome"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Firefox"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
     "Safari/537.36 Edg/124.0.0.0", "Edge"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15",
     "Safari"),
    ("curl/8.5.0", "a browser"),
])
def test_the_terminal_names_the_browser(agent, name):
    from sigreload import consoles

    assert consoles.browser(agent) == name


@pytest.fixture(scope="module")
def lan_host():
    with network_host(LAN_TAG) as host:
        yield host


@pytest.fixture(scope="module")
def lan_browser(playwright, lan_host, tmp_path_factory, certificate):
    """Chromium running on the namespace's host (another machine, as the network
    sees it), trusting the test's certificate."""
    wrapper = tmp_path_factory.mktemp("lan") / "chromium-there"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {lan_host.name} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    chromium = playwright.chromium.launch(executable_path=str(wrapper), args=CHROMIUM_ARGS + [
        f"--ignore-certificate-errors-spki-list={certificate[1]}"])
    yield chromium
    chromium.close()


def reaches(host, address, port):
    """Whether a TCP connection from ``host`` to ``address``:``port`` is accepted."""
    probe = f"import socket; socket.create_connection(({address!r}, {port}), timeout=5)"
    return host.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_phone_on_the_lan_opens_the_printed_address_and_sees_every_save(
        scheme, procs, tmp_path, lan_host, lan_browser, certificate):
    from sigreload import command_line

    write(tmp_path / "index.html", PAGE.format(text="one"))
    write(tmp_path / "style.css", "h1 { color: rgb(0, 0, 255); }")
    tls = ["--cert", certificate[0], "--key", certificate[0]] if scheme == "https" else []
    if scheme == "http":
        quiet = procs(module("sigreload") + [tmp_path, "--port", "0", "--ws-port", free_port()])
        local_only = int(quiet.wait_seen(r"at http://127\.0\.0\.1:(\d+)/").group(1))
        assert not reaches(lan_host, lan_host.here, local_only)  # without --lan: nothing answers there
    main = procs(module("sigreload") + [tmp_path, "--lan", "--port", "0", "--ws-port", free_port(), *tls])
    urls = main.wait_seen(r"any device on your network can read \S+: (.*)").group(1).split(", ")
    port = urls[0].rsplit(":", 1)[1].strip("/")
    url = f"{scheme}://{lan_host.here}:{port}/"
    assert url in urls  # every address another device can open
    main.wait_seen("scan it on your phone")
    main.wait_seen("serving")  # the HTTP server's next line: the code is all there
    main.wait_seen("watching")
    output = main.output()
    assert command_line.qr_code(urls[0]) in output  # the first one, to scan
    context = lan_browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000 * SCALE)
    try:
        reloads_and_swaps(page, url, tmp_path, scheme == "https")
    finally:
        context.close()


def test_a_page_served_on_one_lan_address_alone_reaches_its_broadcaster_there(
        procs, tmp_path, lan_host, lan_browser):
    """--host ADDRESS: both servers listen on that address alone (not on
    loopback), and the page's socket on its own origin is relayed there."""
    write(tmp_path / "index.html", PAGE.format(text="one"))
    write(tmp_path / "style.css", "h1 { color: rgb(0, 0, 255); }")
    main = procs(module("sigreload") + [tmp_path, "--host", lan_host.here, "--port", "0", "--ws-port", free_port()])
    url = main.wait_seen(rf"at (http://{re.escape(lan_host.here)}:\d+/)").group(1)
    main.wait_seen("watching")
    context = lan_browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000 * SCALE)
    try:
        reloads_and_swaps(page, url, tmp_path, secure=False)
    finally:
        context.close()


def test_https_with_your_certificate_makes_the_page_a_secure_context_with_live_reload(
        procs, tmp_path, far_browser, certificate):
    write(tmp_path / "index.html", PAGE.format(text="one"))
    write(tmp_path / "style.css", "h1 { color: rgb(0, 0, 255); }")
    main = procs(module("sigreload") + [tmp_path, "--port", "0", "--ws-port", free_port(),
                                        "--cert", certificate[0], "--key", certificate[0]])
    main.wait_seen(r"HTTPS with \S+ \(SHA-256 fingerprint [0-9A-F:]{95}\)")
    url = main.wait_seen(r"at (https://127\.0\.0\.1:\d+/)").group(1)
    main.wait_seen("watching")
    context = far_browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000 * SCALE)
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    try:
        reloads_and_swaps(page, url, tmp_path, secure=True)
        assert sockets and all(u.startswith("wss://127.0.0.1:") for u in sockets)
    finally:
        context.close()


def verified_get(port, cert, path="/"):
    """GET over TLS, trusting exactly ``cert`` (self-signed: a trust anchor of its own)."""
    context = ssl.create_default_context(cafile=str(cert))
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def test_https_without_a_certificate_makes_one_keeps_it_and_says_its_fingerprint(procs, tmp_path):
    from sigreload import certificates

    (tmp_path / "site").mkdir()
    write(tmp_path / "site" / "index.html", "<body>secure</body>")
    cache = tmp_path / "cache"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    said = []
    for run in ("made and kept in", "kept in"):
        main = procs(module("sigreload") + [tmp_path / "site", "--https", "--port", "0", "--ws-port", free_port()],
                     env=env)
        line = main.wait_seen(rf"self-signed certificate {run} (\S+) \(SHA-256 fingerprint ([0-9A-F:]+)\)")
        port = int(main.wait_seen(r"at https://127\.0\.0\.1:(\d+)/").group(1))
        cert = cache / "sigreload" / "cert.pem"
        assert line.group(1) == str(cert.parent) and line.group(2) == certificates.fingerprint(cert.read_bytes())
        assert oct((cache / "sigreload" / "key.pem").stat().st_mode & 0o777) == "0o600"
        status, body = verified_get(port, cert)
        assert status == 200 and b"secure" in body and b"/_sigreload/reload.js" in body
        said.append(line.group(2))
        main.kill()
    assert said[0] == said[1]  # the same certificate, kept


def test_https_through_the_proxy(procs, tmp_path, certificate):
    from websockets.sync.client import connect

    app = procs([sys.executable, "-m", "http.server", str(free_port_for_app := free_port()), "--bind", "127.0.0.1",
                 "-d", tmp_path])
    app.wait_for("Serving HTTP")
    write(tmp_path / "index.html", "<!doctype html><body>app</body>")
    main = procs(module("sigreload") + [tmp_path, "--proxy", f"http://127.0.0.1:{free_port_for_app}", "--port", "0",
                                        "--ws-port", free_port(), "--cert", certificate[0], "--key", certificate[0]])
    port = int(main.wait_seen(r"at https://127\.0\.0\.1:(\d+)/").group(1))
    main.wait_seen("ready on")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the test CA: trusted by Chromium above
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    conn.request("GET", "/", headers={"Sec-Fetch-Dest": "document"})
    response = conn.getresponse()
    assert response.status == 200 and b"/_sigreload/reload.js" in response.read()
    with connect(f"wss://127.0.0.1:{port}/_sigreload/socket", origin=f"https://127.0.0.1:{port}", ssl=context) as ws:
        assert '"hello"' in ws.recv(timeout=10 * SCALE)
