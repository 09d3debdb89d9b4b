"""The watcher's pacing: when to look at what, given the time and what looking costs.

Pure policy. It is fed times (``now``, in monotonic seconds) and CPU costs
(seconds of CPU); it starts no thread, reads no clock and touches no file.
``file_watching.SimpleWatcher`` is the loop around it: it asks how long to
sleep, how much of each sweep is due, which files are hot, and whether a
burst of changes has settled.

The budget: polling spends at most POLL_BUDGET of a core (HINT_BUDGET with
kernel notifications, whose hints do the rest). Recently edited files (the
hot list) are looked at every tick; the whole tree is swept in slices, as
often as the budget left by the ticks allows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from sigreload.command_line import INTERVAL

SETTLE = 0.005  # quiet time that ends a save (a hot file's lone change) ...
BURST_SETTLE = 0.02  # ... and any other burst (longer for big ones, up to 0.1 s)
MAX_BURST = 2.0  # a never-ending stream of writes still reloads this often
HOLD_LOOK = 0.01  # a burst that looks settled but is still being written (``unsettled``): looked at again
POLL_BUDGET = 0.029  # the most of a core the watcher spends polling (ticks and sweep): 3% for all
HINT_BUDGET = 0.002  # ... and with notifications (the sweep is a safety net...
HINT_PERIOD = 2.0  # ... every this many seconds at most often)
SWEEP_TARGET = 1.0  # seconds per full sweep of a tree too costly to sweep every tick...
SMALL_SHARE = 0.002  # ... that is, costing more than this share of a core at that pace
SLICE = 0.02  # the most CPU (s) one slice of a sweep takes (the hot list waits meanwhile)
HOT_AGE = 600  # files edited this recently (s) are looked at every tick...
HOT_MAX = 16  # ... at most this many (what pages use is looked at too)
ACCOUNT_EVERY = 2.0  # seconds between two measurements of the overhead
GATHER_COST = 0.05  # polling: a change of a hot file gathers its burst by full sweeps when one costs less
GATHER_QUIET = 0.05  # the least quiet before the sweep that ends a gathered burst (but a lone save's)


class Pacing:
    """When to tick, sweep and call back, for one watcher.

    ``hinting``: kernel notifications tell where to look (the sweep is a
    safety net). A burst of changes ends after ``settle()`` of quiet, or
    MAX_BURST after its first change, so a build or a checkout gives one
    call, after its last write. While polling, a burst is ``gather``ed: the
    whole tree is swept every tick until a full sweep finds nothing more
    (what it takes to settle a burst is spent; the budget is for idle time).
    """

    def __init__(self, interval: float = INTERVAL, hinting: bool = False) -> None:
        self.interval = max(interval, 0.01)
        self.hinting = hinting
        self.budget = HINT_BUDGET if hinting else POLL_BUDGET
        self.overhead = 0.0  # the share of a core ticks and hints cost (smoothed)
        self.window: tuple[float, float] | None = None  # (when, CPU) it is measured from
        self.heated: dict[str, float] = {}  # the hot list, hottest first: path -> when it got hot
        self.pending: set[str] = set()  # the burst so far
        self.first = self.last = 0.0  # when its first and last change were found
        self.held = 0.0  # a burst still being written is not told before this
        self.gathering = False  # sweeping the whole tree every tick until ...
        self.clean = False  # ... a full sweep found nothing
        self.saved = False  # the gathering began with a hot file's change
        self.saving = False  # the burst began with a hot file's lone change: a save, most likely

    def use_hints(self, hinting: bool = True) -> None:
        """Notifications started (the small budget) or turned out missing (polling)."""
        self.hinting = hinting
        self.budget = HINT_BUDGET if hinting else POLL_BUDGET

    # The hot list.

    def heat(self, paths: Iterable[str], now: float) -> list[str]:
        """Put ``paths`` first in the hot list for HOT_AGE seconds; the hot list.
        A burst takes at most half of it: the files hot before it stay hot."""
        paths = list(paths)[-(HOT_MAX // 2):]
        self.heated.update(dict.fromkeys(paths, now))
        keep = [p for p in dict.fromkeys([*paths, *self.heated]) if now - self.heated[p] < HOT_AGE]
        self.heated = {p: self.heated[p] for p in keep[:HOT_MAX]}
        return list(self.heated)

    def cooled(self, now: float) -> bool:
        """Drop the files hot for HOT_AGE; whether any was."""
        if self.heated and now - min(self.heated.values()) >= HOT_AGE:
            self.heat([], now)
            return True
        return False

    # The sweep.

    def period(self, cost: float) -> float:
        """Seconds per full sweep of a tree costing ``cost`` of CPU: every tick
        for a small tree (HINT_PERIOD with hints), SWEEP_TARGET for a bigger
        one, longer when that would cost more than the budget leaves after the
        ticks themselves (measured)."""
        spare = max(self.budget - self.overhead, self.budget / 2)
        floor = HINT_PERIOD if self.hinting else self.interval
        return max(floor, min(SWEEP_TARGET, cost / SMALL_SHARE), cost / spare)

    def due(self, began: float, cost: float, now: float) -> tuple[float, float]:
        """(How much of a sweep begun at ``began`` is due by ``now``, 0 to 1; when
        its next slice is due). Slices take at most SLICE of CPU, each at a fixed
        point of the period, so every folder is looked at once a period (never
        twice, then not for two, around a slice's end)."""
        if self.gathering:
            return 1.0, began
        period, slices = self.period(cost), max(1, math.ceil(cost / SLICE))
        done = min(slices, math.floor((now - began) / period * slices))
        return done / slices, began + period * min(done + 1, slices) / slices

    def next_sweep(self, began: float, cost: float, now: float) -> float:
        """When the sweep after one begun at ``began`` begins: a period later (no
        drift), or now when that is long past or a burst is being gathered."""
        if self.gathering:
            return now
        return max(began + self.period(cost), now - self.interval)

    def pace(self, cost: float) -> str:
        """What polling a tree costing ``cost`` comes to, in words (for the log)."""
        period = self.period(cost)
        if period <= self.interval:
            return f"every {self.interval:g}s, {100 * cost / period:.1f}% of a core"
        return (f"{'big tree: ' if period >= SWEEP_TARGET else ''}a full sweep every {period:.1f}s, "
                f"{100 * cost / period:.1f}% of a core; recently edited files every {self.interval:g}s")

    # Sleeping and bursts.

    def sleep(self, now: float, slices_due: Iterable[float], ticking: bool = False) -> float:
        """Seconds to sleep: until a pending burst may have settled (gathering: until
        the sweep that may end it is due); a tick while
        files are looked at one by one (``ticking``, or hot without hints); else
        until the next slice of a sweep is due (a hint wakes the loop sooner)."""
        if self.pending:
            quiet = max(self.settle(), GATHER_QUIET) if self.gathering and not self.clean else self.settle()
            wait = max(self.last + quiet, self.held) - now
        elif ticking or (self.heated and not self.hinting):
            wait = self.interval
        else:
            wait = min([at - now for at in slices_due], default=self.interval)
        return max(0.001, wait)

    def settle(self) -> float:
        """The quiet that ends the burst: a save (one hot file) settles in SETTLE;
        anything else (a new file, a checkout) in BURST_SETTLE, a big burst waits
        longer for its tail. Gathering, the clean full sweep after that quiet ends it."""
        if self.clean:
            return 0.0
        if self.saving and len(self.pending) <= 1:
            return SETTLE
        return min(0.1, BURST_SETTLE + 0.001 * len(self.pending))

    def gather(self, cost: float | None = None) -> bool:
        """Gather the burst going on by sweeping the whole tree every tick (for a
        change a sweep found, or, with ``cost``, a hot file's change when a full
        sweep costs less than GATHER_COST). Returns whether a new gathering
        began: then the sweep in progress must start over (its first folders
        were swept before the burst began)."""
        if self.gathering or (cost is not None and cost > GATHER_COST):
            return False
        self.gathering, self.clean, self.saved = True, False, cost is not None
        return True

    def swept(self, found: bool, began: float) -> None:
        """A full sweep begun at ``began`` (after the gathering began) ended;
        ``found``: it found more. One that found nothing, begun once the burst
        was quiet for ``settle()`` and GATHER_QUIET (or right after a hot file's
        lone change: a save), settles the burst."""
        lone = self.saved and self.saving and len(self.pending) <= 1
        quiet = lone or began - self.last >= max(self.settle(), GATHER_QUIET)
        if self.gathering and not found and quiet:
            self.clean = True

    def found(self, paths: Iterable[str], now: float, age: float = 0.0) -> None:
        """Changes were found at ``now``, the newest written ``age`` seconds before
        (a sweep knows: the burst has been quiet that long): they join the burst
        and get hot. Only a path new to the burst undoes a clean sweep."""
        paths = list(paths)
        if not paths:
            return
        if not self.pending:
            self.saving = len(paths) == 1 and paths[0] in self.heated
            self.first, self.last = now, now - age
        if not self.pending.issuperset(paths):
            self.clean = False
        self.pending.update(paths)
        self.heat(paths, now)
        self.last = max(self.last, now - age)

    def burst(self, now: float, unsettled: Callable[[list[str]], float] | None = None) -> list[str] | None:
        """The burst's paths, sorted, once it settled (and, gathering, a full sweep
        found nothing more), or went on for MAX_BURST; else None.

        ``unsettled(paths)``, asked when the burst looks settled, says for how
        long after its first change it may still be held (0: not at all): a
        writer's temporary is still there, git holds its index lock. Held, it
        is looked at again every HOLD_LOOK, the paths found meanwhile join it;
        once done, it waits ``settle()`` more for the last writes' news."""
        if not self.pending:
            self.gathering = False
            return None
        settled = now - self.last >= self.settle() and (self.clean or not self.gathering) and now >= self.held
        if settled and unsettled is not None:
            if now - self.first < min(unsettled(sorted(self.pending)), MAX_BURST):
                self.held, settled = now + HOLD_LOOK, False
            elif self.held:  # done being written just now: its last writes may not be found yet
                self.held, self.last, self.clean, settled = 0.0, now, False, False
        if settled or now - self.first > MAX_BURST:
            paths, self.pending, self.first, self.held = sorted(self.pending), set(), 0.0, 0.0
            self.gathering = self.clean = False
            return paths
        return None

    # Accounting.

    def account(self, now: float, cpu: float) -> None:
        """Fed the CPU the watching itself has spent so far (not the sweep, not the
        callback), every ACCOUNT_EVERY it updates ``overhead``: what the budget
        cannot give the sweep."""
        if self.window is None:
            self.window = (now, cpu)
        elif now - self.window[0] >= ACCOUNT_EVERY:
            self.overhead += ((cpu - self.window[1]) / (now - self.window[0]) - self.overhead) / 4
            self.window = (now, cpu)
