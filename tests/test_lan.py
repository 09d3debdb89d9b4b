"""--lan widens who may connect, never what is checked: the broadcaster's socket,
the relays' (``/_sigreload/socket`` on the file server and on the proxy) and
LiveReload accept only the origins served (the addresses printed, --allow-host
names, --allow-origin), never ``null`` unless asked; Host is checked as on
loopback. And the proxy's own Host and forwarding rules (issue 36, 1 and 9)."""

import http.client
import json
import os
import queue
import shutil
import ssl
import subprocess
import sys
import threading
import time

import pytest
from test_devices import certificate  # noqa: F401  # the fixture: a throwaway CA's certificate
from test_proxy_field import exchange, front, pages  # noqa: F401  # front: the fixture

from apps import network_host
from conftest import CHROMIUM, CHROMIUM_ARGS, HELLO_SEEN, SCALE, deadline, free_port, module, open_page, write

LAN_TAG = (os.getpid() + 5000) % 10000  # names this run's network namespace (test_devices.py has pid % 10000)
PAGE = "<!doctype html><html><head><title>mine</title></head><body><h1 id='title'>mine</h1></body></html>"


def handshake(port, path, origin, address="127.0.0.1", tls=None):
    """The status a WebSocket handshake on ``address``:``port`` at ``path`` with
    ``origin`` gets (101: the socket opened; its first message then, if any, else None)."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    scheme = "wss" if tls else "ws"
    try:
        with connect(f"{scheme}://{address}:{port}{path}", origin=origin, ssl=tls, open_timeout=10 * SCALE) as ws:
            try:
                return 101, ws.recv(timeout=2 * SCALE)
            except TimeoutError:
                return 101, None
    except InvalidStatus as refused:
        return refused.response.status_code, None


def lan_address():
    from sigreload import command_line

    return command_line.lan_addresses()[0]


FOREIGN = ["https://evil.example", "null", "http://rebind.attacker.example:8000"]


@pytest.mark.parametrize("origin", FOREIGN)
def test_with_lan_the_broadcaster_and_livereload_accept_only_the_served_origins(procs, origin):
    ws, live = free_port(), free_port()
    b = procs(module("broadcaster") + ["--lan", "--port", ws, "--livereload", live])
    b.wait_for("ready")
    assert handshake(ws, "/sigreload", origin)[0] == 403
    assert handshake(live, "/livereload", origin)[0] == 403
    mine = f"http://{lan_address()}:8000"  # the page of an address printed, on any port
    status, hello = handshake(ws, "/sigreload", mine)
    assert status == 101 and '"hello"' in hello
    assert handshake(live, "/livereload", mine)[0] == 101
    assert handshake(ws, "/sigreload", "http://127.0.0.1:8000")[0] == 101


def test_with_lan_allow_host_allow_origin_and_file_pages_are_still_accepted_when_asked(procs):
    ws = free_port()
    b = procs(module("broadcaster") + ["--lan", "--port", ws, "--allow-host", ".devbox.test",
                                       "--allow-origin", "https://other.test", "--allow-file-pages"])
    b.wait_for("ready")
    for origin in ("https://a.devbox.test", "http://a.b.devbox.test:8000", "https://other.test", "null"):
        assert handshake(ws, "/sigreload", origin)[0] == 101, origin
    for origin in ("https://devbox.test.evil.example", "https://evildevbox.test", "http://other.test"):
        assert handshake(ws, "/sigreload", origin)[0] == 403, origin


@pytest.mark.parametrize("serve", ["files", "proxy"])
def test_with_lan_the_relay_accepts_only_its_own_origin_and_host_is_checked(procs, tmp_path, serve):
    write(tmp_path / "index.html", PAGE)
    ws, web = free_port(), free_port()
    procs(module("broadcaster") + ["--lan", "--port", ws]).wait_for("ready")
    if serve == "proxy":
        app = procs(module("http_server") + [tmp_path, "--port", free_port()])
        app_port = app.wait_seen(r"at http://127\.0\.0\.1:(\d+)/").group(1)
        what = ["--proxy", f"http://127.0.0.1:{app_port}"]
    else:
        what = [tmp_path]
    http = procs(module("http_server") + [*what, "--lan", "--port", web, "--inject", ws])
    http.wait_for("proxying" if serve == "proxy" else "serving")
    here = lan_address()
    for origin in FOREIGN + [f"http://{here}:{int(web) + 1}", f"http://127.0.0.1:{web}"]:
        assert handshake(web, "/_sigreload/socket", origin, here)[0] == 403, origin
    status, hello = handshake(web, "/_sigreload/socket", f"http://{here}:{web}", here)
    assert status == 101 and '"hello"' in hello
    for host, expected in ((f"{here}:{web}", 200), (f"rebind.attacker.example:{web}", 403)):
        conn = http_connection(web)
        conn.request("GET", "/", headers={"Host": host})
        assert conn.getresponse().status == expected, host


def http_connection(port):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10 * SCALE)


# --- The Host header: a name or an address, and a port ---------------------------------------------

MALFORMED = ["evil.example@127.0.0.1", "127.0.0.1:{port}, evil.example", "127.0.0.1:{port}/x", "127.0.0.1 x",
             "[::1", "127.0.0.1:99999", "127.0.0.1:{port}:{port}", "user:pw@localhost:{port}", ""]


def test_the_proxy_answers_400_to_a_host_that_is_not_a_name_or_address_and_port(front):  # noqa: F811
    port, upstream, _ = front(pages)
    for host in MALFORMED:
        raw = f"GET /42 HTTP/1.1\r\nHost: {host.format(port=port)}\r\n\r\n".encode()
        out, closed = exchange(port, raw)
        assert out.split(b"\r\n")[0].endswith(b" 400 Bad Request") and closed, (host, out)
    out, closed = exchange(port, f"GET /42 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example\r\n\r\n".encode())
    assert b" 400 " in out.split(b"\r\n")[0] and closed, out
    assert upstream.heads == []  # nothing reached the app
    out, _ = exchange(port, f"GET /42 HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n".encode())
    assert out.startswith(b"HTTP/1.1 200 ") and len(upstream.heads) == 1


def test_the_file_server_answers_400_to_a_host_that_is_not_a_name_or_address_and_port(procs, tmp_path):
    write(tmp_path / "index.html", PAGE)
    port = free_port()
    procs(module("http_server") + [tmp_path, "--port", port]).wait_for("serving")
    for host in MALFORMED:
        raw = f"GET / HTTP/1.1\r\nHost: {host.format(port=port)}\r\n\r\n".encode()
        out, _ = exchange(port, raw)
        assert out.split(b"\r\n")[0].endswith(b" 400 Bad Request"), (host, out)
    out, _ = exchange(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n")
    assert b" 400 " in out.split(b"\r\n")[0], out


def test_every_forwarding_header_from_a_client_is_dropped(front):  # noqa: F811
    port, upstream, _ = front(pages)
    sent = [("X-Forwarded-Prefix", "/evil"), ("X-Original-URL", "/admin"), ("X-Rewrite-URL", "/admin"),
            ("X-Forwarded-Port", "6666"), ("X-Forwarded-Server", "evil.example"), ("X-Real-IP", "6.6.6.6"),
            ("X-Forwarded-Proto", "https"), ("Forwarded", "for=6.6.6.6"), ("X_Forwarded_Host", "evil2.example"),
            ("X_Forwarded_For", "6.6.6.7"), ("Client-IP", "6.6.6.8"), ("True-Client-IP", "6.6.6.9"),
            ("X-Client-IP", "6.6.6.10"), ("X-Host", "evil3.example"), ("X-Script-Name", "/evil4"),
            ("Script-Name", "/evil5"), ("X-Url-Scheme", "gopher"), ("Front-End-Https", "evil6"),
            ("X-Original-Forwarded-For", "6.6.6.11")]
    raw = f"GET /42 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n".encode()
    raw += b"".join(f"{k}: {v}\r\n".encode() for k, v in sent) + b"\r\n"
    out, _ = exchange(port, raw)
    assert out.startswith(b"HTTP/1.1 200 ")
    head = upstream.heads[-1].lower()
    for name, value in sent:
        assert value.lower().encode() not in head, name
    assert b"x-original-url" not in head and b"x-forwarded-prefix" not in head and b"x-forwarded-port" not in head
    assert b"x-forwarded-proto: http\r\n" in head and f"x-forwarded-host: 127.0.0.1:{port}".encode() in head


@pytest.mark.parametrize("serve", ["files", "proxy"])
def test_the_relay_compares_scheme_host_and_port(procs, tmp_path, serve):
    write(tmp_path / "index.html", PAGE)
    ws, web = free_port(), free_port()
    procs(module("broadcaster") + ["--port", ws]).wait_for("ready")
    what = [tmp_path]
    if serve == "proxy":
        app = procs(module("http_server") + [tmp_path, "--port", free_port()])
        what = ["--proxy", "http://127.0.0.1:" + app.wait_seen(r"at http://127\.0\.0\.1:(\d+)/").group(1)]
    procs(module("http_server") + [*what, "--port", web, "--inject", ws]).wait_for("proxying" if serve == "proxy"
                                                                                   else "serving")
    for origin in (f"http://127.0.0.1:{int(web) + 1}", f"http://localhost:{web}", "https://evil.example", "null",
                   f"http://user@127.0.0.1:{web}", f"ftp://127.0.0.1:{web}"):
        assert handshake(web, "/_sigreload/socket", origin)[0] == 403, origin
    status, hello = handshake(web, "/_sigreload/socket", f"http://127.0.0.1:{web}")
    assert status == 101 and '"hello"' in hello
    # on plain http, a TLS front (a forwarder's) may end before us: its https page is this origin
    assert handshake(web, "/_sigreload/socket", f"https://127.0.0.1:{web}")[0] == 101


@pytest.mark.parametrize("serve", ["files", "proxy"])
def test_over_https_the_relay_refuses_an_http_page_of_the_same_host_and_port(
        procs, tmp_path, serve, certificate):  # noqa: F811
    write(tmp_path / "index.html", PAGE)
    ws, web = free_port(), free_port()
    procs(module("broadcaster") + ["--port", ws]).wait_for("ready")
    what = [tmp_path]
    if serve == "proxy":
        app = procs(module("http_server") + [tmp_path, "--port", free_port()])
        what = ["--proxy", "http://127.0.0.1:" + app.wait_seen(r"at http://127\.0\.0\.1:(\d+)/").group(1)]
    tls = ["--cert", certificate[0], "--key", certificate[0]]
    procs(module("http_server") + [*what, "--port", web, "--inject", ws, *tls]).wait_for(
        "proxying" if serve == "proxy" else "serving")
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    assert handshake(web, "/_sigreload/socket", f"http://127.0.0.1:{web}", tls=client)[0] == 403
    status, hello = handshake(web, "/_sigreload/socket", f"https://127.0.0.1:{web}", tls=client)
    assert status == 101 and '"hello"' in hello


# --- From a second host: a foreign page in a browser there -----------------------------------------

FOREIGN_PAGE = """<!doctype html><html><body><script>
window.results = {};
function tryit(name, url) {
  const ws = new WebSocket(url);
  ws.onopen = () => { window.results[name] = "open"; };
  ws.onmessage = (e) => { window.results[name] = "message: " + e.data; };
  ws.onerror = () => { window.results[name] = window.results[name] || "refused"; };
  ws.onclose = () => { window.results[name] = window.results[name] || "refused"; };
}
tryit("broadcaster", "ws://{here}:{ws}/sigreload");
tryit("relay", "ws://{here}:{web}/_sigreload/socket");
tryit("livereload", "ws://{here}:{live}/livereload");
</script>
<iframe sandbox="allow-scripts" srcdoc="<script>
const ws = new WebSocket('ws://{here}:{ws}/sigreload');
ws.onopen = () => parent.postMessage('open', '*');
ws.onmessage = (e) => parent.postMessage('message: ' + e.data, '*');
ws.onclose = () => parent.postMessage('refused', '*');
</script>"></iframe>
<script>addEventListener("message", (e) => { window.results.sandboxed = e.data; });</script>
</body></html>"""


@pytest.fixture(scope="module")
def lan_host():
    with network_host(LAN_TAG) as host:
        yield host


@pytest.fixture(scope="module")
def lan_browser(playwright, lan_host, tmp_path_factory):
    """Chromium running on the namespace's host (another machine, as the network sees it)."""
    wrapper = tmp_path_factory.mktemp("lan") / "chromium-there"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {lan_host.name} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    # Chromium asks before a public site's page reaches a private address (Local Network Access);
    # Firefox does not, nor does any browser for a page of another LAN device: sigreload must refuse.
    chromium = playwright.chromium.launch(executable_path=str(wrapper), args=CHROMIUM_ARGS + [
        "--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessRespectPreflightResults,"
        "BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights"])
    yield chromium
    chromium.close()


def test_from_another_host_a_foreign_page_gets_no_socket_and_the_developers_page_does(
        procs, tmp_path, lan_host, lan_browser):
    write(tmp_path / "index.html", PAGE)
    ws, live = free_port(), free_port()
    main = procs(module("sigreload") + [tmp_path, "--lan", "--port", "0", "--ws-port", ws, "--livereload", live])
    urls = main.wait_seen(r"any device on your network can read \S+: (.*)").group(1).split(", ")
    web = urls[0].rsplit(":", 1)[1].strip("/")
    main.wait_seen("watching")
    context = lan_browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000 * SCALE)
    try:
        foreign = FOREIGN_PAGE.replace("{here}", lan_host.here).replace("{ws}", str(ws)).replace("{web}", web)
        page.route("http://evil.test/", lambda route: route.fulfill(
            body=foreign.replace("{live}", str(live)), content_type="text/html"))
        page.goto("http://evil.test/")
        page.wait_for_function("() => ['broadcaster', 'relay', 'livereload', 'sandboxed']"
                               ".every((k) => window.results[k])")
        results = page.evaluate("window.results")
        assert results == dict.fromkeys(("broadcaster", "relay", "livereload", "sandboxed"), "refused"), results
        open_page(page, f"http://{lan_host.here}:{web}/")  # the developer's own page, from the LAN address
        page.wait_for_function(HELLO_SEEN)
        assert page.text_content("#title") == "mine"
    finally:
        context.close()


class FirefoxThere:
    """Firefox (tests/node/firefox.mjs, as engines.Firefox) running on the namespace's host."""

    def __init__(self, host):
        from engines import NODE, Firefox

        self.bridge = Firefox.__new__(Firefox)
        self.bridge.timeout, self.bridge.last = 60.0 * SCALE, 0
        self.bridge.proc = subprocess.Popen(
            ["ip", "netns", "exec", host.name, "node", str(NODE / "firefox.mjs"), shutil.which("firefox-esr")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
            env={**os.environ, "PUPPETEER_SKIP_DOWNLOAD": "1"})
        self.bridge.answers = queue.Queue()
        threading.Thread(target=self.bridge._read, daemon=True).start()
        self.bridge.version = self.bridge.receive()["ready"]


def test_from_another_host_in_firefox_a_lan_devices_page_gets_no_socket(procs, tmp_path, lan_host):
    """Firefox lets a site's page reach a LAN address; here the foreign page is
    another device's on the LAN (served from the namespace's host)."""
    if not (shutil.which("firefox-esr") and shutil.which("node")):
        pytest.skip("firefox-esr and node (npm ci --prefix tests/node)")
    from engines import EngineError

    (tmp_path / "site").mkdir()
    (tmp_path / "evil").mkdir()
    write(tmp_path / "site" / "index.html", PAGE)
    ws, live, evil_port = free_port(), free_port(), free_port()
    main = procs(module("sigreload") + [tmp_path / "site", "--lan", "--port", "0", "--ws-port", ws,
                                        "--livereload", live])
    urls = main.wait_seen(r"any device on your network can read \S+: (.*)").group(1).split(", ")
    web = urls[0].rsplit(":", 1)[1].strip("/")
    main.wait_seen("watching")
    foreign = FOREIGN_PAGE.replace("{here}", lan_host.here).replace("{ws}", str(ws)).replace("{web}", web)
    write(tmp_path / "evil" / "index.html", foreign.replace("{live}", str(live)))
    evil = procs(["ip", "netns", "exec", lan_host.name, sys.executable, "-u", "-m", "http.server", "--bind",
                  lan_host.there, str(evil_port), "--directory", tmp_path / "evil"])
    evil.wait_for("Serving HTTP")
    firefox = FirefoxThere(lan_host).bridge
    try:
        tab = firefox.tab()
        tab.goto(f"http://{lan_host.there}:{evil_port}/")
        keys = ("broadcaster", "relay", "livereload", "sandboxed")
        end = deadline(20)
        while True:
            try:
                results = json.loads(tab.evaluate("JSON.stringify(window.results)"))
            except EngineError:
                results = {}
            if all(k in results for k in keys) or time.monotonic() > end:
                break
            time.sleep(0.1)  # polling the page's own record, within a deadline
        assert results == dict.fromkeys(keys, "refused"), results
    finally:
        firefox.close()


NO_ORIGIN = """
import sys
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
for url, origin in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        with connect(url, origin=origin or None, open_timeout=20) as ws:
            print(101, flush=True)
    except InvalidStatus as refused:
        print(refused.response.status_code, flush=True)
"""


def test_with_lan_a_client_without_origin_is_refused_from_another_host_and_accepted_on_loopback(
        procs, lan_host):
    """Issue 36: a script on the café's Wi-Fi (no Origin) read build output and
    changed paths from the broadcaster and LiveReload; a page of an origin served
    still connects from the LAN, and a tool without an Origin from this machine."""
    ws, live = free_port(), free_port()
    b = procs(module("broadcaster") + ["--lan", "--port", ws, "--livereload", live])
    b.wait_for("ready")
    here = lan_host.here
    mine = f"http://{here}:8000"  # the developer's page, opened from the LAN address
    theirs = "http://localhost:8000"  # r36a3: a page of the LAN device's own localhost got the socket
    asked = [f"ws://{here}:{ws}/sigreload", "", f"ws://{here}:{live}/livereload", "",
             f"ws://{here}:{ws}/", "", f"ws://{here}:{ws}/sigreload", mine, f"ws://{here}:{live}/livereload", mine,
             f"ws://{here}:{ws}/sigreload", theirs, f"ws://{here}:{live}/livereload", theirs]
    there = lan_host.run([sys.executable, "-c", NO_ORIGIN, *asked], capture_output=True, text=True,
                         timeout=60 * SCALE)
    assert there.stdout.split() == ["403", "403", "403", "101", "101", "403", "403"], there.stderr
    status, hello = handshake(ws, "/sigreload", None)
    assert status == 101 and '"hello"' in hello
    assert handshake(live, "/livereload", None)[0] == 101


def test_every_address_without_lan_is_said_as_loudly_as_lan(procs, tmp_path):
    """`--host 0.0.0.0` serves the whole network as --lan does: the HTTP server said
    only "serving ... at http://0.0.0.0" (r32a4)."""
    write(tmp_path / "index.html", "<h1>hi</h1>")
    main = procs(module("http_server") + [tmp_path, "--host", "0.0.0.0", "--port", "0"])
    main.wait_seen(f"listening on every address: any device on your network can read {tmp_path} ")
    main.wait_seen("serving")


@pytest.mark.parametrize("host", ["0", "::0", "000.000.000.000"])
def test_every_address_however_spelled_is_said_by_the_broadcaster(procs, host):
    """`--host 0` bound every address with no LAN mode warning from the broadcaster (r32a5)."""
    main = procs(module("broadcaster") + ["--host", host, "--port", "0"])
    main.wait_seen("LAN mode: any device on your network can connect")
    main.wait_seen("ready on ws://0.0.0.0:")
