"""The pure parts of issue 35: what the status page holds (page_status), whom
--follow picks, which editor command runs and which files it may open
(editor). A fake clock, fake connections; the real thing is in
tests/test_page_tells.py."""

import json
import os

from sigreload import editor, page_status


class Conn:
    """A connection as page_status sees one: its request's headers, its peer."""

    def __init__(self, agent="", address="::1", **headers):
        self.request = type("Request", (), {"headers": {"User-Agent": agent, **headers}})()
        self.remote_address = (address, 40000)


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
    relayed = Conn("", "127.0.0.1", **{"X-Sigreload-Peer": "192.168.1.9"})
    forged = Conn("", "192.168.1.20", **{"X-Sigreload-Peer": "10.0.0.1"})  # not from a relay here
    for c in (plain, relayed, forged):
        s.joined(c, c is not plain)
    assert s.pages[plain].url == "http://127.0.0.1:3000" and "plain" in s.pages[plain].title
    assert [s.pages[c].address for c in (relayed, forged)] == ["192.168.1.9", "192.168.1.20"]


def test_follow_picks_the_tab_focused_last_for_a_page_no_tab_shows():
    s, clock, _ = status()
    a, b, c = Conn(), Conn(), Conn()
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
    good = {"token": opener.token, "path": "/sub/", "line": 1}
    assert opener.answer(False, json.dumps(good).encode())[0] == 403  # not its own origin
    assert opener.answer(True, json.dumps({**good, "token": "x" * 24}).encode())[0] == 403
    assert opener.answer(True, b"not json")[0] == 403
    assert opener.answer(True, json.dumps({**good, "line": "1"}).encode())[0] == 400
    assert opener.answer(True, json.dumps({**good, "source": "../out.txt", "path": None}).encode())[0] == 404


def test_a_burst_of_changes_is_one_state_to_the_status_pages():
    s, _, sent = status()
    calls = []
    s.later = lambda delay, f: calls.append((delay, f))
    s.watchers.add("w")
    a = Conn("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1", "10.0.0.2")
    s.joined(a, True)
    for i in range(50):
        s.said(a, {"type": "console", "kind": "error", "text": f"e{i}"})
    assert len(calls) == 1 and not sent
    calls[0][1]()
    assert len(sent) == 1 and sent[0][1]["pages"][0]["device"] == "iPhone"
    assert sent[0][1]["pages"][0]["browser"] == "Mobile Safari"
