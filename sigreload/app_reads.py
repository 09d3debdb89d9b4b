"""Which templates your app read, seen from outside (Linux: inotify's
IN_ACCESS on the ``templates`` folders under ROOT), for the watcher with
``--app`` (behind the proxy, or with a pasted snippet) where no middleware
says what the pages rendered (``middleware.rendered``).

An edit of a template that the app never read since its template cache was
empty changes no page: nothing reloads, at once (behind the proxy, Django's
cached loader made such an edit wait for Django's reloader: up to a second,
and 1.9-2.1 s before that). The cache is known empty (``cold``) only when
the app's process started after this watch began (a restart, or an app
started after sigreload), or once Django's runserver reset its template
loaders after an edit of one (its reloader looked since: ``app_tick``).
Until then nothing is skipped. Anything else that reads a template (your
editor opening it, grep) counts as a read: such an edit reloads, as before.
"""

from __future__ import annotations

import ctypes
import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sigreload import app_tick, platforms
from sigreload.contract import used_paths

FOLDER = "templates"  # Django's convention (DIRS, and each app's own), Flask's and Jinja's
SKIP = {".git", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache"}
MOST = 256  # template folders watched at most
IN_ACCESS, IN_Q_OVERFLOW, IN_NONBLOCK, IN_CLOEXEC = 0x1, 0x4000, 0o4000, 0o2000000
EVENT = struct.Struct("iIII")


class Reads:
    """The template files read since this watch began, under ``root``'s
    ``templates`` folders, by the app on ``port`` (see the module)."""

    def __init__(self, root: str | None, port: int) -> None:
        self.port, self.began = port, time.time()
        self.read: set[str] = set()
        self.dirs: dict[int, str] = {}  # watch descriptor -> folder
        self.cold = False
        self.old: dict[int, float] = {}  # {pid: start} of the listeners that started before this watch (a PID
        # reused is a process that started at another time: 1 s apart at least, as seen here)
        self.proxied = False  # sigreload's proxy in front: it waits for Django's reloader itself (``later``)
        self.lock = threading.Lock()
        self.fd = -1
        if root is None or not platforms.shortcuts():
            return
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        for folder in template_folders(root):
            wd = libc.inotify_add_watch(self.fd, os.fsencode(folder), IN_ACCESS)
            if wd >= 0:
                self.dirs[wd] = os.path.realpath(folder)
        if self.dirs:  # who listens, looked at now: not on the first edit (its message would wait for it)
            threading.Thread(target=self.prime, name="template-listeners", daemon=True).start()

    def prime(self) -> None:
        with self.lock:
            self.restarted()

    def drain(self) -> None:
        """Take in the reads so far (the kernel queues them)."""
        while self.fd >= 0:
            try:
                data = os.read(self.fd, 65536)
            except (BlockingIOError, OSError):
                return
            at = 0
            while at + EVENT.size <= len(data):
                wd, mask, _, length = EVENT.unpack_from(data, at)
                name = data[at + EVENT.size:at + EVENT.size + length].rstrip(b"\0")
                at += EVENT.size + length
                if mask & IN_Q_OVERFLOW:  # reads were lost: known again only from the next empty cache
                    self.cold, self.began = False, time.time()
                elif mask & IN_ACCESS and name and wd in self.dirs:
                    self.read.add(os.path.join(self.dirs[wd], os.fsdecode(name)))

    def unread(self, paths: list[str]) -> list[str]:
        """Those of ``paths`` that are templates the app has not read since its cache
        was empty (none while that is not known); an edit of another template
        makes the cache empty once Django's reloader looked (in a thread)."""
        if not self.dirs:
            return []
        templates = [p for p in paths if not p.endswith(".py") and self.under(p)]
        if not templates:
            return []
        with self.lock:
            self.drain()
            cold = self.cold or self.restarted()
            skipped = [p for p in templates if os.path.realpath(p) not in self.read] if cold else []
        if len(skipped) < len(templates) and not cold:
            threading.Thread(target=self.reset_seen, name="template-reset", daemon=True).start()
        return skipped

    def later(self, paths: list[str], tell: Callable[[list[str]], None], folder: Path | None) -> None:
        """``tell(paths)`` at once, or, for a template edit under Django's runserver with
        no proxy in front and no middleware (it said its folders in ``folder``: a reload
        resets the loaders), once its reloader looked (in a thread): its cached loader
        serves the old template until then, so a page reloaded sooner showed it and
        read nothing, and the next edit of that template was taken for no page's."""
        templates = [p for p in paths if not p.endswith(".py") and self.under(p)]
        inside = folder is not None and bool(used_paths.listed(folder, "app-dirs"))  # the middleware
        reloader = None if self.proxied or inside or not templates else app_tick.Reloader.of(self.port)
        if reloader is None or not runserver(reloader.pid):
            tell(paths)
        else:
            threading.Thread(target=self.told, args=(reloader, paths, tell), name="template-look", daemon=True).start()

    @staticmethod
    def told(reloader: app_tick.Reloader, paths: list[str], tell: Callable[[list[str]], None]) -> None:
        reloader.looked()  # (gone, or no look within its MOST: told all the same)
        tell(paths)

    def under(self, path: str) -> bool:
        real = os.path.realpath(path)
        return any(real.startswith(os.path.join(d, "")) for d in self.dirs.values())

    def restarted(self) -> bool:
        """Whether every process listening on the app's port started after this watch began.
        Looked at anew (platforms.listeners: 10-150 ms, the edit's message waits) only once
        one of those that listened last time is gone: Werkzeug's and uvicorn's parent,
        which holds the socket, outlives each restart, so a template edit costs no look."""
        from sigreload.app_server import listeners

        if not self.old or not all(abs((platforms.started_at(pid) or 0) - at) < 1 for pid, at in self.old.items()):
            found = listeners(self.port)
            self.cold = bool(found) and min(found.values()) > self.began
            self.old = {} if self.cold else {pid: at for pid, at in found.items() if at <= self.began}
        return self.cold

    def reset_seen(self) -> None:
        """Django's runserver resets its template loaders when its reloader looks
        after a template edit: from then on the cache is empty (cold)."""
        reloader = app_tick.Reloader.of(self.port)
        if reloader is None or not runserver(reloader.pid):
            return
        if reloader.looked():
            self.cold = True


def runserver(pid: int) -> bool:
    """Whether process ``pid`` is Django's runserver (only its reloader resets the template cache)."""
    import psutil

    try:
        return "runserver" in psutil.Process(pid).cmdline()
    except psutil.Error:
        return False


def template_folders(root: str) -> list[str]:
    """The folders named ``templates`` under ``root``, and theirs (at most MOST)."""
    found: list[str] = []
    for here, dirs, _ in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP and not d.startswith(".")]
        if FOLDER in here.split(os.sep)[len(root.split(os.sep)):]:
            found.append(here)
            if len(found) >= MOST:
                break
    return found
