"""When Django's runserver has looked at your templates since an edit (Linux).

Django's cached template loader serves the old template until its
reloader's next look (``StatReloader``: every second, in the main thread of
the process that serves; ``django.template.autoreload`` resets the loaders
then). Behind the proxy, a page still as before after an edit was asked for
again for 1.6 s in all (an edit of a template the page does not render
waited all of it). That thread sleeps between its looks, so its CPU time
(``/proc/PID/task/PID/schedstat``, in ns) grows only when it looks: once it
grew and the thread sleeps again, the loaders were reset, and the page the
app answers next is the one your edit makes, changed or not. A look is
about 5 ms of Django's; ours is two small reads every TICK.

Elsewhere (no /proc, another user's app) ``Reloader.of`` is None and the
proxy asks again on its schedule, as before.
"""

from __future__ import annotations

import os
import time

from sigreload import platforms
from sigreload.contract import finding

TICK = 0.01  # seconds between two looks at the thread
_known: dict[int, Reloader] = {}  # port -> the reloader found there last
MOST = 2.0  # seconds a look may take to come (Django's: every second, plus its own time, on a loaded machine)


class Reloader:
    """The main thread of process ``pid``: Django's reloader under runserver."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.base = f"/proc/{pid}/task/{pid}/"

    @classmethod
    def of(cls, port: int) -> Reloader | None:
        """The reloader of the process that listens on ``port`` (Django's runserver
        child binds it itself; kept while it runs), or None where that cannot be seen."""
        if not platforms.shortcuts():
            return None
        known = _known.get(port)
        if known is not None and known.ran() is not None:
            return known  # still there (a restart brings a new process, and the old one is gone)
        pids = [pid for pid in runservers() if finding.listens_on(pid, port)]  # a few ms: a look is rarely missed
        found = cls(pids[0]) if len(pids) == 1 else None
        if found is None or found.ran() is None:
            return None
        _known[port] = found
        return found

    def ran(self) -> int | None:
        """The thread's CPU time (ns), or None when gone."""
        try:
            with open(self.base + "schedstat") as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def sleeps(self) -> bool:
        try:
            with open(self.base + "stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] in ("S", "D")
        except (OSError, IndexError):
            return False

    def looked(self, most: float = MOST) -> bool:
        """Block until the thread looked once more from now (it ran, and sleeps
        again): True; False when it is gone or did not within ``most`` seconds."""
        start, end = self.ran(), time.monotonic() + most
        if start is None:
            return False
        if not self.sleeps():  # a look under way may have begun before the edit: the next one counts
            while not self.sleeps() and time.monotonic() < end:
                time.sleep(TICK)
            start = self.ran()
        while (now := self.ran()) is not None and time.monotonic() < end:
            if now != start and self.sleeps():
                return True
            time.sleep(TICK)
        return False


def runservers() -> list[int]:
    """PIDs of the processes with ``runserver`` in their command line (Django's; its
    reloader alone resets the template loaders): /proc/*/cmdline, about 1 ms where
    platforms.listeners took 45-145 ms, and a look of Django's in that time was missed
    (the page waited for the next one: a second more, on the first edit of each run)."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if b"runserver" in f.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            pass  # gone
    return found


def looked(port: int) -> bool:
    """Whether the reloader of the app on ``port`` looked once more from now (blocks
    up to MOST seconds); False at once where it cannot be seen."""
    reloader = Reloader.of(port)
    return reloader is not None and reloader.looked()
