"""The pages' errors in the terminal: what each snippet reports (uncaught
errors, unhandled rejections, console.error) printed by the broadcaster as
one line, ``[Mobile Safari /about] TypeError: ... (at app.js:3)``, so a
page on a phone, which has no devtools, is not silent. At most PER_SECOND
lines a second per page (the rest counted, and said once), every control
character escaped: a page's text never moves the terminal's cursor or
forges a line of ours.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

PER_SECOND = 10
TEXT_MOST = 400  # characters of a message shown
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
    """``text`` cut to ``most`` characters, control characters written as escapes."""
    cut = text[:most] + ("…" if len(text) > most else "")
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in cut)


def shown(text: str) -> str:
    """A message on one line: its first line, and where it happened (the stack's next line)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[0] + (f" ({lines[1]})" if len(lines) > 1 else "")


class Consoles:
    """Prints what pages report, at most PER_SECOND lines a second for each."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.budget: dict[Any, list[float]] = {}  # connection -> [its second's start, lines in it, lines dropped]

    def said(self, connection: Any, message: dict[str, Any]) -> None:
        kind, path, text = message.get("kind"), message.get("path"), message.get("text")
        if kind not in KINDS or not isinstance(path, str) or not isinstance(text, str):
            return
        now = self.clock()
        budget = self.budget.get(connection)
        if budget is None or now - budget[0] >= 1.0:  # a new second from this page's first line
            if budget is not None:
                self.dropped(connection, budget)
            budget = self.budget[connection] = [now, 0, 0]
        budget[1] += 1
        if budget[1] > PER_SECOND:
            budget[2] += 1
            return
        request = getattr(connection, "request", None)
        agent = request.headers.get("User-Agent", "") if request is not None else ""
        log.warning("[%s %s] %s%s", browser(agent), escaped(path, 200), KINDS[kind], escaped(shown(text)))

    def left(self, connection: Any) -> None:
        budget = self.budget.pop(connection, None)
        if budget is not None:
            self.dropped(connection, budget)

    def dropped(self, connection: Any, budget: list[float]) -> None:
        if budget[2]:
            log.warning("(%d more line(s) from that page within a second, not shown)", int(budget[2]))
