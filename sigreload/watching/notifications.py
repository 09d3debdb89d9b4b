"""Kernel change notifications (watchdog), taken as hints of where to look.

A notification only names a path; the watcher stats it to see what changed.
Reads (opens, closes without a write: page loads, our own listings) wake
nobody. Where notifications do not work (Docker bind mounts, WSL drives,
NFS), the watcher's sweep finds the change and it polls from then on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

CHANGES = ("FileModifiedEvent", "FileClosedEvent", "FileCreatedEvent", "FileMovedEvent", "FileDeletedEvent",
           "DirCreatedEvent", "DirMovedEvent", "DirDeletedEvent", "DirModifiedEvent")


MOST_OPEN = 10_000  # files noted open for writing; more are forgotten (a stale one holds one burst)


class Writing:
    """The files a writer has open: a write was notified and no close after
    it yet (inotify says both). A writer descheduled between ``open(..., "w")``
    (the file emptied) and its write left a burst that looked settled on an
    empty page, and pages reloaded twice. Elsewhere (FSEvents, polling) nothing
    is known, and nothing is held."""

    def __init__(self) -> None:
        self.paths: set[str] = set()

    def note(self, event_type: str, path: str) -> None:
        """A file's notification (watchdog's event type), from the observer's thread."""
        if event_type == "modified":
            if len(self.paths) >= MOST_OPEN:
                self.paths.clear()
            self.paths.add(os.path.normpath(path))
        elif event_type in ("closed", "deleted", "moved"):
            self.paths.discard(os.path.normpath(path))

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and os.path.normpath(path) in self.paths


def observe(roots: Iterable[str], hint: Callable[[list[str]], Any], writing: Writing | None = None) -> Any:
    """A started watchdog Observer calling ``hint(paths)`` for each change under
    ``roots``, and telling ``writing`` of files' writes and closes where the
    kernel says both (inotify). Raises ImportError (no watchdog) or OSError
    (no notifications)."""
    from watchdog import events
    from watchdog.observers import Observer

    if getattr(Observer, "__name__", "") != "InotifyObserver":
        writing = None  # no closes told: every written file would look open for good

    class Hints(events.FileSystemEventHandler):
        def on_any_event(self, event: Any) -> None:
            if event.event_type not in ("opened", "closed_no_write"):  # reads are no change
                paths = (event.src_path, getattr(event, "dest_path", ""))
                if writing is not None and not event.is_directory:
                    writing.note(event.event_type, os.fsdecode(event.src_path))
                hint([os.fsdecode(p) for p in paths if p])

    changes = [getattr(events, name) for name in CHANGES if hasattr(events, name)]
    observer = Observer()
    for root in roots:
        observer.schedule(Hints(), root, recursive=True, event_filter=changes)
    observer.start()
    return observer
