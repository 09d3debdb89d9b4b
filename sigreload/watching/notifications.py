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


def observe(roots: Iterable[str], hint: Callable[[list[str]], Any]) -> Any:
    """A started watchdog Observer calling ``hint(paths)`` for each change under
    ``roots``. Raises ImportError (no watchdog) or OSError (no notifications)."""
    from watchdog import events
    from watchdog.observers import Observer

    class Hints(events.FileSystemEventHandler):
        def on_any_event(self, event: Any) -> None:
            if event.event_type not in ("opened", "closed_no_write"):  # reads are no change
                paths = (event.src_path, getattr(event, "dest_path", ""))
                hint([os.fsdecode(p) for p in paths if p])

    changes = [getattr(events, name) for name in CHANGES if hasattr(events, name)]
    observer = Observer()
    for root in roots:
        observer.schedule(Hints(), root, recursive=True, event_filter=changes)
    observer.start()
    return observer
