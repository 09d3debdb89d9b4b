"""What an attacker found in "The page tells you" (issue 35), each shut: file
names that would send a --follow tab to another host, a page of another
loopback port reading or driving the status socket or stealing --follow,
another local user asking the editor for a token, and names that would
move the terminal's cursor. Real processes, sockets and a real browser.
"""

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from test_page_tells import HELLO_SEEN, LOADS, PAGE, editor_flag, post, serve, site, stock_server, token_of

from conftest import SCALE, drain, until


def test_follow_never_sends_a_tab_to_another_host(procs, tmp_path, page):
    root = site(tmp_path)
    (root / "index.html").write_text(PAGE.format(head=LOADS, title="one"))
    foreign = stock_server(procs, tmp_path)  # "another site": it would serve anything asked
    _, url, _ = serve(procs, root, "--follow")
    page.goto(url)
    page.wait_for_function(HELLO_SEEN)
    page.evaluate("dispatchEvent(new Event('focus'))")  # headless: no window gets the real event
    page.wait_for_timeout(200 * SCALE)  # (the focus message is on its way: nothing to wait on)
    bad = [root / f"\\127.0.0.1:{foreign}\\attack.html"]
    for space in ("\n", "\t"):
        (root / space / f"127.0.0.1:{foreign}").mkdir(parents=True)
        bad.append(root / space / f"127.0.0.1:{foreign}" / "attack.html")
    for path in bad:
        path.write_text(PAGE.format(head="", title="attack"))
        page.wait_for_timeout(300 * SCALE)  # each its own save (the absence is what is tested)
    (root / "new.html").write_text(PAGE.format(head=LOADS, title="new"))  # then a save that is followed
    page.wait_for_function("location.pathname === '/new.html'", timeout=15_000 * SCALE)
    assert page.evaluate("location.origin") == url.rstrip("/")
    assert page.evaluate("+sessionStorage.getItem('loads')") == 2  # one navigation: to new.html alone


def status_socket(ws_port, **kwargs):
    from websockets.sync.client import connect

    return connect(f"ws://127.0.0.1:{ws_port}/sigreload/status", open_timeout=5 * SCALE, **kwargs)


@pytest.mark.parametrize("server", ["files", "proxy"])
def test_the_status_socket_is_for_sigreload_s_relays_and_its_own_status_page_only(procs, tmp_path, server):
    from websockets.exceptions import InvalidStatus

    root = site(tmp_path)
    extra = ["--proxy", f"http://127.0.0.1:{stock_server(procs, root)}"] if server == "proxy" else []
    _, url, ws_port = serve(procs, root, *extra)
    for origin, headers in (("http://127.0.0.1:1", {}), ("http://localhost:35100", {}), (None, {}),
                            ("http://127.0.0.1:1", {"X-Sigreload-Relay": "0" * 64}),
                            (None, {"X-Sigreload-Relay": ""})):
        with pytest.raises(InvalidStatus) as refused:
            status_socket(ws_port, origin=origin, additional_headers=headers).close()
        assert refused.value.response.status_code == 403, (origin, headers)
    for own in (f"http://127.0.0.1:{ws_port}", f"http://localhost:{ws_port}"):  # its own /status page
        with status_socket(ws_port, origin=own) as ws:
            assert json.loads(ws.recv(timeout=5 * SCALE))["type"] == "status"
    relayed = url.replace("http", "ws", 1) + "_sigreload/socket?status"  # the file server (the proxy) proves itself
    from websockets.sync.client import connect

    with connect(relayed, origin=url.rstrip("/"), open_timeout=5 * SCALE) as ws:
        assert json.loads(ws.recv(timeout=5 * SCALE))["type"] == "status"


def test_the_status_page_s_reloads_are_a_few_a_second(procs, tmp_path):
    from websockets.sync.client import connect

    _, url, ws_port = serve(procs, site(tmp_path))
    with connect(f"ws://127.0.0.1:{ws_port}/", open_timeout=5 * SCALE) as plain, \
            status_socket(ws_port, origin=f"http://127.0.0.1:{ws_port}") as ws:
        state = json.loads(ws.recv(timeout=5 * SCALE))
        while not state["pages"]:
            state = json.loads(ws.recv(timeout=5 * SCALE))
        for _ in range(20):
            ws.send(json.dumps({"type": "reload", "page": state["pages"][0]["id"]}))
        assert "reload" in plain.recv(timeout=5 * SCALE)
        assert len(drain(plain)) + 1 <= 6  # 3 a second, at most 2 seconds' worth on a loaded machine


def other_user():
    """A command prefix that runs a process as another user (nobody), or skip."""
    if os.getuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run a client as another user")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


ASK = """import sys, urllib.request, urllib.error
request = urllib.request.Request(sys.argv[1] + "_sigreload/token", headers={"Sec-Fetch-Site": "same-origin"})
try:
    print(urllib.request.urlopen(request, timeout=float(sys.argv[2])).status)
except urllib.error.HTTPError as e:
    print(e.code)
"""


@pytest.mark.portable_too
@pytest.mark.parametrize("server", ["files", "proxy"])
def test_the_editor_s_token_is_for_this_user_s_browser_only(procs, tmp_path, server, platform_paths):
    prefix = other_user()
    root = site(tmp_path)
    flag, record = editor_flag(tmp_path)
    extra = ["--proxy", f"http://127.0.0.1:{stock_server(procs, root)}"] if server == "proxy" else []
    _, url, _ = serve(procs, root, flag, *extra)
    # (the portable look goes over every process of this user: seconds, as root on a busy machine)
    # The system's Python: another user may not load pyenv's (a shared libpython under /root)
    client = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    asked = subprocess.run(prefix + [client, "-c", ASK, url, str(30 * SCALE)], capture_output=True, text=True,
                           timeout=40 * SCALE, cwd="/")
    assert asked.stdout.strip() == "403", asked.stderr  # another local user
    with pytest.raises(urllib.error.HTTPError) as refused:
        token_of(url, {"User-Agent": "curl/8"})  # no Sec-Fetch-Site: no browser
    assert refused.value.code == 403
    token = token_of(url)  # this user's browser
    own = url.rstrip("/")
    assert post(url, {"token": token, "path": "/app.js", "line": 2}, own) == 204
    until(record.exists, 5, "the editor was started")
    assert post(url, {"token": token, "path": "/app.js", "line": 2}, own) == 403  # spent


def test_names_with_control_characters_are_escaped_in_the_terminal(procs, tmp_path):
    from websockets.sync.client import connect

    root = site(tmp_path)
    flag, record = editor_flag(tmp_path)
    main, url, ws_port = serve(procs, root, flag)
    name = "a\x1b]0;pwned\x07\x1b[2Jb.js"
    with connect(f"ws://127.0.0.1:{ws_port}/", open_timeout=5 * SCALE) as plain:
        (root / name).write_text("x")
        assert plain.recv(timeout=10 * SCALE) == "reload"
    main.wait_seen(r"reload sent to \d+ page\(s\) \(/a\\x1b\]0;pwned\\x07\\x1b\[2Jb\.js\)")
    assert post(url, {"token": token_of(url), "path": "/" + name, "line": 1}, url.rstrip("/")) == 204
    main.wait_seen(r"opened .*a\\x1b\]0;pwned\\x07\\x1b\[2Jb\.js:1 in")
    assert "\x1b" not in main.output() and "\x07" not in main.output()


@pytest.mark.parametrize("server", ["files", "proxy"])
def test_with_lan_no_other_device_gets_a_token(procs, tmp_path, server):
    from sigreload import command_line

    addresses = command_line.lan_addresses()
    if not addresses:
        pytest.skip("no LAN address on this machine")
    root = site(tmp_path)
    flag, _ = editor_flag(tmp_path)
    extra = ["--proxy", f"http://127.0.0.1:{stock_server(procs, root)}"] if server == "proxy" else []
    _, url, _ = serve(procs, root, flag, "--lan", *extra)
    port = url.rstrip("/").rsplit(":", 1)[1]
    lan = f"http://{addresses[0]}:{port}/"  # from this machine, but by its LAN address: as a phone comes
    with pytest.raises(urllib.error.HTTPError) as refused:
        token_of(lan)
    assert refused.value.code == 403
    assert token_of(f"http://127.0.0.1:{port}/")  # the same server, from loopback


CATCH_SOCKETS = """window.sockets = [];
window.WebSocket = class extends WebSocket { constructor(...a) { super(...a); window.sockets.push(this); } };"""


@pytest.mark.parametrize("path", ["/\\\\127.0.0.1:{port}\\\\attack.html", "//127.0.0.1:{port}/attack.html",
                                  "/\\t/127.0.0.1:{port}/attack.html", "http://127.0.0.1:{port}/attack.html"])
def test_the_snippet_follows_only_within_its_own_origin(procs, tmp_path, page, path):
    """The broadcaster sends no such path (above); the page would not go there either."""
    root = site(tmp_path)
    (root / "other.html").write_text(PAGE.format(head="", title="other"))
    foreign = stock_server(procs, tmp_path)
    _, url, _ = serve(procs, root, "--follow")
    page.add_init_script(CATCH_SOCKETS)  # to hand the page's own (proven) socket a message
    page.goto(url)
    page.wait_for_function(HELLO_SEEN)
    say = """(path) => { const s = JSON.parse(sessionStorage.getItem('sigreload'));
      window.sockets.at(-1).dispatchEvent(new MessageEvent('message', { data: JSON.stringify(
        { type: 'follow', path, boot: s.boot, generation: s.generation + 1 }) })); }"""
    page.evaluate(say, path.format(port=foreign))
    page.wait_for_timeout(500 * SCALE)  # (the absence is what is tested)
    assert page.evaluate("location.href") == url
    page.evaluate(say, "/other.html")  # the same message with a path of this site: followed
    page.wait_for_function("location.pathname === '/other.html'")
    assert page.evaluate("location.origin") == url.rstrip("/")
