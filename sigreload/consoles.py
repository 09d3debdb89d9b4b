"""The pages' errors in the terminal: what each snippet reports (uncaught
errors, unhandled rejections, console.error) printed by the broadcaster as
one line, ``[Mobile Safari /about] TypeError: ... (at app.js:3)``, so a
page on a phone, which has no devtools, is not silent. At most PER_SECOND
lines a second per page and TOTAL_PER_SECOND for all pages together (a
thousand connections from the LAN are a thousand pages: the rest counted,
and said once a second), every control character escaped, runs of spaces
made one and the line cut to the terminal's width: a page's text never
moves the terminal's cursor, nor wraps into a row that reads like a line of ours.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import unicodedata
from collections.abc import Callable
from typing import Any

PER_SECOND = 10
TOTAL_PER_SECOND = 20  # lines a second from every page together
TEXT_MOST = 400  # characters of a message shown
COLUMNS = 160  # a line's width when no terminal tells its own
PREFIX = len("sigreload.page: ")  # what logging puts before the line (command_line.setup_logging)
SPACES = re.compile(r"\s+")
KINDS = {"error": "", "unhandled rejection": "unhandled rejection: ", "console.error": "console.error: "}

log = logging.getLogger("sigreload.page")


def browser(user_agent: str) -> str:
    """A short name for the browser behind ``user_agent`` ("Mobile Safari", "Firefox")."""
    mobile = "Mobile" in user_agent or "Android" in user_agent
    for token, name in (("Firefox/", "Firefox"), ("FxiOS/", "Firefox"), ("Edg", "Edge"), ("CriOS/", "Chrome"),
                        ("Chrome/", "Chrome"), ("Safari/", "Safari")):
        if token in user_agent:
            return f"Mobile {name}" if mobile else name
    return "a browser"


def escaped(text: str, most: int = TEXT_MOST) -> str:
    """``text`` cut to ``most`` characters, control characters written as escapes: what
    a page or a file's name says never moves the terminal's cursor (every line of ours
    that prints one goes through here)."""
    cut = text[:most] + ("…" if len(text) > most else "")
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in cut)


def columns() -> int:
    """The terminal's width (stdout's, else stderr's), COLUMNS when there is none."""
    for fd in (1, 2):
        try:
            return max(40, os.get_terminal_size(fd).columns)
        except OSError:
            continue
    return COLUMNS


def cut(line: str, width: int) -> str:
    """``line`` in at most ``width`` columns (wide characters take two), runs of spaces made one."""
    line = SPACES.sub(" ", line)
    used = 0
    for i, c in enumerate(line):
        used += 2 if unicodedata.east_asian_width(c) in "WF" else 1
        if used > width - 1:
            return line[:i] + "…"
    return line


def shown(text: str) -> str:
    """A message on one line: its first line, and where it happened (the stack's next line)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[0] + (f" ({lines[1]})" if len(lines) > 1 else "")


class Consoles:
    """Prints what pages report: at most PER_SECOND lines a second for each,
    TOTAL_PER_SECOND for all. ``later(delay, f)`` runs ``f`` later (the
    running loop's call_later when there is one): the note of what was
    dropped comes when the second ends, not with the next page's line."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 later: Callable[[float, Callable[[], None]], object] | None = None) -> None:
        self.clock = clock
        self.later = later
        self.budget: dict[Any, list[float]] = {}  # connection -> [lines it may print now, when, lines dropped]
        self.total = [-2.0, 0, 0]  # every page's: [the second's start, lines in it, lines dropped]
        self.note_due = False

    def said(self, connection: Any, message: dict[str, Any]) -> None:
        kind, path, text = message.get("kind"), message.get("path"), message.get("text")
        if not isinstance(kind, str) or kind not in KINDS or not isinstance(path, str) or not isinstance(text, str):
            return
        now = self.clock()  # each page: a bucket of PER_SECOND lines, refilled as time passes
        budget = self.budget.setdefault(connection, [float(PER_SECOND), now, 0])
        budget[0] = min(PER_SECOND, budget[0] + (now - budget[1]) * PER_SECOND)
        budget[1] = now
        if budget[0] < 1:
            budget[2] += 1
            return
        budget[0] -= 1
        self.dropped(connection, budget)
        request = getattr(connection, "request", None)
        agent = request.headers.get("User-Agent", "") if request is not None else ""
        line = f"[{browser(agent)} {escaped(path, 200)}] {KINDS[kind]}{escaped(shown(text))}"
        self.print(cut(line, columns() - PREFIX))

    def left(self, connection: Any) -> None:
        budget = self.budget.pop(connection, None)
        if budget is not None:
            self.dropped(connection, budget)

    def dropped(self, connection: Any, budget: list[float]) -> None:
        if budget[2]:
            self.print(f"({int(budget[2])} more line(s) from that page within a second, not shown)", int(budget[2]))
            budget[2] = 0

    def print(self, line: str, stands_for: int = 1) -> None:
        """Print ``line`` within every page's budget; else count the ``stands_for`` lines it stands for."""
        now = self.clock()
        if now - self.total[0] >= 1.0:
            self.note()
            self.total = [now, 0, 0]
        if self.total[1] >= TOTAL_PER_SECOND:
            self.total[2] += stands_for
            self.note_later()
            return
        self.total[1] += 1
        log.warning("%s", line)

    def note_later(self) -> None:
        if self.note_due:
            return
        later = self.later
        if later is None:
            try:
                later = asyncio.get_running_loop().call_later
            except RuntimeError:
                return  # no loop: said with the next line
        self.note_due = True
        later(max(0.0, self.total[0] + 1.0 - self.clock()), self.note)

    def note(self) -> None:
        """Say once what every page's budget left out (idempotent)."""
        self.note_due = False
        if self.total[2]:
            log.warning("(%d more line(s) from pages within a second, not shown: at most %d a second in all)",
                        int(self.total[2]), TOTAL_PER_SECOND)
            self.total[2] = 0
