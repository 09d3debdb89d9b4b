"""Open in editor: a click on ``file:line`` in a page's error toast opens that
file at that line, in the editor ``--editor CMD`` names (``{file}``,
``{line}``, ``{column}`` replaced), else in ``$VISUAL`` or ``$EDITOR`` when
it is an editor whose way to take a line is known.

Only the page's own snippet may ask: a POST to ``/_sigreload/open`` on the
HTTP server's origin (the Origin header says so), carrying this run's token
(``GET /_sigreload/token``, an answer only a page of this origin can read),
for a file under the served folder.
Anything else is refused. Terminal editors (vim, nvim, emacs, nano) open
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
from collections.abc import Mapping
from urllib.parse import unquote

log = logging.getLogger("sigreload.editor")
PATH = "/_sigreload/open"
TOKEN_PATH = "/_sigreload/token"
MOST_BODY = 4096
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
        words = shlex.split(env.get(name, ""))
        if words and os.path.basename(words[0]) in KNOWN:
            return words + KNOWN[os.path.basename(words[0])]
    return None


def why_none(env: Mapping[str, str] = os.environ) -> str:
    """Why no editor opens, in one line for the terminal."""
    words = shlex.split(env.get("VISUAL") or env.get("EDITOR") or "")
    if words and os.path.basename(words[0]) in TERMINAL:
        return (f"{words[0]} needs a terminal: name one with --editor, e.g. "
                f"--editor \"x-terminal-emulator -e {words[0]} +{{line}} {{file}}\"")
    return "no editor: pass --editor CMD (e.g. --editor \"code -g {file}:{line}:{column}\") or set $VISUAL"


def filled(words: list[str], file: str, line: int, column: int) -> list[str]:
    """``words`` with the placeholders replaced (each word stays one argument: no shell)."""
    return [w.replace("{file}", file).replace("{line}", str(line)).replace("{column}", str(column)) for w in words]


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
                 env: Mapping[str, str] = os.environ) -> None:
        """``root``: the served folder (a page's URL path is a file there); ``source``: the watched
        one, where a build's output (or an app) names its files relative to (default: ``root``)."""
        self.root, self.source, self.words, self.env = root, source or root, command(template, env), env
        self.token = secrets.token_urlsafe(18)

    def token_answer(self, fetch_site: str | None) -> tuple[int, bytes]:
        """(status, JSON) for GET TOKEN_PATH: this run's token, to a page of this origin only (no
        other can read the answer; a browser that says where a request comes from is believed)."""
        if fetch_site not in (None, "same-origin"):
            return 403, b'{"error": "only this origin\'s pages"}'
        return 200, json.dumps({"token": self.token}).encode()

    def answer(self, same_origin: bool, body: bytes) -> tuple[int, str]:
        """(status, one line) for a request: 204 when the editor was started."""
        try:
            asked = json.loads(body)
        except ValueError:
            asked = None
        if not same_origin or not isinstance(asked, dict) or not isinstance(asked.get("token"), str) \
                or not secrets.compare_digest(asked["token"], self.token):
            return 403, "only this origin's pages, with this run's token, open files"
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
            log.warning("cannot open %s:%d: %s", file, line, why_none(self.env))
            return 501, why_none(self.env)
        argv = filled(self.words, file, line, column)
        try:
            started = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            log.warning("cannot start the editor %s: %s", argv[0], exc.strerror or exc)
            return 500, f"cannot start {argv[0]}"
        threading.Thread(target=started.wait, name="editor", daemon=True).start()  # reaped when it exits
        log.info("opened %s:%d in %s", file, line, os.path.basename(argv[0]))
        return 204, ""
