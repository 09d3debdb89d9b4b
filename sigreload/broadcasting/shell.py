"""The asyncio shell around the broadcaster's core: it reads the message folder,
feeds ``core.Core`` the signals, the clients and the time, sends what the core
returns (websockets' ``broadcast``: never blocks on a slow client) and keeps
the one timer the core asks for (``Core.next_deadline``)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from websockets.asyncio.server import ServerConnection, broadcast

from sigreload import consoles, page_status, platforms
from sigreload.broadcasting.core import Broadcast, Core, Features, Kind
from sigreload.contract import changes, used_paths, watcher_ids
from sigreload.contract.wire import ChangeKind, Event
from sigreload.serving import limits

log = logging.getLogger("sigreload.broadcast")
SLACK = time.get_clock_info("monotonic").resolution


def now_ms() -> int:
    """The broadcaster's wall clock in ms: pages compare it with when they were loaded."""
    return int(time.time() * 1000)


def send(clients: list[ServerConnection], message: Event | str) -> None:
    """``message`` (an event, or a bare text) to ``clients``; skips closed connections."""
    if clients:
        broadcast(clients, message if isinstance(message, str) else json.dumps(message))


class Broadcaster:
    """Signals become messages to the pages of one process.

    ``folder``: where the watcher leaves its messages (``messages.Mailbox``;
    None: none could be made, pages reload on every change); ``port``: the
    port pages connect to (a tab's challenge is answered for it with ``key``,
    ``secret.folder_key``); ``console``: pages' errors in the terminal (None: off).
    """

    def __init__(self, *, features: Features, folder: Path | None, port: int, key: bytes,
                 console: consoles.Consoles | None) -> None:
        self.folder, self.port, self.key, self.console = folder, port, key, console
        self.loop = asyncio.get_running_loop()
        self.status = page_status.Status(broadcast, later=self.loop.call_later,  # what /_sigreload/ shows
                                         reload_one=lambda c: send([c], self.core.reload()))
        self.core: Core[ServerConnection] = Core(boot=secrets.token_hex(6), features=features,
                                                 choose=self.status.to_follow)
        self.reported = used_paths.Writer(lambda: self.folder, "pages")  # what pages use, for the watcher
        self.timer: asyncio.TimerHandle | None = None
        self.watcher_said: tuple[int, int, int] | None = None  # the stamp of what the watcher said, when read
        self.watcher_exit: Callable[[], None] | None = None  # stops following the watcher's exit
        self.stop_told = False  # pages were told the watcher stopped
        self.trim = limits.malloc_trim()  # what the collection freed, back to the system

    def signal(self, kind: ChangeKind) -> None:
        """SIGUSR1 ("reload") or SIGUSR2 ("css"): sent now, or merged into the broadcast at the end of the gap."""
        self.core.signal(kind)
        self.wake()

    def join(self, client: ServerConnection, kind: Kind) -> None:
        """A client is in: a snippet hears the hello first (whether a watcher runs, looked at now)."""
        if kind == "snippet":
            self.look_at_watcher()
        hello = self.core.join(client, kind, self.loop.time(), now_ms())
        if hello is not None:
            send([client], hello)
        self.arm()

    def leave(self, client: ServerConnection) -> None:
        self.core.leave(client, self.loop.time())
        self.arm()

    def uses(self, client: ServerConnection, paths: list[str]) -> None:
        self.core.uses(client, paths, self.loop.time())
        self.arm()

    def wake(self) -> None:
        """Do what the core says is due: a broadcast, a report of what pages use, a collection."""
        self.timer = None
        now = self.loop.time() + SLACK  # asyncio runs a timer up to its clock's resolution early
        if self.core.flush_due(now):
            self.look_at_watcher()
            done = self.core.flush(changes.read(self.folder), now, now_ms())
            if done is not None:
                self.sent(done)
        if self.core.report_due(now):
            self.reported.replace(self.core.counts)
        if self.core.collect_due(now):
            # Never in the middle of a crowd (``server.run`` keeps the automatic collector to the young
            # generations: with thousands of clients a full pass takes hundreds of ms, and no page hears a thing).
            gc.collect()
            if self.trim is not None:  # else the process keeps what 3,000 pages' sockets took (50 MB)
                self.trim(0)
        self.arm()

    def arm(self) -> None:
        """The one timer, at the core's next deadline."""
        deadline = self.core.next_deadline()
        if self.timer is not None and (deadline is None or self.timer.when() != deadline):
            self.timer.cancel()
            self.timer = None
        if deadline is not None and self.timer is None:
            self.timer = self.loop.call_at(deadline, self.wake)

    def sent(self, done: Broadcast[ServerConnection]) -> None:
        for clients, message in done.deliveries:
            send(clients, message)
        if done.followed is not None:
            log.info("a tab follows to %s", consoles.escaped(done.followed))
        error = done.event["type"] == "error"
        paths = done.paths
        what = "every file" if paths is None else ", ".join(map(consoles.escaped, paths[:3])) + (
            " ..." if len(paths) > 3 else "")  # a file's name never moves the terminal's cursor
        if done.app == "down":  # a notice alone, no reload (app_server.notice)
            log.info("app down: said to %d page(s)", done.told)
        elif done.app == "back":
            log.info("app back: %s sent to %d page(s) (%s)", done.event["type"], done.told, what)
        else:
            log.info("%s sent to %d page(s) (%s)", done.event["type"], done.told, "build failed" if error else what)
        self.status.reloaded(done.event["generation"], done.kind, paths, error, done.told)

    def look_at_watcher(self) -> None:
        """Whether a watcher runs, as it said in the folder (a stat; read when it
        changed). Its exit is an event (platforms.on_exit: a pidfd, or its PID
        looked at every 0.25 s): the pages are told, and again when a watcher is back."""
        said = watcher_ids.stamp(self.folder)
        if said == self.watcher_said and (self.core.watched is None or self.watcher_exit is not None):
            return
        self.watcher_said = said
        found = watcher_ids.read(self.folder)
        self.core.watched = found[0] if found else None
        self.forget_watcher()
        if found:
            self.watcher_exit = platforms.on_exit(found[1], self.watcher_stopped)
        if found and self.stop_told:
            self.stop_told = False
            self.tell_pages()

    def forget_watcher(self) -> None:
        if self.watcher_exit is not None:
            self.watcher_exit()
            self.watcher_exit = None

    def watcher_stopped(self) -> None:
        self.forget_watcher()
        self.core.watched, self.watcher_said, self.stop_told = None, None, True
        log.info("the watcher stopped: pages are told")
        self.tell_pages()

    def goodbye(self) -> None:
        """Stopping: pages that saw a watcher are told none runs now (nothing reloads
        them), before their sockets close: the relay and the proxy pass it on too."""
        if self.core.watched is not None:
            self.forget_watcher()
            self.core.watched = None
            self.tell_pages()

    def tell_pages(self) -> None:
        """The hello again, to every snippet: what changed is whether a watcher runs."""
        send(self.core.snippets(), self.core.hello(now_ms()))

    def status_watch(self, connection: ServerConnection) -> Awaitable[None]:
        """A status page's socket (``page_status.watch``): it may ask for reloads."""
        return page_status.watch(self.status, connection, lambda: self.signal("reload"), lambda: self.core.generation)
