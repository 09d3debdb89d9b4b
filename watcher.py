"""The watcher: polls a folder and signals the broadcaster when files change.

Polling is the ground truth (it works on WSL drives, Docker mounts, NFS):
every INTERVAL each file's stat signature is compared with ``!=``. One pass
that finds changes sends one signal: SIGUSR2 when every change is a written
stylesheet, SIGUSR1 otherwise. The data model follows LiveServer.jl:
``WatchedFile`` and ``SimpleWatcher``.
"""

import argparse
import fnmatch
import logging
import os
import signal
import stat
import sys
import threading
import time

import sigreload

INTERVAL = 0.1
DEFAULT_IGNORE = (
    ".git", ".hg", ".svn", ".bzr", "_darcs", "CVS", "node_modules", "__pycache__",
    ".venv", "venv", ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache",
    ".cache", ".sass-cache", ".idea", ".vscode", ".DS_Store", "*.pyc",
    "*.swp", "*.swo", "*.swx", "*.swpx", "*~", ".#*", "#*#", "4913", "*.tmp",
    "*___jb_tmp___", "*___jb_old___", "*.crdownload", "*.part", ".*.kate-swp",
)
STYLESHEETS = (".css",)

log = logging.getLogger("sigreload.watch")


def signature(st):
    """What we compare: any write, truncate, rename-into-place or cp -p shows."""
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


def ignored(name, relpath, patterns):
    """True when a file or folder name (or its path under ROOT) matches a glob."""
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relpath, p) for p in patterns)


def snapshot(root, patterns=DEFAULT_IGNORE, warned=None):
    """{path: signature} of every regular file under ``root``.

    Never raises for the file system: vanished files are skipped, unreadable
    folders are reported once (``warned`` remembers them), symlink loops and
    virtualenvs (a pyvenv.cfg) are not entered, FIFOs and sockets never opened.
    """
    warned = set() if warned is None else warned
    found, seen, stack = {}, set(), [root]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                continue  # a symlink loop, or the same folder twice
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            if folder not in warned and not isinstance(exc, FileNotFoundError):
                warned.add(folder)
                log.warning("cannot read %r (%s): not watched", folder, exc.strerror)
            continue
        if folder != root and any(e.name == "pyvenv.cfg" for e in entries):
            continue
        for entry in entries:
            rel = os.path.relpath(entry.path, root)
            if ignored(entry.name, rel, patterns):
                continue
            try:
                if entry.is_dir():
                    stack.append(entry.path)
                    continue
                st = entry.stat()
            except OSError:
                continue  # vanished mid-scan, dangling link, too deep
            if stat.S_ISREG(st.st_mode):
                found[entry.path] = signature(st)
    return found


def changes(old, new):
    """Sorted paths created, modified or deleted between two snapshots."""
    return sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))


def pick_signal(paths, new):
    """SIGUSR2 when every change is a stylesheet still present, else SIGUSR1."""
    css = all(p.endswith(STYLESHEETS) and p in new for p in paths)
    return signal.SIGUSR2 if css else signal.SIGUSR1


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
    """Polls watched files and folders every ``interval`` seconds in a thread.

    ``callback(paths)`` gets every path created, modified or deleted: at once
    for the first pass that finds changes, then, while changes keep coming
    (a build, a checkout), once more after the first quiet pass. A burst
    gives at most two calls, the last after the last write.
    """

    def __init__(self, callback=None, interval=INTERVAL, ignore=DEFAULT_IGNORE):
        self.callback = callback
        self.interval = max(interval, 0.01)
        self.ignore = tuple(ignore)
        self.files = {}  # path -> WatchedFile
        self.roots = {}  # folder -> last snapshot
        self.warned = set()
        self._stop = threading.Event()
        self._thread = None

    def set_callback(self, callback):
        """Swap the callback; safe while running (takes effect next pass)."""
        self.callback = callback

    def watch_file(self, path):
        """Watch one file; idempotent."""
        self.files.setdefault(path, WatchedFile(path))

    def watch_tree(self, root):
        """Watch every file under ``root``, including files created later."""
        self.roots[root] = snapshot(root, self.ignore, self.warned)

    def is_watched(self, path):
        return path in self.files or any(path in snap for snap in self.roots.values())

    def scan(self):
        """One pass: the changed paths (and remember the new state)."""
        found = [wf.path for wf in self.files.values() if wf.has_changed()]
        for root, old in self.roots.items():
            if not os.path.isdir(root):
                continue  # deleted by a build: wait for it, do not report it empty
            new = snapshot(root, self.ignore, self.warned)
            found += changes(old, new)
            self.roots[root] = new
        return found

    def _run(self):
        """Leading edge at once; a burst's later changes in one call after a quiet pass."""
        pending, burst = [], False
        while not self._stop.wait(self.interval):
            paths = self.scan()
            if paths and not burst:
                self._fire(paths)
                burst = True
            elif paths:
                pending += paths
            elif pending:
                self._fire(sorted(set(pending)))
                pending = []
            else:
                burst = False

    def _fire(self, paths):
        if self.callback:
            self.callback(paths)

    def start(self):
        """Start polling in a daemon thread; idempotent."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)
            self._thread.start()

    def stop(self):
        """Stop polling; return whether it was running. The watch list is kept."""
        thread, self._thread = self._thread, None
        if thread is None:
            return False
        self._stop.set()
        thread.join()
        return True


class Notifier:
    """Callback that signals the broadcaster: leading edge, then one trailing signal."""

    def __init__(self, root, port):
        self.root, self.port = root, port
        self.server = None
        self.missing_said = False

    def __call__(self, paths):
        signum = pick_signal(paths, {p for p in paths if os.path.exists(p)})
        names = [os.path.relpath(p, self.root) for p in paths]
        what = ", ".join(map(repr, names[:3])) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        server = self.locate()
        if server is None or not sigreload.signal_server(server, signum):
            return
        kind = "css" if signum == signal.SIGUSR2 else "reload"
        log.info("%s changed: %s sent to broadcaster PID %d", what, kind, server.pid)

    def locate(self):
        """The broadcaster, re-found when the one we knew is gone (PID-reuse safe)."""
        if self.server and self.server.is_running() and sigreload.listens_on(self.server, self.port):
            return self.server
        try:
            self.server = sigreload.find_server(self.port)
        except LookupError as exc:
            log.error("%s; not signalling either", exc)
            return None
        if self.server is None and not self.missing_said:
            log.warning("no broadcaster listens on port %d; will look again at the next change", self.port)
        self.missing_said = self.server is None
        return self.server


def main(argv=None):
    """CLI: watch ROOT and signal the broadcaster on port WS_PORT."""
    sigreload.require_signals()
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("root", nargs="?", default=".")
    parser.add_argument("--ws-port", type=int, default=sigreload.WS_PORT)
    parser.add_argument("--interval", type=float, default=INTERVAL)
    parser.add_argument("--ignore", action="append", default=[], metavar="GLOB",
                        help="also ignore files or folders matching GLOB (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    sigreload.setup_logging(args.verbose)
    root = os.path.abspath(args.root)
    if not os.path.isdir(root):
        sys.exit(f"sigreload-watch: {args.root}: no such folder")
    stop = sigreload.stop_event()
    started = time.monotonic()
    watcher = SimpleWatcher(Notifier(root, args.ws_port), args.interval, DEFAULT_IGNORE + tuple(args.ignore))
    watcher.watch_tree(root)
    count = len(watcher.roots[root])
    log.info("watching %s: %d files every %gs (first scan %.0f ms)",
             root, count, watcher.interval, 1000 * (time.monotonic() - started))
    watcher.start()
    stop.wait()
    watcher.stop()


if __name__ == "__main__":
    main()
