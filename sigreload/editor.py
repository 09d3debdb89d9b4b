"""Open in editor: a click on ``file:line`` in a page's error toast opens that
file at that line, in the editor ``--editor CMD`` names (``{file}``,
``{line}``, ``{column}`` replaced), else in ``$VISUAL`` or ``$EDITOR`` when
it is an editor whose way to take a line is known.

Only the page's own snippet, in a browser of this user on this machine, may
ask: a POST to ``/_sigreload/open`` on the HTTP server's origin (the Origin
header says so), carrying a token (``GET /_sigreload/token`` with the
browser's ``Sec-Fetch-Site: same-origin``, an answer only a page of this
origin can read; each token opens once, within TOKEN_LIFE seconds), for a
file under the served folder. Both come only from a loopback connection
that a process of this user holds (``ours``: another local user, or a LAN
device with --lan, gets 403), at most OPENS_PER_SECOND opens a second.
Anything else is refused. With ``sh -c`` (bash, zsh...) as the editor, the
placeholders are shell-quoted in its script. Terminal editors (vim, nvim, emacs, nano) open
only when ``--editor`` asks for them, in the terminal it names.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import secrets
import shlex
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from urllib.parse import unquote

from sigreload import consoles, platforms
from sigreload.contract import wire

log = logging.getLogger("sigreload.editor")
PATH = wire.OWN_OPEN_PATH
TOKEN_PATH = wire.OWN_TOKEN_PATH
MOST_BODY = 4096
TOKEN_LIFE = 10.0  # seconds a token opens a file (once)
TOKENS_MOST = 64  # tokens waiting to be used
OPENS_PER_SECOND = 3
SHELLS = ("sh", "bash", "zsh", "dash", "fish", "ksh")  # their -c script gets the placeholders shell-quoted
NOT_OURS = "only a browser of this user, on this machine, opens files"
TOKEN_HEADERS = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"))
# $VISUAL / $EDITOR by program name: the arguments that open {file} at {line}
KNOWN = {
    **dict.fromkeys(("code", "code-insiders", "codium", "cursor", "windsurf"), ["-g", "{file}:{line}:{column}"]),
    **dict.fromkeys(("subl", "sublime_text", "zed", "atom"), ["{file}:{line}:{column}"]),
    **dict.fromkeys(("idea", "pycharm", "charm", "webstorm", "phpstorm", "goland", "clion", "rubymine"),
                    ["--line", "{line}", "{file}"]),
}
TERMINAL = ("vim", "nvim", "vi", "emacs", "nano", "micro", "hx", "kak")  # need a terminal: only by --editor


def command(template: str | None, env: Mapping[str, str] = os.environ) -> list[str] | None:
    """The editor's argv, with ``{file}`` ``{line}`` ``{column}`` still in it:
    ``template`` (--editor), else $VISUAL or $EDITOR in a known form; None when none fits."""
    if template:
        words = shlex.split(template)
        return words if any("{file}" in w for w in words) else words + ["{file}"]
    for name in ("VISUAL", "EDITOR"):
        words = split(env.get(name, ""))
        if words and os.path.basename(words[0]) in KNOWN:
            return words + KNOWN[os.path.basename(words[0])]
    return None


def split(line: str) -> list[str]:
    """``line`` split as a shell would; none where it cannot be (``code "``: an
    environment variable no shell would run either)."""
    try:
        return shlex.split(line)
    except ValueError:
        return []


def why_none(env: Mapping[str, str] = os.environ) -> str:
    """Why no editor opens, in one line for the terminal."""
    words = split(env.get("VISUAL") or env.get("EDITOR") or "")
    if words and os.path.basename(words[0]) in TERMINAL:
        return (f"{words[0]} needs a terminal: name one with --editor, e.g. "
                f"--editor \"x-terminal-emulator -e {words[0]} +{{line}} {{file}}\"")
    return "no editor: pass --editor CMD (e.g. --editor \"code -g {file}:{line}:{column}\") or set $VISUAL"


def script_at(words: list[str]) -> int | None:
    """Where a shell's script is in ``words`` (``sh -c SCRIPT``, ``bash -lc SCRIPT``), or None: no shell."""
    if not words or os.path.basename(words[0]) not in SHELLS:
        return None
    for i, word in enumerate(words[1:-1], 1):
        if not word.startswith("-") or word.startswith("--"):
            return None
        if "c" in word:
            return i + 1
    return None


def filled(words: list[str], file: str, line: int, column: int) -> list[str]:
    """``words`` with the placeholders replaced (each word stays one argument: no shell;
    in a shell's ``-c`` script, shell-quoted: a file named ``a;rm x;.js`` is a name there too)."""
    script = script_at(words)
    values = {"{file}": file, "{line}": str(line), "{column}": str(column)}

    def fill(i: int, word: str) -> str:
        for name, value in values.items():
            word = word.replace(name, shlex.quote(value) if i == script else value)
        return word

    return [fill(i, w) for i, w in enumerate(words)]


def ours(peer: tuple[str, int] | None, own_port: int) -> bool:
    """Whether a client at ``peer`` (its address and port) is a process of this user on
    this machine: a loopback connection to ``own_port`` that one of its sockets holds."""
    if peer is None:
        return False
    found = platforms.same_user(str(peer[0]), int(peer[1]), own_port)
    if not found:
        log.debug("editor: refused %s:%d (not a process of this user on this machine)", peer[0], peer[1])
    return found


def under(root: str, url_path: str) -> str | None:
    """The file a page's URL path names under ``root`` ("/" and "/a/": their
    index.html), or None: outside it (``..``, a link out), a dotfile, or no file."""
    path = unquote(url_path)
    if not path.startswith("/") or "\0" in path:
        return None
    path = path + "index.html" if path.endswith("/") else path
    parts = [p for p in posixpath.normpath(path).split("/") if p]
    if any(p.startswith(".") for p in parts):
        return None
    real, top = os.path.realpath(os.path.join(root, *parts)), os.path.realpath(root)
    return real if real.startswith(top + os.sep) and os.path.isfile(real) else None


class Opener:
    """Answers the snippet's POSTs: checks them, then starts the editor (never waits for it)."""

    def __init__(self, root: str, template: str | None, source: str | None = None,
                 env: Mapping[str, str] = os.environ, clock: Callable[[], float] = time.monotonic) -> None:
        """``root``: the served folder (a page's URL path is a file there); ``source``: the watched
        one, where a build's output (or an app) names its files relative to (default: ``root``)."""
        self.root, self.source, self.words, self.env = root, source or root, command(template, env), env
        self.clock = clock
        self.tokens: dict[str, float] = {}  # token -> until when it opens a file
        self.opens: deque[float] = deque(maxlen=OPENS_PER_SECOND)  # when the last files opened
        self.lock = threading.Lock()  # the file server answers in threads

    def token_answer(self, fetch_site: str | None, client_ours: bool) -> tuple[int, bytes]:
        """(status, JSON) for GET TOKEN_PATH: a fresh token (one open, TOKEN_LIFE seconds), to a
        page of this origin only: the browser says so (Sec-Fetch-Site), and it is ``client_ours``."""
        if not client_ours:
            return 403, json.dumps({"error": NOT_OURS}).encode()
        if fetch_site != "same-origin":
            return 403, b'{"error": "only this origin\'s pages"}'
        token, now = secrets.token_urlsafe(18), self.clock()
        with self.lock:
            self.tokens = {t: until for t, until in self.tokens.items() if until > now}
            while len(self.tokens) >= TOKENS_MOST:
                del self.tokens[next(iter(self.tokens))]  # the oldest
            self.tokens[token] = now + TOKEN_LIFE
        return 200, json.dumps({"token": token}).encode()

    def spend(self, token: object) -> bool:
        """Whether ``token`` is one given out less than TOKEN_LIFE ago and not used yet
        (it is used now), and fewer than OPENS_PER_SECOND files opened in the last second
        (the token is then kept)."""
        now = self.clock()
        with self.lock:
            if len(self.opens) == self.opens.maxlen and now - self.opens[0] < 1.0:
                return False  # the token stays good: the page may ask again
            return (self.tokens.pop(token, 0.0) if isinstance(token, str) else 0.0) > now

    def answer(self, same_origin: bool, body: bytes, client_ours: bool) -> tuple[int, str]:
        """(status, one line) for a request: 204 when the editor was started."""
        if not client_ours:
            return 403, NOT_OURS
        try:
            asked = json.loads(body)
        except ValueError:
            asked = None
        if not same_origin or not isinstance(asked, dict) or not self.spend(asked.get("token")):
            return 403, "only this origin's pages, with a fresh token, open files (a few a second)"
        path, line, column = asked.get("path"), asked.get("line"), asked.get("column", 0)
        named = asked.get("source")  # a file a build's output names, relative to the watched folder
        if isinstance(named, str) and path is None:
            relative = os.path.relpath(named, self.source) if os.path.isabs(named) else named
            path, root = "/" + relative.replace(os.sep, "/"), self.source
        else:
            root = self.root
        if not isinstance(path, str) or type(line) is not int or type(column) is not int or line < 0 or column < 0:
            return 400, "path (a string), line and column (numbers) are needed"
        file = under(root, path) or (under(self.source, path) if root != self.source else None)
        if file is None:
            return 404, "no such file in the served folder"
        if self.words is None:
            log.warning("cannot open %s:%d: %s", consoles.escaped(file, 1000), line, why_none(self.env))
            return 501, why_none(self.env)
        argv = filled(self.words, file, line, column)
        with self.lock:
            self.opens.append(self.clock())
        try:
            started = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            log.warning("cannot start the editor %s: %s", argv[0], exc.strerror or exc)
            return 500, f"cannot start {argv[0]}"
        threading.Thread(target=started.wait, name="editor", daemon=True).start()  # reaped when it exits
        log.info("opened %s:%d in %s", consoles.escaped(file, 1000), line, consoles.escaped(os.path.basename(argv[0])))
        return 204, ""
