"""The broadcaster's policy: what signals and the watcher's messages become for each client.

Pure. It is fed times (``now``: monotonic seconds; ``wall``: the wall clock
in ms, which pages compare with when they were loaded), the clients that
join and leave (opaque keys) and the messages read from the folder; it
reads no clock, touches no file or socket and starts no timer. It answers
with what to send to whom (``Broadcast.deliveries``) and when it wants to be
woken (``next_deadline``). ``broadcasting.shell`` is the asyncio shell
around it.

Signals coalesce: the first is sent at once; those within MIN_GAP of a
broadcast merge into one more at the end of the gap (the last change is
never lost). What changed (and a failed build's error) comes from the
messages read at send time.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from sigreload import livereload
from sigreload.contract.wire import BuildError, Change, ChangeKind, Event, Follow, Hello, Recalled

C = TypeVar("C", bound=Hashable)
Kind = Literal["snippet", "plain", "livereload"]  # a sigreload snippet; a pasted original one; LiveReload's client

MIN_GAP = 0.05  # seconds between two broadcasts; later signals merge (trailing edge)
CREDIT_WINDOW = 0.1  # seconds a message collected before its signal came stands for that signal
REPORT_GAP = 0.1  # seconds between two writes of what pages use
COLLECT_AFTER = 2.0  # seconds without a client joining or leaving before the old generation is collected
COLLECT_MOST = 60.0  # ... or at most this long after the last time, while clients keep coming and going
RECENT_MOST, RECENT_AGE, RECENT_PATHS = 16, 60.0, 32  # broadcasts a hello recalls: how many, how old, their paths

Chooser = Callable[[list[Any], list[str], Iterable[str]], "tuple[Any, str] | None"]


def merge(messages: list[dict[str, Any]]) -> tuple[str | None, list[str] | None, str | None]:
    """One event from the watcher's messages: (error text or None, paths or None, root).

    No message (a bare kill -USR1), or one without paths, means every page;
    an error counts only when no later message brought a good build.
    """
    if messages and "error" in messages[-1]:
        return str(messages[-1]["error"]), None, None
    if not all(isinstance(m.get("root"), str) and isinstance(m.get("paths"), list)
               and all(isinstance(p, str) for p in m["paths"]) for m in messages):
        return None, None, None  # not what a watcher writes: every page
    roots = {m["root"] for m in messages}
    if not messages or len(roots) != 1:
        return None, None, None
    return None, sorted({p for m in messages for p in m["paths"]}), roots.pop()


@dataclass(frozen=True)
class Features:
    """What pages are told they may do (the hello's flags)."""

    console: bool = True  # their console errors reach the terminal
    morph: bool = False  # --morph
    overlay: bool = True  # --no-overlay: False
    follow: bool = False  # --follow
    navigate: bool = True  # --follow may open a saved page (False: ROOT holds an app's sources)


@dataclass
class Broadcast(Generic[C]):
    """One broadcast: the event, and each message with the clients it goes to."""

    kind: ChangeKind
    event: Change | BuildError
    paths: list[str] | None  # None: every file
    deliveries: list[tuple[list[C], Event | str]] = field(default_factory=list)
    told: int = 0  # pages that hear of it
    followed: str | None = None  # the page a tab was sent to (--follow)
    app: str | None = None  # "down" or "back": the watcher's word on the app server (logged as such)


class Core(Generic[C]):
    """The broadcaster's state: its clients, generations, recent broadcasts and timers."""

    def __init__(self, *, boot: str, features: Features = Features(), choose: Chooser | None = None) -> None:
        self.boot, self.features = boot, features
        self.choose = choose  # --follow: (clients, saved paths, used paths) -> (client, path) (page_status)
        self.clients: dict[C, Kind] = {}
        self.watched: list[str] | None = None  # ids of the folders a watcher watches (None: none runs)
        self.generation = 0
        self.recent: deque[Recalled] = deque(maxlen=RECENT_MOST)
        self.error: str | None = None  # the last failed build's output, until a good one
        self.notice: str | None = None  # what the last good build still reported (its error lines)
        self.app_down = False  # the last good broadcast said the app server is down (the watcher's "app")
        self.pending: ChangeKind | None = None  # waiting for the gap to end
        self.signals = 0  # deliveries merged into the next broadcast
        self.credit, self.credit_until = 0, 0.0  # messages collected before their signals came
        self.gap_until = 0.0  # no broadcast before
        self.using: dict[C, list[str]] = {}  # client -> the URL paths its page uses
        self.counts: Counter[str] = Counter()  # path -> how many pages use it
        self.report_at: float | None = None  # when ``counts`` is to be written for the watcher
        self.collect_at: float | None = None  # when the old generation of objects is to be collected
        self.last_busy = self.busy_since = 0.0  # the last join or leave; the first since a collection

    def join(self, client: C, kind: Kind, now: float, wall: int) -> Hello | None:
        """A client is in; a snippet's hello (sent before any broadcast that follows)."""
        self.clients[client] = kind
        self.busy(now)
        return self.hello(wall) if kind == "snippet" else None

    def leave(self, client: C, now: float) -> None:
        """A client is gone (idempotent)."""
        self.clients.pop(client, None)
        if client in self.using:
            self.uses(client, None, now)
        self.busy(now)

    def snippets(self) -> list[C]:
        return [c for c, kind in self.clients.items() if kind == "snippet"]

    def hello(self, wall: int) -> Hello:
        """The first message to a snippet, and again to all when whether a watcher runs changes."""
        f = self.features
        hello: Hello = {"type": "hello", "boot": self.boot, "generation": self.generation, "root": self.watched,
                        "console": f.console, "morph": f.morph, "overlay": f.overlay, "follow": f.follow,
                        "now": wall, "recent": self.recalled(wall)}
        if self.error:
            hello["error"] = self.error
        elif self.notice:
            hello["notice"] = self.notice
        return hello

    def recalled(self, wall: int) -> list[Recalled]:
        """The broadcasts of the last RECENT_AGE seconds: a page that was away (reloading,
        reconnecting) replays those that concern it, and only those, instead of a reload."""
        while self.recent and self.recent[0]["at"] < wall - 1000 * RECENT_AGE:
            self.recent.popleft()
        return list(self.recent)

    def reload(self) -> Change:
        """A reload of one page, for nothing that changed (a status page's button)."""
        return {"type": "reload", "boot": self.boot, "generation": self.generation}

    def uses(self, client: C, paths: list[str] | None, now: float) -> None:
        """Record what a page uses (None: it left), for the watcher to look at first.
        Work per page, not per page open: thousands may leave at once."""
        old = self.using.pop(client, None) if paths is None else self.using.get(client)
        if paths is not None:
            self.using[client] = paths
        self.counts.update(paths or ())
        self.counts.subtract(old or ())
        for path in old or ():
            if self.counts[path] <= 0:
                del self.counts[path]
        if self.report_at is None:  # the list, written at most every REPORT_GAP
            self.report_at = now + REPORT_GAP

    def busy(self, now: float) -> None:
        """A client joined or left: collect the old generation once the comings and goings
        settle (COLLECT_AFTER), or at least every COLLECT_MOST while they go on."""
        self.last_busy = now
        if self.collect_at is None:
            self.busy_since = now
            self.collect_at = now + COLLECT_AFTER

    def signal(self, kind: ChangeKind) -> None:
        """Record a trigger; idempotent within one gap ("reload" beats "css")."""
        if self.pending != "reload":
            self.pending = kind
        self.signals += 1

    def next_deadline(self) -> float | None:
        """When the core wants ``due`` asked next (None: nothing waits)."""
        times = [t for t in (self.gap_until if self.pending else None, self.report_at, self.collect_at)
                 if t is not None]
        return min(times, default=None)

    def flush_due(self, now: float) -> bool:
        """Whether a broadcast is due: read the folder and ``flush``."""
        return self.pending is not None and now >= self.gap_until

    def report_due(self, now: float) -> bool:
        """Whether what pages use is to be written now (``counts``); then it is not, until the next change."""
        due = self.report_at is not None and now >= self.report_at
        if due:
            self.report_at = None
        return due

    def collect_due(self, now: float) -> bool:
        """Whether the old generation of objects is to be collected now (never in the middle of a crowd)."""
        if self.collect_at is None or now < self.collect_at:
            return False
        settled = self.last_busy + COLLECT_AFTER
        if now < settled and now < self.busy_since + COLLECT_MOST:
            self.collect_at = settled  # still coming and going
            return False
        self.collect_at = None
        return True

    def flush(self, collected: list[dict[str, Any]], now: float, wall: int) -> Broadcast[C] | None:
        """The broadcast the pending signals and ``collected`` (the folder's messages) make, or None."""
        kind, self.pending = self.pending, None
        if kind is None:
            return None
        credit = self.credit if now < self.credit_until else 0
        if not collected and self.signals <= credit:
            self.credit -= self.signals  # these signals' messages went out with the last broadcast
            self.signals = 0
            return None
        self.generation += 1
        error, paths, root = merge(collected)
        if collected:  # a bare kill -USR1 keeps the last build's notice
            self.notice = None if error else collected[-1].get("notice")
        # Signals carry no sender: more of them than messages means a bare kill among them. (The
        # watcher posts before each signal, and merged signals count once: never more than its messages.)
        # A message can be collected a flush before its own signal arrives (posted, then the kill
        # lands after this flush read the folder): it is credited to the next flush, for a moment.
        credit += len(collected) - self.signals
        if credit < 0:
            paths = root = None
        if credit > self.credit:  # earned now: good for the signals of the next moment only (OS signals
            self.credit_until = now + CREDIT_WINDOW  # merge: an old credit could hide a bare kill)
        self.credit, self.signals = max(credit, 0), 0
        self.gap_until = now + MIN_GAP
        self.error = error
        event = self.event(kind, error, paths, root)
        self.remember(event, wall)
        return self.fan_out(Broadcast(kind, event, paths, app=self.app_said(collected, error)), error is not None)

    def app_said(self, collected: list[dict[str, Any]], error: str | None) -> str | None:
        """"down" when the watcher said the app server is down; "back" for the first good
        broadcast after that (the app answers again, by hand or after a save); else None."""
        said = collected[-1].get("app") if collected else None
        if not collected or error is not None:
            return None  # a bare kill, a failed build: the app's state is as it was
        back, self.app_down = self.app_down or said == "back", said == "down"
        return "down" if self.app_down else "back" if back else None

    def event(self, kind: ChangeKind, error: str | None, paths: list[str] | None,
              root: str | None) -> Change | BuildError:
        if error is not None:  # only snippets draw it: plain clients would reload
            return {"type": "error", "boot": self.boot, "generation": self.generation, "text": error}
        change: Change = {"type": kind, "boot": self.boot, "generation": self.generation}
        if paths is not None and root is not None:
            change["paths"], change["root"] = paths, root
        if self.notice:
            change["notice"] = self.notice
        return change

    def remember(self, event: Change | BuildError, wall: int) -> None:
        """Keep a broadcast for the hello: its generation, kind, time and paths (None: every file)."""
        paths = event.get("paths") if event["type"] != "error" else None
        paths = paths if paths is not None and len(paths) <= RECENT_PATHS else None
        root = event.get("root") if paths is not None and event["type"] != "error" else None
        self.recent.append({"type": event["type"], "generation": event["generation"], "at": wall,
                            "paths": paths, "root": root})

    def fan_out(self, broadcast: Broadcast[C], error: bool) -> Broadcast[C]:
        """Who hears what: snippets the event (one tab maybe sent where --follow goes),
        plain clients ``reload``, LiveReload clients its commands; a failed build only snippets."""
        snippets = self.snippets()
        if self.features.follow and broadcast.paths is not None and not error and broadcast.kind == "reload":
            self.follow_saved(snippets, broadcast)
        broadcast.deliveries.append((snippets, broadcast.event))
        told = len(snippets)  # a tab sent elsewhere by --follow is not told of the change
        if not error:
            plain = [c for c, kind in self.clients.items() if kind == "plain"]
            reloading = [c for c, kind in self.clients.items() if kind == "livereload"]
            broadcast.deliveries.append((plain, "reload"))
            for command in livereload.commands(broadcast.kind, broadcast.paths) if reloading else ():
                broadcast.deliveries.append((reloading, command))
            told += len(plain) + len(reloading)
        broadcast.told = told
        return broadcast

    def follow_saved(self, snippets: list[C], broadcast: Broadcast[C]) -> None:
        """--follow: a saved page that no page shows opens in the tab focused last (taken out of ``snippets``)."""
        if not self.features.navigate or self.choose is None or broadcast.paths is None:
            return  # --proxy, --app: saved files are sources (templates), not pages
        chosen = self.choose(snippets, broadcast.paths, (p for used in self.using.values() for p in used))
        if chosen:
            snippets.remove(chosen[0])
            follow: Follow = {"type": "follow", "path": chosen[1], "boot": self.boot, "generation": self.generation}
            broadcast.deliveries.append(([chosen[0]], follow))
            broadcast.followed = chosen[1]
