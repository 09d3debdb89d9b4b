"""LiveServer.jl's file watching: ``WatchedFile`` and ``SimpleWatcher``.

Polling is the ground truth (it works on WSL drives, Docker mounts, NFS).
Kernel notifications, where they work, are only hints of where to look
first; a sweep of the whole tree still runs on a CPU budget, so a lost hint
can only delay a change, never drop it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from sigreload.command_line import INTERVAL
from sigreload.watching import notifications
from sigreload.watching.file_tree import Tree
from sigreload.watching.pacing import HOT_AGE, HOT_MAX, Pacing
from sigreload.watching.signatures import DEFAULT_IGNORE, WatchedFile, has_entries, signature_of, written_ago
from sigreload.watching.unsettled import Unsettled

log = logging.getLogger("sigreload.watch")

Callback = Callable[[list[str]], Any]


class SimpleWatcher:
    """Watches files and folders in a thread; ``callback(paths)`` once per settled burst.

    ``pacing`` (a ``pacing.Pacing``) decides when to look at what; this class
    looks (stat, scandir, kernel notifications) and calls back.
    ``hints=True`` takes kernel notifications as hints where they work.

    An unexpected error in the thread (the callback's included) is logged
    with its traceback and kept in ``error``; ``on_error(exc)`` is called
    (the watcher process exits non-zero), and ``start()`` starts anew.
    """

    def __init__(self, callback: Callback | None = None, interval: float = INTERVAL,
                 ignore: Iterable[str] = DEFAULT_IGNORE, hints: bool = False,
                 on_error: Callable[[BaseException], Any] | None = None) -> None:
        self.callback = callback
        self.on_error = on_error
        self.error: BaseException | None = None
        self.pacing = Pacing(interval)
        self.interval = self.pacing.interval
        self.ignore = tuple(ignore)
        # Replaced, never changed in place (the thread may be iterating them):
        self.files: dict[str, WatchedFile] = {}
        self.trees: dict[str, Tree] = {}  # by root
        self.adding: list[Tree] = []  # trees watch_tree made while the thread runs: it takes them
        self.want_hints = hints
        self.hints: set[str] = set()  # paths notifications named, not looked at yet
        self.hinted, self.lock = threading.Event(), threading.Lock()
        self.hints_began = 0.0  # wall clock: notifications (re)started; nothing older is proof they fail
        self.catch_up = False  # notifications just (re)started: sweep every tree once, at once
        self.hot: dict[str, Any] = {}  # the pacing's hot list: {path: the signature its tree holds}
        self.uses: Callable[[], list[str] | None] | None = None  # what open pages use; None: unchanged
        self.used_paths: list[str] = []  # ... as it said last
        self.used: dict[str, Any] = {}  # ... not hot, looked at every tick while polling: {path: signature}
        self.busy = 0.0  # CPU spent in the callback (not watching)
        self.unsettled = Unsettled()  # whether a burst that looks settled is still being written
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None  # None: not running (a failing thread clears it)
        self._life = threading.Lock()  # start, stop and a failing thread change _thread one at a time
        self._observer: Any = None

    @property
    def hinting(self) -> bool:
        """Whether kernel notifications tell where to look (else: polling)."""
        return self.pacing.hinting

    def set_callback(self, callback: Callback | None) -> None:
        """Swap the callback; safe while running (takes effect at the next burst)."""
        self.callback = callback

    def watch_file(self, path: str) -> None:
        """Watch one file, looked at every tick; idempotent, safe while running."""
        with self.lock:
            if path not in self.files:
                self.files = {**self.files, path: WatchedFile(path)}

    def watch_tree(self, root: str) -> Tree:
        """Watch every file under ``root``, including files created later; safe
        while running (the thread takes the tree at its next pass)."""
        tree = Tree(root, self.ignore)
        with self.lock:
            self.adding.append(tree)
        if self._thread is None:
            self._adopt(time.monotonic())
        else:
            self.hinted.set()  # wake the loop
        return tree

    def _adopt(self, now: float) -> None:
        """Take the trees watch_tree made (in the thread, once running)."""
        with self.lock:
            trees, self.adding = self.adding, []
        for tree in trees:
            self.trees = {**self.trees, tree.root: tree}
            self.unsettled.add_root(tree.root)
            self._heat(tree.recent(time.time() - HOT_AGE, HOT_MAX), now)
        if trees:
            self._rearm()

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

    def _watching_cpu(self) -> float:
        """CPU this thread spent watching: not in the callback, not in the sweep."""
        return time.thread_time() - self.busy - sum(t.cpu for t in self.trees.values())

    def _sleep(self, now: float) -> tuple[float, float]:
        """Seconds to sleep, and when the next slice of a sweep is due."""
        ticking = bool(self.files or self.uses and not self.hinting) or any(t.gone for t in self.trees.values())
        cost = self.cost()
        due = [self.pacing.due(t.began, cost, now)[1] for t in self.trees.values()]
        return self.pacing.sleep(now, due, ticking), min(due, default=now)

    def _wait(self, seconds: float) -> bool:
        """Sleep; True when woken by a hint (or stop). A short sleep while polling
        is a plain one (half the CPU of a wake-up by event: 20 of them a second)."""
        if self._observer is None and seconds <= self.interval:
            time.sleep(seconds)
            return self._stop.is_set()
        return self.hinted.wait(seconds)

    def _quiet(self, now: float, slice_due: float) -> bool:
        """A tick that may end at a glance: polling, no burst going on, no slice of a
        sweep due, and the files looked at first unchanged (most ticks: cheap)."""
        if self.hinting or self.files or self.pacing.pending or now >= slice_due:
            return False
        if any(t.gone for t in self.trees.values()):
            return False
        return all(signature_of(p) == sig for p, sig in self._look_first().items())

    def _run(self) -> None:
        """The thread: ``_loop`` until stopped; an unexpected error is said with
        its traceback, kept, and passed to ``on_error``, never lost."""
        try:
            self._loop()
        except Exception as exc:
            log.exception("the watcher stopped on an unexpected error")
            self.error = exc
            with self._life:  # before on_error: this thread still counts as alive there (start() did nothing)
                if self._thread is threading.current_thread():
                    self._thread = None
            if self.on_error is not None:
                self.on_error(exc)

    def _loop(self) -> None:
        """Hints or ticks find changes; the pacing says when a burst has settled."""
        ticked = time.monotonic()
        self.pacing.account(ticked, self._watching_cpu())
        while not self._stop.is_set():
            wait, slice_due = self._sleep(time.monotonic())
            hinted = self._wait(wait)
            if self.adding:
                self._adopt(time.monotonic())
            now, spent = time.monotonic(), time.thread_time()
            if not hinted and self._quiet(now, slice_due):
                ticked = now
                continue
            found = self._take_hints() if hinted else []
            self.pacing.found(found, now)
            if self.catch_up:
                found += self._catch_up(now)
            if not hinted or now - ticked >= self.interval:  # a stream of hints never starves the sweep
                found += self._tick(now)  # it tells the pacing what it finds, as it finds it
                ticked = now
            spent = time.thread_time() - spent
            self.pacing.account(now, self._watching_cpu())
            if log.isEnabledFor(logging.DEBUG) and (found or spent > 0.001):
                log.debug("%s pass: %d changed, %.1f ms", "hint" if hinted else "poll", len(found), 1000 * spent)
            if found:
                self._heat([], now)
            paths = self.pacing.burst(now, self.unsettled)
            if paths and self.callback:
                started = time.thread_time()
                self.callback(paths)
                self.busy += time.thread_time() - started

    def _start_hints(self) -> None:
        try:
            self._observer = notifications.observe(self.trees, self.hint)
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

    def start(self) -> None:
        """Start watching in a daemon thread; idempotent (after an error, even
        from ``on_error``, a new thread starts)."""
        with self._life:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self.error = None
            if self.want_hints and self._observer is None:
                self._start_hints()
            self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)
            self._thread.start()

    def stop(self) -> bool:
        """Stop watching; return whether it was running. The watch list is kept."""
        with self._life:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None:
            self.hinted.set()
            thread.join()
        if self._observer is not None:
            self._observer.stop()
            self._observer = None
            self.pacing.use_hints(False)
        return thread is not None
