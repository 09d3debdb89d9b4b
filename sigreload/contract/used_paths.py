"""What open pages use, for the watcher to look at first (LiveServer.jl
watches what it served): one file per source.

``"http"``: the files our HTTP server served, as paths; ``"pages"``: what
the snippets reported their pages loaded, as URL paths (the broadcaster
collects them). The watcher looks at a stat of both every tick and reads
them when one changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sigreload.contract import messages

MOST = 256  # paths kept per source: what a hostile page can make the watcher look at first
FORMAT = "paths, one a line (UTF-8, undecodable bytes as surrogateescape; a path with a newline is left out), " \
         f"newest last, at most {MOST}"
CHANNELS = {
    "http": messages.Channel("used-http.paths", FORMAT, "the HTTP server (files it served, as paths; Writer)",
                             "the watcher, when its stat changes (watching.used_files)"),
    "pages": messages.Channel("used-pages.paths", FORMAT, "the broadcaster (what pages reported, as URL paths; "
                              "Writer)", "the watcher, when its stat changes (watching.used_files)"),
}
SOURCES = tuple(CHANNELS)  # what the watcher looks at first
RENDERED = {  # what a Django app's pages rendered (sigreload.middleware.rendered): the watcher's --app filter
    "app": messages.Channel("used-app.paths", FORMAT, "the middleware in a Django app (the template files its "
                            "pages rendered; Writer)", "the watcher, on an edit under a template folder "
                            "(middleware.rendered.unrendered)"),
    "app-dirs": messages.Channel("used-app-dirs.paths", FORMAT.replace("paths", "folders", 1), "the middleware "
                                 "in a Django app (Django's template folders; Writer)", "the watcher "
                                 "(middleware.rendered.unrendered)"),
}
EVERY = CHANNELS | RENDERED


class Writer:
    """One source's list (``source``: a key of CHANNELS). Bounded to MOST,
    newest last; written into the folder ``where()`` names (None: no
    broadcaster yet, kept for when there is one), only when it changed.
    Thread-safe."""

    def __init__(self, where: Callable[[], Path | None], source: str) -> None:
        self.where, self.source = where, source
        self.paths: dict[str, int] = {}  # path -> when it was noted last (a count of notes), oldest first
        self.notes = 0
        self.lock = threading.Lock()
        self.written_to: Path | None = None
        self._write()  # a list an earlier process left in this folder (killed) is stale

    def add(self, path: str) -> None:
        """Note one more path (a file just served): it goes last, so what is
        used again is never the one dropped (a page with 300 includes, or
        Django's own form templates, pushed out the page that was open)."""
        with self.lock:
            noted = self.paths.get(path)
            if noted is not None and self.notes - noted < MOST // 2 and self.where() == self.written_to:
                return  # among the newest half: nothing to write (the folder too: a new broadcaster gets it all)
            self.paths.pop(path, None)
            self.notes += 1
            self.paths[path] = self.notes
            self._write()

    def replace(self, paths: Iterable[str]) -> None:
        """The whole list, as it is now."""
        with self.lock:
            new = list(dict.fromkeys(paths))
            if new != list(self.paths) or self.written_to is None or self.where() != self.written_to:
                self.paths = {path: self.notes + i for i, path in enumerate(new, 1)}
                self.notes += len(new)
                self._write()

    def _write(self) -> None:
        self.paths = dict(list(self.paths.items())[-MOST:])
        folder = self.where()
        if folder is not None and write(folder, self.source, list(self.paths)):
            self.written_to = folder


def write(folder: Path, source: str, paths: list[str]) -> bool:
    """The list of ``source`` is ``paths``; whether it was written (never raises:
    only an optimisation, the watcher's sweep still finds every change)."""
    lines = [p.encode("utf-8", "surrogateescape") for p in paths if "\n" not in p]
    try:
        EVERY[source].put(folder, b"\n".join(lines))
    except OSError:
        return False
    return True


def read(folder: Path | None) -> dict[str, list[str]]:
    """{source: paths} of what open pages use (a source without a file: absent)."""
    lists = {}
    for source, channel in CHANNELS.items():
        data = channel.get(folder)
        if data is not None:
            lists[source] = [p for p in data.decode("utf-8", "surrogateescape").split("\n") if p][-MOST:]
    return lists


def listed(folder: Path, source: str) -> list[str] | None:
    """The list of ``source`` (a key of EVERY) in ``folder``, or None when there is none."""
    data = EVERY[source].get(folder)
    return None if data is None else [p for p in data.decode("utf-8", "surrogateescape").split("\n") if p]


def stamp(folder: Path | None) -> list[Any]:
    """What changes when either list changes: a stat each, nothing read."""
    return [channel.stamp(folder) for channel in CHANNELS.values()]
