"""LiveServer.jl's file watching: ``WatchedFile`` and ``SimpleWatcher``.

Polling is the ground truth (it works on WSL drives, Docker mounts, NFS).
Kernel notifications, where they work, are only hints of where to look
first; a sweep of the whole tree still runs on a CPU budget, so a lost hint
can only delay a change, never drop it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from sigreload.command_line import INTERVAL
from sigreload.watching.file_tree import Tree
from sigreload.watching.pacing import HOT_AGE, HOT_MAX
from sigreload.watching.passes import Passes, Uses
from sigreload.watching.signatures import DEFAULT_IGNORE, WatchedFile
from sigreload.watching.unsettled import Unsettled

__all__ = ["SimpleWatcher", "WatchedFile"]

log = logging.getLogger("sigreload.watch")

Callback = Callable[[list[str]], Any]


class SimpleWatcher(Passes):
    """Watches files and folders in a thread; ``callback(paths)`` once per settled burst.

    ``pacing`` (a ``pacing.Pacing``) decides when to look at what; a pass
    (``passes.Passes``: stat, scandir, kernel notifications) looks; this
    class runs the passes in its thread and calls back. Every argument is
    keyword-only (``Passes`` says what ``interval``, ``ignore``, ``hints``
    and ``uses`` do).

    An unexpected error in the thread (the callback's included) is logged
    with its traceback and kept in ``error``; ``on_error(exc)`` is called
    (the watcher process exits non-zero), and ``start()`` starts anew.
    """

    def __init__(self, *, callback: Callback | None = None, interval: float = INTERVAL,
                 ignore: Iterable[str] = DEFAULT_IGNORE, hints: bool = False,
                 on_error: Callable[[BaseException], Any] | None = None, uses: Uses | None = None) -> None:
        super().__init__(interval=interval, ignore=ignore, hints=hints, uses=uses)
        self.callback = callback
        self.on_error = on_error
        self.error: BaseException | None = None
        self.adding: list[Tree] = []  # trees watch_tree made while the thread runs: it takes them
        self.busy = 0.0  # CPU spent in the callback (not watching)
        self.unsettled = Unsettled(self.writing)  # whether a burst that looks settled is still being written
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None  # None: not running (a failing thread clears it)
        self._life = threading.Lock()  # start, stop and a failing thread change _thread one at a time

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
