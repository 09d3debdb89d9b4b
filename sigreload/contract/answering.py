"""The app's answering windows: when the app was computing answers (the
proxy's view), for the watcher.

A file the app writes while it answers a request (its data, uploads, a
cache) is its output, not an edit: the watcher does not reload the pages for it.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from sigreload.contract import messages

CHANNEL = messages.Channel(
    "app-answering.windows",
    format="JSON: [[start, end or null], ...] in time.time() seconds, oldest first: the last WINDOWS_KEPT "
           "requests answered, then the ones being answered now (no end yet)",
    writer="the proxy (sigreload-http --proxy), when a request begins and when it ends (Writer)",
    reader="the watcher, for each change, with the file's mtime (app_wrote)",
)
WINDOWS_KEPT = 64
# Seconds of a window still open that count at once: a view writes its data in well under
# this; a long-poll the app holds open (no answer yet) must not make every later save look like its write
WINDOW_MOST = 1.0
SETTLE = 1.0  # seconds after a change in a window open longer: it ended meanwhile (the app's write) or not (an edit)
SAY_EVERY = 0.05  # seconds between two writes while other windows stay open (well under RECHECK and WINDOW_MOST)

Window = tuple[float, float | None]  # (start, end), None: still open


class Writer:
    """The proxy's side. A window runs from when the app has the whole request
    (a half-sent POST opens none) until its answer's headers came (an open
    EventSource's stream is none). Written into the folder ``where()`` names
    when a request begins and when it ends: at once when the first window opens
    or the last one ends, else at most every SAY_EVERY seconds (the latest state):
    300 LAN clients posting in a loop made these writes most of the proxy's work,
    and a change while other windows are open is the app's already (WINDOW_MOST)
    or looked at again (RECHECK). Single-threaded (the proxy's event loop)."""

    def __init__(self, where: Callable[[], Path | None]) -> None:
        self.where = where
        self.windows: list[Window] = []
        self.open: dict[int, float] = {}  # requests being answered: their start
        self.said = -SAY_EVERY  # when the windows were last written (time.monotonic())
        self.later: asyncio.TimerHandle | None = None  # the coming write of the latest state

    def begin(self, request: int, start: float) -> None:
        """A request is being answered (its window is open until ``end``)."""
        self.open[request] = start
        self.say(len(self.open) == 1)

    def end(self, request: int, end: float) -> None:
        """The request's answer came (or it ended before it began: nothing)."""
        if request in self.open:
            self.windows = (self.windows + [(self.open.pop(request), end)])[-WINDOWS_KEPT:]
            self.say(not self.open)

    def say(self, now: bool) -> None:
        """Write the windows: at once when ``now`` or SAY_EVERY passed, else soon."""
        wait = self.said + SAY_EVERY - time.monotonic()
        if not now and wait > 0:
            if self.later is None:
                try:
                    self.later = asyncio.get_running_loop().call_later(wait, self.say, True)
                except RuntimeError:  # no loop (a test): at once
                    return self.say(True)
            return
        if self.later is not None:
            self.later.cancel()
            self.later = None
        self.said = time.monotonic()
        write(self.where(), self.windows + [(start, None) for start in self.open.values()])


def write(folder: Path | None, windows: list[Window]) -> None:
    """Say when the app was answering (``windows``); never raises (only a hint:
    without it the file reloads the pages, as without a proxy)."""
    if folder is not None:
        try:
            CHANNEL.put(folder, json.dumps(windows).encode())
        except OSError:
            pass


def read(folder: Path | None) -> list[Window]:
    """The windows the proxy said ([] without a folder, a file, or one that is not windows)."""
    try:
        said = json.loads(CHANNEL.get(folder) or b"[]")
        return [(float(start), None if end is None else float(end)) for start, end in said]
    except (ValueError, TypeError):
        return []


# What a page is made of: saved, it is an edit, whenever it comes. A save while
# any request was open (the reload's own, a long-poll just begun, an EventSource
# reconnecting) was taken for the app's output, and no page showed it (r33n4).
# Apps that write such files while they answer (a bundler, a Sass middleware)
# write them when their sources changed: one update more, never a loop.
PAGE_SOURCES = ("*.html", "*.htm", "*.jinja", "*.jinja2", "*.j2", "*.css", "*.scss", "*.sass", "*.less",
                "*.js", "*.mjs", "*.ts", "*.jsx", "*.tsx", "*.vue", "*.svelte")


def page_source(path: str) -> bool:
    """Whether ``path`` is a template, a stylesheet or a script: never the app's output."""
    return any(fnmatch.fnmatch(os.path.basename(path), glob) for glob in PAGE_SOURCES)


def app_wrote(folder: Path | None, mtime: float, before: float = 0.02, after: float = 0.005) -> bool | None:
    """Whether a file changed at ``mtime`` (time.time() seconds) while the app was
    computing an answer, by what the proxy left in ``folder``: True in a window
    that ended, or in the first WINDOW_MOST seconds of one still open; None
    (not known yet: look again) later in one still open, until SETTLE seconds
    after the change (a slow view ends soon after its write; a long-poll the
    app holds does not: the change is an edit then). A file's mtime comes from
    the kernel's coarse clock, up to a tick (4 or 10 ms) behind time.time(): a
    write just after a request began may show ``before`` it; never after it
    ended (``after``: rounding only), so an edit saved right after a page load
    is still an edit."""
    inside = [(start, end) for start, end in read(folder)
              if start - before <= mtime <= (end if end is not None else float("inf")) + after]
    if any(end is not None or mtime <= start + WINDOW_MOST for start, end in inside):
        return True
    return None if inside and time.time() - mtime < SETTLE else False
