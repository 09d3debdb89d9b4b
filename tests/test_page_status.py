"""The pure parts of issue 35: what the status page holds (page_status), whom
--follow picks, which editor command runs and which files it may open
(editor). A fake clock, fake connections; the real thing is in
tests/test_page_tells.py."""

import json
import os

import pytest

from sigreload import consoles, editor, page_status, secret

PORT = 5678  # the broadcaster's


class Conn:
    """A connection as page_status sees one: its request's headers, its peer."""

    def __init__(self, agent="", address="::1", **headers):
        self.request = type("Request", (), {"headers": {"User-Agent": agent, **headers}})()
        self.remote_address = (address, 40000)
        self.local_address = ("127.0.0.1", PORT)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def status():
    sent = []
    clock = Clock()
    return page_status.Status(lambda to, text: sent.append((set(to), json.loads(text))), clock), clock, sent


def test_pages_their_reloads_and_how_long_each_took():
    s, clock, sent = status()
    a, b = Conn("Mozilla/5.0 (X11) Firefox/140.0", "192.168.1.7"), Conn("Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")
    s.joined(a, True)
    s.said(a, {"type": "page", "url": "http://h/", "title": "Home", "generation": 0, "reloaded": False})
    s.watchers.add("w")
    s.reloaded(1, "reload", ["/index.html"], False, 1)
    clock.now += 0.25
    s.left(a)
    s.joined(b, True)
    s.said(b, {"type": "page", "url": "http://h/", "title": "Home", "generation": 1, "reloaded": True})
    state = sent[-1][1]
    assert sent[-1][0] == {"w"}  # only status pages are told
    assert [(p["browser"], p["device"]) for p in state["pages"]] == [("Firefox", "Linux")]
    reload = state["reloads"][0]
    assert reload["why"] == "saved" and reload["what"] == ["/index.html"] and reload["took"][0]["ms"] == 250


def test_at_most_twenty_reloads_and_five_errors_a_page_are_kept():
    s, _, _ = status()
    a = Conn()
    s.joined(a, True)
    for i in range(30):
        s.reloaded(i, "css", None, False, 1)
        s.said(a, {"type": "console", "kind": "error", "text": f"e{i}" * 1000})
    assert len(s.reloads) == 20 and s.reloads[0]["generation"] == 29 and s.reloads[0]["why"] == "signal"
    errors = s.pages[a].errors
    assert len(errors) == 5 and all(len(e["text"]) <= 1000 for e in errors)


def test_what_a_page_says_is_taken_only_in_its_shape():
    s, _, _ = status()
    a, stranger = Conn(), Conn()
    s.joined(a, True)
    s.said(a, {"type": "page", "url": ["not", "text"], "title": 3, "generation": "1", "reloaded": "yes"})
    s.said(stranger, {"type": "page", "url": "http://h/"})  # not a page it knows
    assert s.pages[a].url == "" and s.pages[a].title == "" and stranger not in s.pages


def test_a_plain_snippet_is_listed_by_its_origin_and_a_relayed_page_by_its_client_s_address():
    s, _, _ = status()
    plain = Conn("Firefox/140.0", "127.0.0.1", Origin="http://127.0.0.1:3000")
    proof = secret.relay_proof(PORT)
    relayed = Conn("", "127.0.0.1", **{"X-Sigreload-Peer": "192.168.1.9", secret.RELAY_HEADER: proof})
    forged = Conn("", "192.168.1.20", **{"X-Sigreload-Peer": "10.0.0.1"})  # not from a relay here
    unproven = Conn("", "127.0.0.1", **{"X-Sigreload-Peer": "10.0.0.2", secret.RELAY_HEADER: "0" * 64})
    other_port = Conn("", "127.0.0.1", **{"X-Sigreload-Peer": "10.0.0.3", secret.RELAY_HEADER: secret.relay_proof(1)})
    for c in (plain, relayed, forged, unproven, other_port):
        s.joined(c, c is not plain)
    assert s.pages[plain].url == "http://127.0.0.1:3000" and "plain" in s.pages[plain].title
    assert [s.pages[c].address for c in (relayed, forged, unproven, other_port)] == [
        "192.168.1.9", "192.168.1.20", "127.0.0.1", "127.0.0.1"]


def test_follow_picks_the_tab_focused_last_for_a_page_no_tab_shows():
    s, clock, _ = status()
    a, b, c = Conn(Origin="http://h"), Conn(Origin="http://h"), Conn(Origin="http://h")
    for conn, url in ((a, "http://h/"), (b, "http://h/blog/"), (c, "http://h/about.html")):
        s.joined(conn, True)
        s.said(conn, {"type": "page", "url": url})
        clock.now += 1
    assert s.to_follow([a, b, c], ["/blog/index.html"]) is None  # b shows it
    assert s.to_follow([a, b, c], ["/style.css"]) is None  # not a page
    assert s.to_follow([a, b, c], ["/new.html"]) == (c, "/new.html")  # none focused: the newest
    s.said(a, {"type": "focus"})
    clock.now += 1
    s.said(b, {"type": "focus"})
    assert s.to_follow([a, b, c], ["/about.html", "/new.html"]) == (b, "/new.html")
    assert s.to_follow([a, c], ["/new.html"]) == (a, "/new.html")  # among those told
    # A fragment a page fetched (what it said it uses) reloads that page: never opened alone.
    assert s.to_follow([a, b, c], ["/partials/nav.html"], used=["/", "/partials/nav.html"]) is None


def test_follow_sends_a_tab_only_to_a_plain_path_and_only_a_tab_that_is_what_it_claims():
    s, clock, _ = status()
    own = Conn(Origin="http://127.0.0.1:8000")
    s.joined(own, True)
    s.said(own, {"type": "page", "url": "http://127.0.0.1:8000/"})
    for path in ("/\\127.0.0.1:35100\\attack.html", "//127.0.0.1:35100/attack.html", "/\n/127.0.0.1:35100/a.html",
                 "/\t/127.0.0.1:35100/a.html", "/a\x1b[2J.html", "attack.html"):
        assert not page_status.followable(path), path
        assert s.to_follow([own], [path]) is None, path
    assert s.to_follow([own], ["/new.html"]) == (own, "/new.html")
    # A page of another loopback port claims to be this site's and to have the focus: never followed.
    liar = Conn(Origin="http://127.0.0.1:35100")
    clock.now += 1
    s.joined(liar, True)
    s.said(liar, {"type": "page", "url": "http://127.0.0.1:8000/", "focused": True})
    assert s.to_follow([own, liar], ["/new.html"]) == (own, "/new.html")
    # Through the file server: its Origin is the relay's.
    relayed = Conn(**{secret.RELAY_HEADER: secret.relay_proof(PORT)})
    clock.now += 1
    s.joined(relayed, True)
    s.said(relayed, {"type": "page", "url": "http://192.168.1.5:8000/", "focused": True})
    assert s.to_follow([own, liar, relayed], ["/new.html"]) == (relayed, "/new.html")


def test_status_pages_reload_at_most_a_few_times_a_second():
    s, clock, _ = status()
    assert [s.may_reload() for _ in range(5)] == [True] * page_status.RELOADS_PER_SECOND + [False] * (
        5 - page_status.RELOADS_PER_SECOND)
    clock.now += 1.01
    assert s.may_reload()


def test_a_name_with_control_characters_never_reaches_the_terminal_raw():
    shown = consoles.escaped("/a\x1b]0;pwned\x07\nb\r.html")
    assert shown == "/a\\x1b]0;pwned\\x07\\nb\\r.html" and shown.isprintable()
    assert consoles.escaped("/café.html") == "/café.html"


@pytest.mark.parametrize("name", ["a;touch X;.js", "$(touch X).js", "`touch X`.js", "a\ntouch X\n.js", "it's.js"])
def test_a_shell_s_script_gets_the_file_name_quoted(tmp_path, name):
    import subprocess

    words = editor.command(f"sh -c 'printf %s {{file}} > {tmp_path / 'got'}'")
    subprocess.run(editor.filled(words, name, 1, 2), cwd=tmp_path, check=True, timeout=10)
    assert (tmp_path / "got").read_text() == name and not (tmp_path / "X").exists()
    assert editor.filled(["bash", "-lc", "e {file}:{line}", "{file}"], "a;b", 3, 1) == [
        "bash", "-lc", "e 'a;b':3", "a;b"]
    assert editor.filled(["/bin/zsh", "-c", "e {file}"], "x y", 1, 1) == ["/bin/zsh", "-c", "e 'x y'"]


def test_editor_commands_from_the_flag_or_a_known_visual():
    assert editor.command("code -g {file}:{line}:{column}") == ["code", "-g", "{file}:{line}:{column}"]
    assert editor.command("myedit") == ["myedit", "{file}"]
    assert editor.command(None, {"VISUAL": "/usr/bin/subl -w"}) == ["/usr/bin/subl", "-w", "{file}:{line}:{column}"]
    assert editor.command(None, {"EDITOR": "idea"}) == ["idea", "--line", "{line}", "{file}"]
    assert editor.command(None, {"EDITOR": "nvim"}) is None  # a terminal editor: only when --editor asks
    assert "terminal" in editor.why_none({"EDITOR": "nvim"})
    assert editor.filled(["e", "{file}:{line}"], "a b.js; rm -rf /", 3, 1) == ["e", "a b.js; rm -rf /:3"]


def test_only_files_under_the_root_open(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "index.html").write_text("x")
    (root / ".env").write_text("secret")
    (tmp_path / "out.txt").write_text("outside")
    os.symlink(tmp_path / "out.txt", root / "link.txt")
    assert editor.under(str(root), "/sub/") == str(root / "sub" / "index.html")
    for refused in ("/../out.txt", "/%2e%2e/out.txt", "/link.txt", "/.env", "relative", "/sub/nothing", "/\0"):
        assert editor.under(str(root), refused) is None, refused
    opener = editor.Opener(str(root), "true")

    def token():
        return json.loads(opener.token_answer("same-origin", True)[1])["token"]

    good = {"token": token(), "path": "/sub/", "line": 1}
    assert opener.answer(False, json.dumps(good).encode(), True)[0] == 403  # not its own origin
    assert opener.answer(True, json.dumps({**good, "token": "x" * 24}).encode(), True)[0] == 403
    assert opener.answer(True, b"not json", True)[0] == 403
    assert opener.answer(True, json.dumps({**good, "token": token(), "line": "1"}).encode(), True)[0] == 400
    assert opener.answer(True, json.dumps({**good, "token": token(), "source": "../out.txt", "path": None}
                                          ).encode(), True)[0] == 404


def test_a_token_is_for_this_user_s_browser_and_opens_once_a_few_times_a_second(tmp_path):
    (tmp_path / "a.js").write_text("x")
    clock = Clock()
    opener = editor.Opener(str(tmp_path), "true", clock=clock)
    assert opener.token_answer("same-origin", False)[0] == 403  # another user, another device
    assert opener.token_answer(None, True)[0] == 403  # not a browser (curl): a browser always says
    assert opener.token_answer("cross-site", True)[0] == 403
    tokens = [json.loads(opener.token_answer("same-origin", True)[1])["token"] for _ in range(5)]
    assert len(set(tokens)) == 5  # a fresh one each time
    ask = {"path": "/a.js", "line": 1}
    assert opener.answer(True, json.dumps({**ask, "token": tokens[0]}).encode(), False)[0] == 403
    assert opener.answer(True, json.dumps({**ask, "token": tokens[1]}).encode(), True)[0] == 204
    assert opener.answer(True, json.dumps({**ask, "token": tokens[1]}).encode(), True)[0] == 403  # spent
    assert opener.answer(True, json.dumps({**ask, "token": tokens[2]}).encode(), True)[0] == 204
    assert opener.answer(True, json.dumps({**ask, "token": tokens[3]}).encode(), True)[0] == 204
    assert opener.answer(True, json.dumps({**ask, "token": tokens[4]}).encode(), True)[0] == 403  # a 4th this second
    clock.now += 1.01
    late = json.loads(opener.token_answer("same-origin", True)[1])["token"]
    assert opener.answer(True, json.dumps({**ask, "token": tokens[4]}).encode(), True)[0] == 204  # a second later
    clock.now += editor.TOKEN_LIFE + 0.01
    assert opener.answer(True, json.dumps({**ask, "token": late}).encode(), True)[0] == 403  # too old


def test_a_burst_of_changes_is_one_state_to_the_status_pages():
    sent, calls = [], []
    s = page_status.Status(lambda to, text: sent.append((set(to), json.loads(text))), Clock(),
                           later=lambda delay, f: calls.append((delay, f)))
    s.watchers.add("w")
    a = Conn("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1", "10.0.0.2")
    s.joined(a, True)
    for i in range(50):
        s.said(a, {"type": "console", "kind": "error", "text": f"e{i}"})
    assert len(calls) == 1 and not sent
    calls[0][1]()
    assert len(sent) == 1 and sent[0][1]["pages"][0]["device"] == "iPhone"
    assert sent[0][1]["pages"][0]["browser"] == "Mobile Safari"
