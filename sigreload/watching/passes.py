"""One pass over what a ``SimpleWatcher`` watches: its files and trees, the
pacing's hot list, what open pages use, and the kernel's hints; each pass
finds the changed paths and tells the pacing as it finds them. The thread
that runs the passes, and calls back, is ``file_watching.SimpleWatcher``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from sigreload.watching import notifications
from sigreload.watching.file_tree import Tree
from sigreload.watching.pacing import Pacing
from sigreload.watching.signatures import WatchedFile, has_entries, signature_of, written_ago

log = logging.getLogger("sigreload.watch")

Uses = Callable[[], list[str] | None]  # what open pages use; None: unchanged since asked


class Passes:
    """What is watched, and one pass over it (the watcher's thread runs them).

    ``interval`` paces the ticks (``pacing.Pacing``); ``ignore`` are the trees'
    path globs; ``hints=True`` takes kernel notifications as hints where they
    work; ``uses()`` says which files open pages use (None: unchanged), looked
    at every tick while polling.
    """

    def __init__(self, *, interval: float, ignore: Iterable[str], hints: bool, uses: Uses | None) -> None:
        self.pacing = Pacing(interval)
        self.interval = self.pacing.interval
        self.ignore = tuple(ignore)
        # Replaced, never changed in place (the thread may be iterating them):
        self.files: dict[str, WatchedFile] = {}
        self.trees: dict[str, Tree] = {}  # by root
        self.want_hints = hints
        self.hints: set[str] = set()  # paths notifications named, not looked at yet
        self.hinted, self.lock = threading.Event(), threading.Lock()
        self.hints_began = 0.0  # wall clock: notifications (re)started; nothing older is proof they fail
        self.catch_up = False  # notifications just (re)started: sweep every tree once, at once
        self.hot: dict[str, Any] = {}  # the pacing's hot list: {path: the signature its tree holds}
        self.uses = uses  # what open pages use; None: unchanged
        self.used_paths: list[str] = []  # ... as it said last
        self.used: dict[str, Any] = {}  # ... not hot, looked at every tick while polling: {path: signature}
        self._observer: Any = None
        self.writing = notifications.Writing()  # files notifications say a writer has open

    @property
    def hinting(self) -> bool:
        """Whether kernel notifications tell where to look (else: polling)."""
        return self.pacing.hinting

    def _heat(self, paths: Iterable[str], now: float) -> None:
        """The pacing's hot list, and the files open pages use, each path with the
        signature its tree holds (kept here: a tick compares without touching the
        big per-folder maps)."""
        self.hot = self._known(self.pacing.heat(paths, now))
        self._use()

    def _use(self) -> None:
        known = self._known(p for p in self.used_paths if p not in self.hot)
        self.used = {p: s for p, s in known.items() if s is not None}

    def _known(self, paths: Iterable[str]) -> dict[str, Any]:
        """``paths`` with the signatures their trees hold (None: not there now). A file
        added by watch_file is not among them: it is looked at every tick anyway."""
        trees = list(self.trees.values())
        return {p: next(filter(None, (t.known(p) for t in trees)), None) for p in paths if p not in self.files}

    def _look_first(self) -> dict[str, Any]:
        """The files to look at every tick while polling: the hot list, and what
        open pages use (``uses``, asked every tick: cheap when nothing changed)."""
        paths = self.uses() if self.uses else None
        if paths is not None:
            self.used_paths = paths
            self._use()
        return {**self.used, **self.hot}

    def cost(self) -> float:
        """CPU seconds one full sweep of every tree takes (smoothed)."""
        return sum(t.cost for t in self.trees.values())

    def pace(self) -> str:
        """What polling costs, in words (for the log)."""
        return self.pacing.pace(self.cost())

    def is_watched(self, path: str) -> bool:
        """Whether ``path`` is watched: by watch_file, or as a file of a watched tree."""
        return path in self.files or any(
            path in t.files.get(os.path.dirname(path), ()) for t in self.trees.values())

    def scan(self) -> list[str]:
        """One full pass over everything watched: the changed paths."""
        found = self._files_changed()
        for tree in self.trees.values():
            tree.queue = []
            found += tree.sweep()
        return found

    def hint(self, paths: Iterable[str]) -> None:
        """Note paths a notification named (thread-safe, cheap: the loop looks)."""
        with self.lock:
            self.hints.update(paths)
        self.hinted.set()

    def _take_hints(self) -> list[str]:
        with self.lock:
            paths, self.hints = self.hints, set()
            self.hinted.clear()
        for tree in self.trees.values():
            tree.gone = tree.gone or not has_entries(tree.root)  # a tick sees it come back
        return [c for p in paths for t in self.trees.values() if not t.gone for c in t.check(p)]

    def _tick(self, now: float) -> list[str]:
        """Watched files, the hot list and the burst's folders (polling only), and
        what is due of each tree's sweep: the changed paths, told to the pacing
        as they are found."""
        found = self._files_changed()
        self.pacing.found(found, now)
        if self.pacing.cooled(now):
            self._heat([], now)
        polling = not self.hinting
        warm = [p for p, sig in self._look_first().items() if signature_of(p) != sig] if polling else []
        cost = self.cost()
        if warm and self.pacing.gather(cost):  # a save, or the first file of a checkout?
            self._restart_sweeps()
        for tree in self.trees.values():
            seen = [c for p in warm for c in tree.check(p)]
            if polling:
                for folder in {os.path.dirname(p) for p in self.pacing.pending}:
                    if folder in tree.files:
                        seen += tree.rescan(folder)  # a burst goes on in the same folders
            fresh, began = not tree.queue, tree.began
            swept = tree.sweep(self.pacing.due(tree.began, cost, now)[0])
            ended = not tree.queue
            if ended:  # the next is due a period after this one was
                tree.began = self.pacing.next_sweep(began, self.cost(), now)
            if (seen or swept or tree.gone) and not has_entries(tree.root):
                tree.gone = True  # deleted (or emptied) by a build: report nothing until it is back
                continue
            if tree.gone:
                tree.gone = False
                log.info("%s is back: rescanning it", tree.root)
                tree.queue = []
                swept += tree.sweep()
                self._rearm()
                self.pacing.gather()  # the build may still be writing
            elif swept and self.hinting and all(self._unhinted(p) for p in swept):
                self.pacing.use_hints(False)
                log.warning("a change arrived without a notification: polling from now on (%s)", self.pace())
            # Before swept(): the sweep began after they were found. They were written since the
            # last tick: the burst's quiet counts from then (a checkout's last file, found by a tick).
            self.pacing.found(seen, now, min(tree.quiet_for(seen), self.interval))
            self.pacing.found(swept, now, tree.quiet_for(swept))
            if swept and not self.hinting and self.pacing.gather():
                self._restart_sweeps()  # the folders swept before this one may have changed since
            elif fresh and ended and self.pacing.gathering:
                self.pacing.swept(bool(swept), now)
            found += seen + swept
        return found

    def _unhinted(self, path: str) -> bool:
        """Whether a change the sweep found proves notifications fail: written over
        2 s ago, no hint names it, and changed (ctime) after they started; a save
        before that (between the first scan and their start) proves nothing."""
        try:
            changed = os.stat(path).st_ctime
        except OSError:
            return False
        return written_ago(path) > 2 and path not in self.hints and changed > self.hints_began

    def _catch_up(self, now: float) -> list[str]:
        """Right after notifications (re)started, every tree swept once: what was
        saved before they could name it is found at once, not by the budgeted sweep."""
        self.catch_up = False
        found: list[str] = []
        for tree in self.trees.values():
            if not tree.gone:
                tree.queue = []
                swept = tree.sweep()
                self.pacing.found(swept, now, tree.quiet_for(swept))
                found += swept
        return found

    def _files_changed(self) -> list[str]:
        """The files added by watch_file that changed, appeared or went (once) since the last look."""
        return [wf.path for wf in self.files.values() if wf.has_changed()]

    def _restart_sweeps(self) -> None:
        """The next sweep of every tree starts from its first folder."""
        for tree in self.trees.values():
            tree.queue = []

    def _quiet(self, now: float, slice_due: float) -> bool:
        """A tick that may end at a glance: polling, no burst going on, no slice of a
        sweep due, and the files looked at first unchanged (most ticks: cheap)."""
        if self.hinting or self.files or self.pacing.pending or now >= slice_due:
            return False
        if any(t.gone for t in self.trees.values()):
            return False
        return all(signature_of(p) == sig for p, sig in self._look_first().items())

    def _start_hints(self) -> None:
        try:
            self._observer = notifications.observe(self.trees, self.hint, self.writing)
        except (ImportError, OSError) as exc:
            log.warning("change notifications unavailable (%s): polling", exc)
            return
        self.hints_began, self.catch_up = time.time(), True
        self.pacing.use_hints()
        self.hinted.set()  # the thread catches up at once

    def _rearm(self) -> None:
        """Notifications anew for every tree (a root deleted and made again, a tree added)."""
        if self._observer is not None:
            self._observer.stop()
            self._observer = None
            self._start_hints()
