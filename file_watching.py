"""LiveServer.jl's file watching: ``WatchedFile`` and ``SimpleWatcher``.

Polling is the ground truth (it works on WSL drives, Docker mounts, NFS).
Kernel notifications, where they work, are only hints of where to look
first; a sweep of the whole tree still runs on a CPU budget, so a lost hint
can only delay a change, never drop it.
"""

import logging
import math
import os
import threading
import time

from file_tree import DEFAULT_IGNORE, HOT_AGE, HOT_MAX, Tree, has_entries, signature_of

INTERVAL = 0.1
SETTLE = 0.005  # quiet time that ends a burst (longer for big bursts, up to 0.1 s)
MAX_BURST = 2.0  # a never-ending stream of writes still reloads this often
POLL_BUDGET = 0.025  # the most of a core the watcher spends polling (ticks and sweep)
HINT_BUDGET = 0.002  # ... and with notifications (the sweep is a safety net...
HINT_PERIOD = 2.0  # ... every this many seconds at most often)
SWEEP_TARGET = 1.0  # seconds per full sweep of a tree too costly to sweep every tick...
SMALL_SHARE = 0.002  # ... that is, costing more than this share of a core at that pace
SLICE = 0.02  # the most CPU (s) one slice of a sweep takes (the hot list waits meanwhile)

log = logging.getLogger("sigreload.watch")


class WatchedFile:
    """One file and its last seen signature (LiveServer.jl's WatchedFile)."""

    def __init__(self, path):
        self.path = path
        self.signature = signature_of(path)

    def has_changed(self):
        """-1 when gone, 0 when the same, 1 when changed; remembers what it saw."""
        now = signature_of(self.path)
        changed, self.signature = now != self.signature, now
        return -1 if now is None else int(changed)


class SimpleWatcher:
    """Watches files and folders in a thread; ``callback(paths)`` once per settled burst.

    A burst ends after SETTLE of quiet (with hints) or one quiet tick (polling),
    so a build or a checkout gives one call, after its last write.
    ``hints=True`` takes kernel notifications as hints where they work.
    """

    def __init__(self, callback=None, interval=INTERVAL, ignore=DEFAULT_IGNORE, hints=False):
        self.callback = callback
        self.interval = max(interval, 0.01)
        self.ignore = tuple(ignore)
        self.files, self.trees = {}, {}  # path -> WatchedFile, root -> Tree
        self.want_hints, self.hinting = hints, False
        self.hints, self.hinted, self.lock = set(), threading.Event(), threading.Lock()
        self.hot, self.heated = {}, {}  # {path: signature}, {path: when it got hot}
        self.budget, self.overhead, self.busy = POLL_BUDGET, 0.0, 0.0
        self.window = (0.0, 0.0)  # (when, CPU) the overhead is measured from
        self._stop, self._thread, self._observer = threading.Event(), None, None

    def set_callback(self, callback):
        """Swap the callback; safe while running (takes effect at the next burst)."""
        self.callback = callback

    def watch_file(self, path):
        """Watch one file; idempotent."""
        self.files.setdefault(path, WatchedFile(path))

    def watch_tree(self, root):
        """Watch every file under ``root``, including files created later."""
        self.trees[root] = tree = Tree(root, self.ignore)
        self._heat(tree.recent(time.time()), time.monotonic())
        return tree

    def _heat(self, paths, now):
        """Put ``paths`` first in the hot list, for HOT_AGE seconds, each with the
        signature its tree holds (kept here: a tick compares without touching the
        big per-folder maps). Nothing hot: no ticks at all."""
        self.heated.update(dict.fromkeys(paths, now))
        keep = [p for p in dict.fromkeys([*paths, *self.hot]) if now - self.heated[p] < HOT_AGE]
        self.heated = {p: self.heated[p] for p in keep[:HOT_MAX]}
        self.hot = {p: next(filter(None, (t.known(p) for t in self.trees.values())), None) for p in self.heated}

    def period(self):
        """Seconds per full sweep: every tick for a small tree (HINT_PERIOD with
        hints), SWEEP_TARGET for a bigger one, longer when that would cost more
        than the budget leaves after the ticks themselves (measured)."""
        cost = sum(t.cost for t in self.trees.values())
        spare = max(self.budget - self.overhead, self.budget / 2)
        floor = HINT_PERIOD if self.hinting else self.interval
        return max(floor, min(SWEEP_TARGET, cost / SMALL_SHARE), cost / spare)

    def _idle(self, now):
        """Seconds to sleep: a tick while files are polled one by one (watched,
        or hot without hints) or a root is gone, else until the next slice of a
        sweep is due (a hint, or stop(), wakes the loop sooner)."""
        if self.files or (self.hot and not self.hinting) or any(t.gone for t in self.trees.values()):
            return self.interval
        return min([self._schedule(t, now)[1] - now for t in self.trees.values()], default=self.interval)

    def pace(self):
        """What polling costs, in words (for the log)."""
        cost, period = sum(t.cost for t in self.trees.values()), self.period()
        if period <= self.interval:
            return f"every {self.interval:g}s, {100 * cost / period:.1f}% of a core"
        return (f"{'big tree: ' if period >= SWEEP_TARGET else ''}a full sweep every {period:.1f}s, "
                f"{100 * cost / period:.1f}% of a core; recently edited files every {self.interval:g}s")

    def is_watched(self, path):
        return path in self.files or any(
            path in t.files.get(os.path.dirname(path), ()) for t in self.trees.values())

    def scan(self):
        """One full pass over everything watched: the changed paths."""
        found = [wf.path for wf in self.files.values() if wf.has_changed()]
        for tree in self.trees.values():
            tree.queue = []
            found += tree.sweep()
        return found

    def hint(self, paths):
        """Note paths a notification named (thread-safe, cheap: the loop looks)."""
        with self.lock:
            self.hints.update(paths)
        self.hinted.set()

    def _take_hints(self):
        with self.lock:
            paths, self.hints = self.hints, set()
            self.hinted.clear()
        for tree in self.trees.values():
            tree.gone = tree.gone or not has_entries(tree.root)  # a tick sees it come back
        return [c for p in paths for t in self.trees.values() if not t.gone for c in t.check(p)]

    def _schedule(self, tree, now):
        """(How much of ``tree``'s sweep is due by ``now``, 0 to 1; when its next slice
        is due). Slices take at most SLICE of CPU, each at a fixed point of the period,
        so every folder is rescanned once a period (never twice, then not for two,
        around a slice's end)."""
        period, slices = self.period(), max(1, math.ceil(tree.cost / SLICE))
        done = min(slices, math.floor((now - tree.began) / period * slices))
        return done / slices, tree.began + period * min(done + 1, slices) / slices

    def _tick(self, pending, now):
        """Watched files, the hot list and pending folders (polling only), and what
        is due of each tree's sweep: the changed paths."""
        found = [wf.path for wf in self.files.values() if wf.has_changed()]
        if self.hot and now - min(self.heated.values()) >= HOT_AGE:
            self._heat([], now)  # cooled down
        warm = [] if self.hinting else [p for p, sig in self.hot.items() if signature_of(p) != sig]
        for tree in self.trees.values():
            seen = [c for p in warm for c in tree.check(p)]
            if not self.hinting:
                for folder in {os.path.dirname(p) for p in pending}:
                    if folder in tree.files:
                        seen += tree.rescan(folder)  # a burst goes on in the same folders
            began, swept = tree.began, tree.sweep(self._schedule(tree, now)[0])
            if not tree.queue:  # it ended: the next is due a period after this one was (no drift)
                tree.began = max(began + self.period(), now - self.interval)
            if (seen or swept or tree.gone) and not has_entries(tree.root):
                tree.gone = True  # deleted (or emptied) by a build: report nothing until it is back
                continue
            if tree.gone:
                tree.gone = False
                log.info("%s is back: rescanning it", tree.root)
                tree.queue = []
                swept += tree.sweep()
                self._rearm()
            elif swept and self.hinting and all(self._stale(p) and p not in self.hints for p in swept):
                self.hinting, self.budget = False, POLL_BUDGET
                log.warning("a change arrived without a notification: polling from now on (%s)", self.pace())
            found += seen + swept
        return found

    def _account(self, now):
        """Every 2 s: the share of a core ticks, hints and the hot list cost (not the
        sweep, not the callback): what the budget cannot give the sweep."""
        cpu = self._watching_cpu()
        if now - self.window[0] >= 2:
            self.overhead += ((cpu - self.window[1]) / (now - self.window[0]) - self.overhead) / 4
            self.window = (now, cpu)

    def _watching_cpu(self):
        return time.thread_time() - self.busy - sum(t.cpu for t in self.trees.values())

    @staticmethod
    def _stale(path):
        try:
            return time.time() - os.stat(path).st_mtime > 2
        except OSError:
            return False

    def _run(self):
        """Hints or ticks find changes; SETTLE of quiet (re-checked) ends the burst."""
        pending, first, last, ticked = set(), 0.0, 0.0, time.monotonic()
        self.window = (ticked, self._watching_cpu())
        while not self._stop.is_set():
            # A save settles in SETTLE; a big burst (a checkout) waits longer for its tail.
            settle = min(0.1, SETTLE + 0.001 * max(0, len(pending) - 1))
            now = time.monotonic()
            wait = max(0.001, last + settle - now if pending else self._idle(now))
            hinted = self.hinted.wait(wait)
            now = time.monotonic()
            spent = time.thread_time()
            found = self._take_hints() if hinted else []
            if not hinted or now - ticked >= self.interval:  # a stream of hints never starves the sweep
                found += self._tick(pending, now)
                ticked = now
            spent = time.thread_time() - spent
            self._account(now)
            if log.isEnabledFor(logging.DEBUG) and (found or spent > 0.001):
                log.debug("%s pass: %d changed, %.1f ms", "hint" if hinted else "poll", len(found), 1000 * spent)
            if found:
                pending.update(found)
                self._heat(found, now)
                first, last = first or now, now
            quiet = now - last >= settle
            if pending and (quiet or now - first > MAX_BURST):
                if self.callback:
                    started = time.thread_time()
                    self.callback(sorted(pending))
                    self.busy += time.thread_time() - started
                pending, first = set(), 0.0

    def _start_hints(self):
        try:
            from watchdog import events
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer

            watcher = self
            changes = [getattr(events, name) for name in (
                "FileModifiedEvent", "FileClosedEvent", "FileCreatedEvent", "FileMovedEvent",
                "FileDeletedEvent", "DirCreatedEvent", "DirMovedEvent", "DirDeletedEvent",
                "DirModifiedEvent") if hasattr(events, name)]

            class Hints(FileSystemEventHandler):
                def on_any_event(self, event):
                    if event.event_type not in ("opened", "closed_no_write"):  # reads are no change
                        paths = (event.src_path, getattr(event, "dest_path", ""))
                        watcher.hint([os.fsdecode(p) for p in paths if p])

            observer = Observer()
            for root in self.trees:
                try:  # no opens or reads (page loads, our own listings): they wake nobody
                    observer.schedule(Hints(), root, recursive=True, event_filter=changes)
                except TypeError:  # watchdog < 4: every event, the handler drops reads
                    observer.schedule(Hints(), root, recursive=True)
            observer.start()
        except (ImportError, OSError) as exc:
            log.warning("change notifications unavailable (%s): polling", exc)
            return
        self._observer, self.hinting, self.budget = observer, True, HINT_BUDGET

    def _rearm(self):
        """Notifications died with a deleted root: watch the new folder."""
        if self._observer is not None:
            self._observer.stop()
            self._observer = None
            self._start_hints()

    def start(self):
        """Start watching in a daemon thread; idempotent."""
        if self._thread is None:
            self._stop.clear()
            if self.want_hints and self._observer is None:
                self._start_hints()
            self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)
            self._thread.start()

    def stop(self):
        """Stop watching; return whether it was running. The watch list is kept."""
        thread, self._thread = self._thread, None
        if thread is None:
            return False
        self._stop.set()
        self.hinted.set()
        thread.join()
        if self._observer is not None:
            self._observer.stop()
            self._observer, self.hinting = None, False
        return True
