"""Whether a burst that looks settled is still being written, and for how long
it may be held for that (``pacing.Pacing.burst`` asks).

A file still open after a write says so (``notifications.Writing``: an
in-place save emptied the file, and its writer was descheduled before the
write: the empty page went out, then the real one). Two writers say so too: an atomic writer's temporary (sed -i's
``sedXXXXXX``, signatures.TEMPORARY) that is still there is renamed into
place within milliseconds, unless the writer was descheduled; and git holds
``index.lock`` while a checkout, merge or pull writes the tree, however slow
the machine (a filter such as LFS's, another process's turn on the CPU). A
burst told before either is done reaches the pages as two messages, the
first naming a temporary or half a checkout.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from sigreload.watching.notifications import Writing
from sigreload.watching.signatures import TEMPORARY

TEMPORARY_HOLD = 0.5  # seconds after a burst's first change a temporary still there, or a file open
# after a write, holds it (a real file so named; a file a program keeps open, a log)
GIT_HOLD = 2.0  # ... and git's index lock (pacing.MAX_BURST caps both)


def git_lock(root: str) -> str | None:
    """The path of git's index lock for the work tree holding ``root`` (a
    linked worktree's ``.git`` file names its own git folder), or None."""
    folder = os.path.abspath(root)
    while True:
        dot_git = os.path.join(folder, ".git")
        if os.path.isdir(dot_git):
            return os.path.join(dot_git, "index.lock")
        if os.path.isfile(dot_git):
            try:
                with open(dot_git, encoding="utf-8") as f:
                    line = f.readline().strip()
            except (OSError, UnicodeDecodeError):
                return None
            if not line.startswith("gitdir:"):
                return None
            return os.path.join(folder, line[len("gitdir:"):].strip(), "index.lock")
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


class Unsettled:
    """``unsettled(paths)`` for the trees' git locks (``locks``, set as trees
    are added) and the files ``writing`` has open."""

    def __init__(self, writing: Writing) -> None:
        self.locks: tuple[str, ...] = ()
        self.writing = writing

    def add_root(self, root: str) -> None:
        lock = git_lock(root)
        if lock and lock not in self.locks:
            self.locks = (*self.locks, lock)

    def __call__(self, paths: Iterable[str]) -> float:
        """How long after the burst's first change it may be held: GIT_HOLD while
        git's lock is held, TEMPORARY_HOLD while a temporary is there or a file
        is open after a write, else 0."""
        if any(os.path.lexists(lock) for lock in self.locks):
            return GIT_HOLD
        if any(p in self.writing or TEMPORARY.fullmatch(os.path.basename(p)) and os.path.lexists(p) for p in paths):
            return TEMPORARY_HOLD
        return 0.0
