"""The watcher: polls a folder and signals the broadcaster when files change.

Polling is the ground truth (it works on WSL drives, Docker mounts, NFS): a
file changed when its stat signature differs (``!=``). Kernel notifications,
where they work, are only hints of where to look first; a budgeted sweep of
the whole tree still runs, so a lost hint can only delay a reload. One
settled burst of changes sends one signal: SIGUSR2 when every change is a
written stylesheet, SIGUSR1 otherwise. The data model follows LiveServer.jl:
``WatchedFile`` and ``SimpleWatcher``.
"""

import argparse
import fnmatch
import heapq
import logging
import math
import os
import re
import signal
import shlex
import stat
import subprocess
import sys
import threading
import time

import sigreload

INTERVAL = 0.1
SETTLE = 0.01  # quiet time that ends a burst (longer for big bursts, up to 0.1 s)
MAX_BURST = 2.0  # a never-ending stream of writes still reloads this often
HOT_AGE = 600  # files modified this recently (s) are polled every tick
HOT_MAX = 32
POLL_BUDGET = 0.025  # the most of a core the watcher spends polling (ticks and sweep)
HINT_BUDGET = 0.002  # ... and with notifications (the sweep is a safety net)
SWEEP_TARGET = 1.0  # seconds per full sweep of a tree too costly to sweep every tick...
SMALL_SHARE = 0.002  # ... that is, costing more than this share of a core at that pace
SLICE = 0.02  # the most CPU (s) one slice of a sweep takes (the hot list waits meanwhile)
RACY = 2.0  # a folder changed this recently (s) may change again within its clock tick
LIST_EVERY = 8  # a folder with an unchanged stamp is still listed once in this many passes
DEFAULT_IGNORE = (
    ".git", ".hg", ".svn", ".bzr", "_darcs", "CVS", "node_modules", "__pycache__",
    ".venv", "venv", ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache",
    ".cache", ".sass-cache", ".idea", ".vscode", ".DS_Store", "*.pyc",
    "*.swp", "*.swo", "*.swx", "*.swpx", "*~", ".#*", "#*#", "4913", "*.tmp",
    "*___jb_tmp___", "*___jb_old___", "*.crdownload", "*.part", ".*.kate-swp",
)
STYLESHEETS = (".css",)
BUILD_TAIL = 8000  # characters of a failed build's output shown in the pages

log = logging.getLogger("sigreload.watch")


def signature(st):
    """What we compare: any write, truncate, rename-into-place or cp -p shows."""
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


def stamp(st):
    """A folder's own signature: it changes when an entry is added, removed or renamed."""
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def matcher(patterns):
    """skip(name, prefix) for globs, ``prefix`` being the folder's path under ROOT
    ("" or "sub/"): a glob with "/" matches prefix + name, any other the name.
    Runs per entry per pass: compiled once, and with name globs only, each
    name's verdict is remembered."""
    def compiled(globs):
        return re.compile("|".join(fnmatch.translate(g) for g in globs) or "(?!)").match

    by_name = compiled([p for p in patterns if "/" not in p])
    paths = [p.strip("/") for p in patterns if "/" in p]
    if paths:
        by_path = compiled(paths)
        return lambda name, prefix: by_name(name) is not None or by_path(prefix + name) is not None
    verdicts = {}

    def skip(name, prefix):
        verdict = verdicts.get(name)
        if verdict is None:
            verdict = verdicts[name] = by_name(name) is not None
        return verdict

    return skip


def scan_dir(folder, root, skip):
    """({path: signature} of the regular files in ``folder``, [subfolders]).

    Raises OSError when the folder cannot be listed; skips entries that
    vanish mid-scan, FIFOs, sockets, dangling links; never enters a
    virtualenv (a pyvenv.cfg).
    """
    with os.scandir(folder) as it:
        entries = list(it)
    if folder != root and any(e.name == "pyvenv.cfg" for e in entries):
        return {}, []
    prefix = "" if folder == root else os.path.relpath(folder, root).replace(os.sep, "/") + "/"
    files, folders, isreg, isdir = {}, [], stat.S_ISREG, stat.S_ISDIR
    for entry in entries:
        if skip(entry.name, prefix):
            continue
        try:
            st = entry.stat()  # follows links; one call tells folder from file
        except OSError:
            continue
        if isreg(st.st_mode):  # signature(), inlined: this is the hot loop
            files[entry.path] = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)
        elif isdir(st.st_mode):
            folders.append(entry.path)
    return files, folders


def snapshot(root, patterns=DEFAULT_IGNORE):
    """{path: signature} of every regular file under ``root`` (one full pass)."""
    return Tree(root, patterns).snapshot()


def changes(old, new):
    """Sorted paths created, modified or deleted between two {path: signature}."""
    return sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))


def pick_signal(paths, present):
    """SIGUSR2 when every change is a stylesheet still present, else SIGUSR1."""
    css = all(p.endswith(STYLESHEETS) and p in present for p in paths)
    return signal.SIGUSR2 if css else signal.SIGUSR1


class Tree:
    """Per-folder state of one watched root: rescanned whole, by folder, or in slices.

    Never raises for the file system: an unreadable folder is reported once
    (and its files kept as they were), symlink loops are entered once.
    """

    def __init__(self, root, patterns=DEFAULT_IGNORE):
        self.root, self.skip = root, matcher(patterns)
        self.files, self.subdirs, self.ids, self.stamps = {}, {}, {}, {}
        self.warned, self.queue, self.gone = set(), [], False
        self.began, self.done, self.size, self.cpu, self.cycle_cpu = time.monotonic(), 0, 0, 0.0, 0.0
        started = time.thread_time()
        self.rescan(root)
        self.cost = time.thread_time() - started  # CPU per full sweep (smoothed)

    def snapshot(self):
        return {p: s for files in self.files.values() for p, s in files.items()}

    def rescan(self, folder):
        """Rescan one folder (and any new subfolder, however deep): the changed paths."""
        found, todo = [], [folder]
        while todo:
            found += self._rescan_one(todo.pop(), todo)
        return found

    def _rescan_one(self, folder, todo):
        try:
            st = os.stat(folder)  # before the listing: a change during it shows next time
            if folder not in self.files:  # new: is it a folder we already watch (a symlink loop)?
                key = (st.st_dev, st.st_ino)
                if self.ids.setdefault(key, folder) != folder and self.ids[key] in self.files:
                    raise FileExistsError
            files, subdirs = scan_dir(folder, self.root, self.skip)
        except FileNotFoundError:
            return self.drop(folder) if folder != self.root else []
        except OSError as exc:
            if folder not in self.warned and not isinstance(exc, FileExistsError):
                self.warned.add(folder)
                log.warning("cannot read %r (%s): not watched", folder, exc.strerror)
            return []
        old = self.files.get(folder, {})
        found = [] if old == files else changes(old, files)  # the common case, in C
        self.files[folder] = files
        # A stamp as young as a coarse clock's tick (1-2 s on ext3, HFS+, FAT) may hide
        # a later change in the same tick: such a folder is listed again ("racy git").
        if time.time() - st.st_mtime <= RACY:
            self.stamps.pop(folder, None)
        else:  # (stamp, cheap passes left before a listing), newly trusted folders staggered
            left = LIST_EVERY if folder in self.stamps else hash(folder) % LIST_EVERY + 1
            self.stamps[folder] = (stamp(st), left)
        known = self.subdirs.get(folder, set())
        if len(known) != len(subdirs) or not known.issuperset(subdirs):
            for gone in known - set(subdirs):
                found += self.drop(gone)
            self.subdirs[folder] = set(subdirs)
        todo += [sub for sub in subdirs if sub not in self.files]
        return found

    def restat(self, path):
        """The cheap check for a path we know: changed paths (via check when it moved)."""
        folder = os.path.dirname(path)
        try:
            now = signature(os.stat(path))
        except OSError:
            now = None
        return [] if self.files.get(folder, {}).get(path) == now else self.check(path)

    def drop(self, folder):
        """Forget a vanished folder: its files (and its subfolders') are deleted."""
        found, todo = [], [folder]
        while todo:
            gone = todo.pop()
            found += sorted(self.files.pop(gone, {}))
            self.stamps.pop(gone, None)
            todo += self.subdirs.pop(gone, ())
        return found

    def sweep(self, upto=1.0):
        """Rescan folders until ``upto`` (0 to 1) of the current full sweep is done;
        the next one begins when it ends. Returns the changed paths; keeps the CPU
        spent in ``cpu`` and a full sweep's (smoothed) in ``cost``."""
        started, found = time.thread_time(), []
        if not self.queue:
            self.queue = sorted(self.files, reverse=True)
            self.size = len(self.files) + sum(map(len, self.files.values()))  # a folder costs itself too
            self.done, self.cycle_cpu = 0, self.cpu
        while self.queue and self.done < upto * self.size:
            folder = self.queue.pop()
            if folder in self.files:
                self.done += 1 + len(self.files[folder])
                found += self.quick(folder)
        self.cpu += time.thread_time() - started
        if not self.queue:
            self.cost += (self.cpu - self.cycle_cpu - self.cost) / 4  # smoothed: a steady period
            self.began = time.monotonic()
        return found

    def quick(self, folder):
        """Rescan a folder, cheaply when its stamp says its entries are the same:
        then only its known files are stat()ed (no listing, no globs)."""
        known = self.stamps.get(folder)
        try:
            if known and known[1] and known[0] == stamp(os.stat(folder)):
                stat = os.stat
                for path, sig in self.files[folder].items():
                    st = stat(path)
                    if (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns) != sig:
                        break
                else:
                    self.stamps[folder] = (known[0], known[1] - 1)
                    return []
        except OSError:  # vanished or unreadable: the listing tells
            pass
        return self.rescan(folder)

    def check(self, path):
        """Re-stat one path a hint or the hot list names: the changed paths.

        A folder (new, moved or deleted) rescans its parent; a path under
        an ignored or unknown folder changes nothing.
        """
        folder = os.path.dirname(path)
        if folder not in self.files:
            return []
        rel = os.path.relpath(folder, self.root).replace(os.sep, "/")
        if self.skip(os.path.basename(path), "" if rel == "." else rel + "/"):
            return []
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if path in self.files or (st and stat.S_ISDIR(st.st_mode)):
            return self.rescan(folder)
        new = signature(st) if st and stat.S_ISREG(st.st_mode) else None
        if self.files[folder].get(path) == new:
            return []
        if new is None:
            del self.files[folder][path]
        else:
            self.files[folder][path] = new
        return [path]

    def recent(self, now):
        """The HOT_MAX most recently modified files (younger than HOT_AGE)."""
        cutoff = (now - HOT_AGE) * 1e9
        young = ((s[0], p) for f in self.files.values() for p, s in f.items() if s[0] > cutoff)
        return [p for _, p in heapq.nlargest(HOT_MAX, young)]


def _has_entries(folder):
    try:
        with os.scandir(folder) as it:
            return next(it, None) is not None
    except OSError:
        return False


class WatchedFile:
    """One file and its last seen signature (LiveServer.jl's WatchedFile)."""

    def __init__(self, path):
        self.path = path
        self.signature = self._stat()

    def _stat(self):
        try:
            return signature(os.stat(self.path))
        except OSError:
            return None

    def has_changed(self):
        """-1 when gone, 0 when the same, 1 when changed; remembers what it saw."""
        now = self._stat()
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
        self.hot, self.budget, self.overhead, self.busy = [], POLL_BUDGET, 0.0, 0.0
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
        self.hot = list(dict.fromkeys(self.hot + tree.recent(time.time())))[:HOT_MAX]
        return tree

    def period(self):
        """Seconds per full sweep: every tick for a small tree, SWEEP_TARGET for a
        bigger one, longer when that would cost more than the budget leaves after
        the ticks themselves (measured)."""
        cost = sum(t.cost for t in self.trees.values())
        spare = max(self.budget - self.overhead, self.budget / 2)
        return max(self.interval, min(SWEEP_TARGET, cost / SMALL_SHARE), cost / spare)

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
        trees = [t for t in self.trees.values() if not t.gone and _has_entries(t.root)]
        return [c for p in paths for t in trees for c in t.check(p)]

    def _due(self, tree, now):
        """How much of ``tree``'s sweep is due by ``now`` (0 to 1): slices of at most
        SLICE of CPU, each at a fixed point of the period, so every folder is rescanned
        once a period (never twice, then not for two, around a slice's end)."""
        slices = max(1, math.ceil(tree.cost / SLICE))
        return min(1.0, math.floor((now - tree.began) / self.period() * slices) / slices)

    def _tick(self, pending, now):
        """Watched files, the hot list and pending folders (polling only), and what
        is due of each tree's sweep: the changed paths."""
        found = [wf.path for wf in self.files.values() if wf.has_changed()]
        for tree in self.trees.values():
            seen = []
            if not self.hinting:
                seen += [c for p in self.hot for c in tree.restat(p)]
                for folder in {os.path.dirname(p) for p in pending}:
                    if folder in tree.files:
                        seen += tree.rescan(folder)  # a burst goes on in the same folders
            swept = tree.sweep(self._due(tree, now))
            if (seen or swept or tree.gone) and not _has_entries(tree.root):
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
            wait = settle if pending else self.interval * (5 if self.hinting else 1)
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
                self.hot = list(dict.fromkeys(found + self.hot))[:HOT_MAX]
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
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer

            watcher = self

            class Hints(FileSystemEventHandler):
                def on_any_event(self, event):
                    if event.event_type not in ("opened", "closed_no_write"):  # reads are no change
                        paths = (event.src_path, getattr(event, "dest_path", ""))
                        watcher.hint([os.fsdecode(p) for p in paths if p])

            observer = Observer()
            for root in self.trees:
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


class Notifier:
    """The CLI's callback: tells the broadcaster what changed, says so in one line.

    With ``build`` (argv) it runs the build first: a good build reloads every
    page, a failed one reloads nothing and sends its output to the pages.
    """

    def __init__(self, root, port, pid=None, build=None):
        self.root, self.port, self.pid, self.build = root, port, pid, build
        self.root_id = sigreload.root_id(root)
        self.server = None
        self.missing_said = False

    def __call__(self, paths):
        names = [ascii(os.path.relpath(p, self.root))[1:-1] for p in paths]
        what = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        if self.build:
            log.info("%s changed: building", what)
            error = self.run_build()
            signum, message = signal.SIGUSR1, ({"error": error} if error else {})
        else:
            signum = pick_signal(paths, {p for p in paths if os.path.exists(p)})
            message = {"paths": [url_path(p, self.root) for p in paths], "root": self.root_id}
        server = self.locate()
        if server is None:
            return
        try:
            sigreload.post(self.port, message)  # before the signal: the broadcaster reads it then
        except OSError as exc:
            log.warning("cannot leave a message for the broadcaster (%s): every page reloads", exc)
        if sigreload.signal_server(server, signum):
            kind = "build error" if message.get("error") else "css" if signum == signal.SIGUSR2 else "reload"
            log.info("%s changed: %s sent to broadcaster PID %d", what, kind, server.pid)

    def run_build(self):
        """Run the build; None when it succeeded, else the tail of its output."""
        started = time.monotonic()
        try:
            done = subprocess.run(self.build, cwd=self.root, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except OSError as exc:
            log.error("build: cannot run %s: %s", self.build[0], exc.strerror)
            return f"cannot run {self.build[0]}: {exc.strerror}"
        output = done.stdout.decode(errors="replace")[-BUILD_TAIL:]
        if done.returncode == 0:
            log.info("build succeeded in %.1fs", time.monotonic() - started)
            return None
        log.error("build failed (exit %d):\n%s", done.returncode, output.rstrip())
        return output or f"{self.build[0]} exited with status {done.returncode}"

    def locate(self):
        """The broadcaster, re-found when the one we knew is gone (PID-reuse safe)."""
        # The very process we found (is_running compares create times: no reused PID).
        if self.server and self.server.is_running():
            return self.server
        try:
            self.server = self.given() if self.pid else sigreload.find_server(self.port)
        except LookupError as exc:
            log.error("%s; not signalling either", exc)
            return None
        if self.server is None and not self.missing_said:
            which = f"broadcaster PID {self.pid} does not listen" if self.pid else "no broadcaster listens"
            log.warning("%s on port %d; will look again at the next change", which, self.port)
        self.missing_said = self.server is None
        return self.server

    def given(self):
        """The broadcaster named by --pid, if it runs the broadcaster and listens."""
        import psutil

        try:
            proc = psutil.Process(self.pid)
            runs = sigreload.runs_broadcaster(proc.cmdline()) and proc.uids().real == os.getuid()
        except psutil.Error:
            return None
        return proc if runs and sigreload.listens_on(proc, self.port) else None


def url_path(path, root):
    """The URL path a file under ``root`` is served at: /sub/page.html."""
    return "/" + os.path.relpath(path, root).replace(os.sep, "/")


def output_glob(root, output):
    """A path glob ignoring the build's output folder when it lies inside ROOT."""
    if not output:
        return ()
    rel = os.path.relpath(os.path.abspath(output), root).replace(os.sep, "/")
    return () if rel.startswith("..") else (rel,)


def main(argv=None):
    """CLI: watch ROOT and signal the broadcaster on port WS_PORT."""
    sigreload.require_signals()
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("root", nargs="?", default=".")
    parser.add_argument("--ws-port", type=int, default=sigreload.WS_PORT)
    parser.add_argument("--interval", type=float, default=INTERVAL, help="poll tick (s)")
    parser.add_argument("--poll", action="store_true", help="never use kernel change notifications")
    parser.add_argument("--pid", type=int, help="signal only this broadcaster (sigreload passes its own)")
    parser.add_argument("--exec", metavar="CMD", dest="build",
                        help="build command run (in ROOT) after changes; pages reload after a good build")
    parser.add_argument("--output", metavar="DIR", help="the build's output folder: never a trigger")
    parser.add_argument("--ignore", action="append", default=[], metavar="GLOB",
                        help="also ignore files or folders matching GLOB (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    sigreload.setup_logging(args.verbose)
    root = os.path.abspath(args.root)
    if not os.path.isdir(root):
        sys.exit(f"sigreload-watch: {args.root}: no such folder")
    stop = sigreload.stop_event()
    ignore = DEFAULT_IGNORE + tuple(args.ignore) + output_glob(root, args.output)
    notifier = Notifier(root, args.ws_port, args.pid, shlex.split(args.build) if args.build else None)
    if notifier.build:
        notifier.run_build()  # the output exists before the first page is served
    watcher = SimpleWatcher(notifier, args.interval, ignore, hints=not args.poll)
    tree = watcher.watch_tree(root)
    watcher.start()
    count = sum(map(len, tree.files.values()))
    how = "notifications as hints" if watcher.hinting else f"polling ({watcher.pace()})"
    log.info("watching %s: %d files, %s; a full pass costs %.0f ms", root, count, how, 1000 * tree.cost)
    sigreload.wait(stop)
    watcher.stop()


if __name__ == "__main__":
    main()
