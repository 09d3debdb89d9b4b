"""Your app server, seen from outside: who listens on its port, since when, and
whether it answers. The watcher uses it to reload pages only once the app
server that answers runs the code you saved.

How the dev servers restart (their source): Werkzeug (Flask ``--debug``) and
uvicorn ``--reload`` bind in a parent that keeps the socket and start a new
child for each run; Django's ``runserver`` child binds the port itself, so the
port is closed between children. Either way a restart brings a process that
listens on the port and STARTED AFTER the save: that process imported the new
code. A reload sent before it answers reaches the old process (Werkzeug,
uvicorn) or a closed port (Django).
"""

from __future__ import annotations

import fnmatch
import os
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from sigreload import app_lookout, app_reads, platforms
from sigreload.app_ready import answers
from sigreload.contract import discovery

QUIET = 3.0  # no sign of a restart by then: the edit did not restart the app
LIMIT = 10.0  # the most we wait for a restart under way (an old process went away)
TICK = 0.01  # between two looks at the app server's processes (a look: about 1 ms)
FULL = 0.25  # between two looks at every process's sockets (a look: 10 ms or more)
SLACK = 0.02  # process start times are counted in 10 ms clock ticks
RESTARTS_ON = ("*.py",)  # what the dev servers' reloaders restart on
ANSWER = 0.3  # seconds an app that restarted has to answer one request before we look whether it is stuck
IDLE = 0.5  # a new app process that listens on nothing and has not run for this long is stuck
BUSY = 0.05  # CPU seconds that count as having run (Django's idle reloader: a few ms a second)
DOWN = "is down"  # how wait_for_restart's answer begins when the app will not answer by itself
PAGES_SAY = "pages say so until it is back"  # how it ends then
BACK = "answers again"  # what the Waiter says when an app that was down answers with no save since
BACK_EVERY = 0.5  # seconds between two looks at whether an app that is down answers again


def restarts(path: str) -> bool:
    """Whether the dev servers' reloaders restart the app when ``path`` changes."""
    return any(fnmatch.fnmatch(os.path.basename(path), glob) for glob in RESTARTS_ON)


def parse_app(url: str) -> tuple[str, int]:
    """(host, port) of an app URL on this machine; ValueError with a reason otherwise."""
    parts = urlsplit(url if "//" in url else "http://" + url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url}: only http:// or https:// app servers (on this machine)")
    host = parts.hostname or ""
    if host not in ("localhost", "::1") and not host.startswith("127."):
        raise ValueError(f"{url}: not a loopback address (use 127.0.0.1 or localhost)")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"{url}: bad port") from None
    return host, port


def app_or_exit(url: str, where: str, origin_only: bool = False) -> tuple[str, int]:
    """``parse_app(url)``, or exit with one line that starts with ``where``
    (the command and its flag, e.g. "sigreload: --proxy"). With ``origin_only``
    (the proxy: it forwards every path as the client asked for it) a URL with a
    path is refused, never silently cut to its origin."""
    try:
        found = parse_app(url)
    except ValueError as exc:
        sys.exit(f"{where} {exc}")
    parts = urlsplit(url if "//" in url else "http://" + url)
    if origin_only and (parts.path not in ("", "/") or parts.query or parts.fragment):
        origin = f"{parts.scheme}://{parts.netloc}"
        sys.exit(f"{where} {url}: give the app's origin alone ({origin}); every path goes to the app as it is "
                 f"asked for, so open {parts.path or '/'} on sigreload's address")
    return found


started_at = platforms.started_at  # when a process started, as time.time() would have said; None when gone
children = platforms.children  # PIDs of a process's children (Linux: read from /proc in a fraction of a ms)


def listeners(port: int) -> dict[int, float]:
    """{pid: start time} of this user's processes listening on TCP ``port``
    (platforms.listeners: about 10 ms, and much more while an app boots)."""
    found = {pid: started_at(pid) for pid in platforms.listeners(port)}
    return {pid: t for pid, t in found.items() if t is not None}


def family(first: dict[int, float]) -> set[int]:
    """Where a restarted server appears: a child of the listeners (Werkzeug and
    uvicorn keep the socket in a parent), or of a lone listener's parent
    (Django's child binds; its parent, the reloader, starts the next one)."""
    import psutil

    around = set(first)
    if len(first) == 1:
        try:
            parent = psutil.Process(next(iter(first))).ppid()
        except psutil.Error:
            parent = 1
        around |= {parent} - {1, os.getpid()}
    return around


class Replacements:
    """The processes that replace those of ``first`` that went away: a new
    process with the command line of one that listened (``candidates``), or
    one that listens but does not answer (``watch``). Says when one is stuck:
    it exited (uvicorn's child after a syntax error), or it has not run for
    IDLE seconds (Django's child, whose reloader waits for the fix, listens
    on nothing)."""

    def __init__(self, first: dict[int, float]) -> None:
        import psutil

        self.cmdlines = set()
        for pid in first:
            try:
                self.cmdlines.add(tuple(psutil.Process(pid).cmdline()))
            except psutil.Error:
                pass
        self.seen: dict[int, Any] = {}  # pid -> its psutil.Process
        self.ran: dict[int, tuple[float, float]] = {}  # pid -> (its CPU time, when it last ran)

    def candidates(self, new: list[int], port: int) -> None:
        """Watch those of ``new`` that replace a process that listened, and do not listen."""
        import psutil

        for pid in new:
            try:
                if (pid not in self.seen and tuple(psutil.Process(pid).cmdline()) in self.cmdlines
                        and not discovery.listens_on(pid, port)):
                    self.watch(pid)
            except psutil.Error:
                pass

    def watch(self, pid: int) -> None:
        import psutil

        try:
            self.seen.setdefault(pid, psutil.Process(pid))
        except psutil.Error:
            pass

    def stuck(self, now: float) -> str | None:
        """Why one of the watched processes will not answer, or None."""
        import psutil

        for pid, proc in self.seen.items():
            try:
                cpu = sum(proc.cpu_times()[:2])
            except psutil.Error:
                return f"its new process (PID {pid}) exited (an error in your code?)"
            last, since = self.ran.get(pid, (-BUSY, now))
            if cpu - last >= BUSY:
                self.ran[pid] = (cpu, now)
            elif now - since >= IDLE:
                return f"its new process (PID {pid}) does not answer and waits (an error in your code?)"
        return None


def wait_for_restart(host: str, port: int, saved_at: float,
                     superseded: Callable[[], bool] = lambda: False,
                     clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], None] = time.sleep, scheme: str = "http") -> str:
    """Block until the app server runs code saved at ``saved_at`` (time.time()) and
    answers, until it is clear that it will not restart, or until ``superseded()``
    (a newer save). Says what happened, in words that follow "app server" in the
    log (beginning with DOWN when pages cannot get an answer until a fix).

    A restart is a process listening on ``port`` that started after the save.
    Each tick looks only at the first listeners' family (cheap); a full look
    at every process runs every FULL seconds (a server restarted some other
    way). Without a restart we wait QUIET seconds, or, while one of the
    processes that listened at first has gone (a restart under way, or a
    crash), until its replacement is stuck (Replacements) or LIMIT seconds.
    """
    start, first = clock(), listeners(port)
    around, now, last_full = family(first), first, clock()
    replacements = Replacements(first)
    while not superseded():
        new = [p for c in around for p in children(c) if p not in first]
        fresh = sorted(p for p in new if (started_at(p) or 0) >= saved_at - SLACK and discovery.listens_on(p, port))
        if not fresh and clock() - last_full > FULL:
            now, last_full = listeners(port), clock()
            fresh = sorted(pid for pid, t in now.items() if t >= saved_at - SLACK)
        if fresh:
            replacements.watch(fresh[-1])
            while not (up := answers(host, port, ANSWER, scheme)) and not superseded():
                stuck = replacements.stuck(clock())
                if stuck or clock() - start > LIMIT:  # LIMIT: it takes connections, or queues them, no answer
                    why = stuck or f"its new process (PID {fresh[-1]}) takes connections but does not answer"
                    return f"{DOWN}: {why}: {PAGES_SAY}"
                sleep(TICK)
            if up:
                return f"restarted (PID {fresh[-1]}), answering after {clock() - start:.2f}s"
            break
        gone = any(started_at(pid) is None for pid in first)
        if gone:
            replacements.candidates([p for p in new if (started_at(p) or 0) >= saved_at - SLACK], port)
            stuck = replacements.stuck(clock())
            if stuck:
                return f"{DOWN}: {stuck}: {PAGES_SAY}"
        if clock() - start > (LIMIT if gone else QUIET):
            if not now:
                return f"{DOWN} (nothing listens on its port): {PAGES_SAY}"
            return f"did not restart within {QUIET:.0f}s: reloading"
        sleep(TICK)
    return "superseded by a newer save"


def notice(what: str) -> str | None:
    """What every page shows while the app is down (``what``: wait_for_restart's answer; the
    broadcast's notice, until the app's return brings the next), or None when it answers."""
    if not what.startswith(DOWN):
        return None
    why = what[len(DOWN):].removesuffix(f": {PAGES_SAY}").strip()
    why = why if why.startswith(":") or not why else f" {why}"  # ": its new process exited" or " (nothing ...)"
    return f"Your app does not answer{why}.\nThis page reloads by itself once it answers (see the app's terminal)."


def saved_at(paths: list[str]) -> float:
    """When the newest of ``paths`` was saved: its ctime (a cp -p keeps the mtime)."""
    times = []
    for path in paths:
        try:
            times.append(os.stat(path).st_ctime)
        except OSError:
            times.append(time.time())  # deleted: just now
    return max(times, default=time.time())


class Waiter:
    """Calls ``send(paths)`` once the app server runs the newest save and answers.

    A thread waits (wait_for_restart), so the watcher keeps watching: a newer
    save, a fix after a broken edit say, supersedes the wait and merges its
    paths, and only the newest wait sends. After a wait that ended with the
    app down, it looks every BACK_EVERY seconds whether the app answers again
    with no save (restarted by hand): then ``send([], BACK)``. While ``pages()``
    (pages are open) it looks whether the app went away (app_lookout)."""

    def __init__(self, *, url: str, send: Callable[[list[str], str], None],
                 pages: Callable[[], bool] | None = None, root: str | None = None):
        self.host, self.port = parse_app(url)
        self.reads = app_reads.Reads(root, self.port)  # the templates it read (no middleware: inotify)
        self.scheme = "https" if url.startswith("https:") else "http"
        self.send, self.pages = send, pages
        self.cond = threading.Condition()
        self.paths: list[str] = []
        self.saved: float | None = None
        self.generation = 0
        threading.Thread(target=self._run, name="app-restart", daemon=True).start()

    @property
    def pending(self) -> bool:
        """Whether a wait is under way (changes then join it)."""
        return self.saved is not None

    def submit(self, paths: list[str], saved: float | None = None) -> None:
        """Send ``paths`` after the restart that a save at ``saved`` causes."""
        with self.cond:
            self.paths += [p for p in paths if p not in self.paths]
            self.saved = max(self.saved or 0.0, saved or 0.0)
            self.generation += 1
            self.cond.notify()

    def _superseded(self, generation: int) -> bool:
        """Whether a newer save came after wait number ``generation``."""
        return self.generation != generation

    def _run(self) -> None:
        platforms.listeners(self.port)  # who listens now: looked at first after a save (the portable paths)
        down = False  # the last wait ended with the app down: said back once it answers (restarted by hand)
        while True:
            with self.cond:
                look = BACK_EVERY if down else app_lookout.EVERY if self.pages else None
                self.cond.wait_for(lambda: self.saved is not None, look)
                saved, generation = self.saved, self.generation
            if saved is None:
                if down and answers(self.host, self.port, ANSWER, self.scheme):
                    down = False
                    self.send([], BACK)
                elif not down and self.pages and self.pages() and not app_lookout.listens(self.host, self.port):
                    down = True  # stopped by hand, no edit: pages say so until it answers again
                    self.send([], f"{DOWN} {app_lookout.GONE}: {PAGES_SAY}")
                continue
            what = wait_for_restart(self.host, self.port, saved, scheme=self.scheme,
                                    superseded=partial(self._superseded, generation))
            with self.cond:
                if self.generation != generation:
                    continue
                paths, self.paths, self.saved = self.paths, [], None
            down = what.startswith(DOWN)
            self.send(paths, what)
