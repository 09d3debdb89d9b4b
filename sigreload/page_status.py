"""What the status page (``/_sigreload/``) shows, held by the broadcaster:
every connected page (its URL, title, browser, address, since when, when it
last had the focus), the last RELOADS reloads (what changed, why, how long
until each page had the new one), the last ERRORS errors of each page.

A pure core: connections are opaque keys, the clock is a parameter, and
what is said to the status pages goes through ``send`` (the broadcaster's
non-blocking broadcast). Nothing a page says is trusted beyond its shape:
every text is cut short, and the page that shows it escapes it.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from sigreload import consoles, secret
from sigreload.contract import wire

RELOADS = 20  # reloads kept
ERRORS = 5  # errors kept per page
RELOADS_PER_SECOND = 3  # reloads the status pages may ask for, in all
TOOK_MOST = 60.0  # seconds after a reload in which a page coming back counts as having had it
PUSH_GAP = 0.1  # seconds between two states sent to the status pages (changes within merge)
DEVICES = (("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"), ("CrOS", "ChromeOS"),
           ("Windows", "Windows"), ("Macintosh", "Mac"), ("Linux", "Linux"))


def device(agent: str) -> str:
    """The kind of device a User-Agent names ("iPhone", "Android", "Mac"...), or ""."""
    return next((name for token, name in DEVICES if token in agent), "")


@dataclass
class Page:
    """One connected page, as the status page lists it."""

    id: int
    agent: str
    address: str
    since: float
    url: str = ""
    title: str = ""
    focused: float = 0.0  # when it last had the focus (time.time()); 0: never seen
    origin: str = ""  # the Origin its socket came with
    relayed: bool = False  # its socket came through sigreload's own relay (secret.relay_proven)
    errors: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=ERRORS))

    def shown(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "title": self.title, "browser": consoles.browser(self.agent),
                "device": device(self.agent),
                "agent": self.agent, "address": self.address, "since": self.since, "focused": self.focused,
                "errors": list(self.errors)}


def page_paths(url: str) -> list[str]:
    """The file paths a page's URL may be served from ("/a/": "/a/", "/a/index.html"), as the snippet maps them."""
    path = unquote(urlsplit(url).path) or "/"
    if path.endswith("/"):
        return [path, path + "index.html", path + "index.htm"]
    return [path] if "." in path.rsplit("/", 1)[-1] else [path, path + ".html", path + "/index.html"]


def followable(path: str) -> bool:
    """Whether --follow may send a tab to ``path``: a plain absolute URL path (one
    leading "/", no "\\", no control character). A browser resolves "/\\host\\x",
    "//host/x" or "/\t/host/x" against the page's origin to ANOTHER host."""
    return path.startswith("/") and not path.startswith("//") and "\\" not in path and path.isprintable()


def origin_of(url: str) -> str:
    """The origin of ``url`` ("http://127.0.0.1:8000"), as a browser's Origin header writes it."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


def text(value: Any, most: int) -> str | None:
    """``value`` when it is a string, cut to ``most`` characters; else None."""
    return value[:most] if isinstance(value, str) else None


class Status:
    """The pages and the reloads; ``send(watchers, text)`` tells the status pages, at
    most every PUSH_GAP when ``later(delay, f)`` is given (the loop's call_later)."""

    def __init__(self, send: Callable[[Iterable[Any], str], None], clock: Callable[[], float] = time.time, *,
                 later: Callable[[float, Callable[[], None]], Any] | None = None,
                 reload_one: Callable[[Any], None] = lambda connection: None) -> None:
        self.send, self.clock = send, clock
        self.pages: dict[Any, Page] = {}
        self.reloads: deque[dict[str, Any]] = deque(maxlen=RELOADS)
        self.watchers: set[Any] = set()
        self.next_id = 0
        self.why: str | None = None  # the cause of the next reload, when not a save or a signal
        self.reload_one = reload_one  # reloads one page (the broadcaster's)
        self.later = later
        self.due = False  # a state is to be sent (later)
        self.asked: deque[float] = deque(maxlen=RELOADS_PER_SECOND)  # when the status pages last asked to reload

    def joined(self, connection: Any, identified: bool) -> None:
        """A page connected (not ``identified``: a plain snippet, which says nothing; its origin is shown)."""
        headers = connection.request.headers if connection.request is not None else {}
        self.next_id += 1
        page = self.pages[connection] = Page(self.next_id, headers.get("User-Agent", "")[:300], address(connection),
                                             self.clock(), origin=(headers.get("Origin") or "")[:2000],
                                             relayed=relayed(connection))
        if not identified:
            page.url, page.title = (headers.get("Origin") or "")[:2000], "(a plain snippet: any message reloads it)"
        self.changed()

    def left(self, connection: Any) -> None:
        if self.pages.pop(connection, None) is not None:
            self.changed()

    def said(self, connection: Any, message: dict[str, Any]) -> None:
        """A page's ``page`` (its URL, title, and whether sigreload reloaded
        it), ``focus`` or ``console`` message."""
        page = self.pages.get(connection)
        if page is None:
            return
        kind, now = message.get("type"), self.clock()
        if kind == "page":
            page.url = text(message.get("url"), 2000) or page.url
            page.title = text(message.get("title"), 300) or ""
            if message.get("focused") is True:
                page.focused = now
            generation = message.get("generation")
            if message.get("reloaded") is True and type(generation) is int:
                self.had(page, generation, now)
        elif kind == "focus":
            page.focused = now
        elif kind == "console" and isinstance(message.get("text"), str):
            page.errors.append({"at": now, "kind": text(message.get("kind"), 40) or "error",
                                "text": message["text"][:1000]})
        self.changed()

    def had(self, page: Page, generation: int, now: float) -> None:
        for reload in self.reloads:
            if reload["generation"] == generation and now - reload["at"] < TOOK_MOST:
                reload["took"].append({"page": page.id, "url": page.url, "ms": round((now - reload["at"]) * 1000)})
                return  # the latest with this generation (a status page's reload of one page keeps it)

    def reloaded(self, generation: int, kind: str, paths: list[str] | None, error: bool, told: int) -> None:
        """A broadcast: ``kind`` (reload, css) of ``paths`` (None: everything) to ``told`` pages."""
        why, self.why = self.why or ("build failed" if error else "saved" if paths else "signal"), None
        self.reloads.appendleft({"generation": generation, "at": self.clock(), "kind": "error" if error else kind,
                                 "what": paths[:20] if paths else [], "why": why, "pages": told, "took": []})
        self.changed()

    def focused_most_recently(self, among: Iterable[Any]) -> Any | None:
        """Of the connections ``among``, the one whose page had the focus last (None: none ever had it)."""
        seen = [(self.pages[c].focused, c) for c in among if c in self.pages and self.pages[c].focused]
        return max(seen, key=lambda x: x[0])[1] if seen else None

    def to_follow(self, connections: Iterable[Any], paths: list[str],
                  used: Iterable[str] = ()) -> tuple[Any, str] | None:
        """--follow: (the connection whose page had the focus last, else the newest, and the page to
        open there) for the first saved page (.html, .htm) that no page of ``connections`` shows
        nor ``used`` (a fragment a page fetched is reloaded there, never opened alone); None."""
        among = [c for c in connections if c in self.pages and self.may_follow(self.pages[c])]
        shown = {p for c in among for p in page_paths(self.pages[c].url)} | set(used)
        saved = next((p for p in paths if p.endswith((".html", ".htm")) and followable(p) and p not in shown), None)
        if saved is None or not among:
            return None
        chosen = self.focused_most_recently(among) or max(among, key=lambda c: self.pages[c].since)
        return chosen, saved

    @staticmethod
    def may_follow(page: Page) -> bool:
        """Whether a tab is sent where --follow goes: it came through sigreload's relay,
        or its socket's Origin is the origin of the URL it says it shows (a page of
        another loopback port cannot claim the focus for itself)."""
        return page.relayed or (bool(page.origin) and page.origin.lower() == origin_of(page.url))

    def may_reload(self) -> bool:
        """Whether a status page's reload is done now: at most RELOADS_PER_SECOND a second, in all."""
        now = self.clock()
        if len(self.asked) == self.asked.maxlen and now - self.asked[0] < 1.0:
            return False
        self.asked.append(now)
        return True

    def one(self, connection: Any, generation: int) -> None:
        """Reload the page of ``connection`` alone (a status page's button)."""
        self.reload_one(connection)
        self.reloaded(generation, "reload", None, False, 1)

    def find(self, page_id: Any) -> Any | None:
        """The connection of the page with ``page_id``."""
        return next((c for c, p in self.pages.items() if p.id == page_id), None)

    def snapshot(self) -> str:
        state: wire.Status = {"type": "status", "now": self.clock(), "pages": [p.shown() for p in self.pages.values()],
                              "reloads": list(self.reloads)}
        return json.dumps(state)

    def changed(self) -> None:
        if not self.watchers or self.due:
            return
        if self.later is None:
            return self.push()
        self.due = True
        self.later(PUSH_GAP, self.push)

    def push(self) -> None:
        self.due = False
        if self.watchers:
            self.send(self.watchers, self.snapshot())


PATH = wire.STATUS_SOCKET_PATH  # the status page's socket on the broadcaster
PEER = wire.PEER_HEADER  # the page's address, as a relay on this machine (file server, proxy) saw it


def is_status(connection: Any) -> bool:
    """Whether a client is a status page (it connected to PATH)."""
    return connection.request is not None and connection.request.path.startswith(PATH)


def relayed(connection: Any) -> bool:
    """Whether a client came through sigreload's own relay (it proved it for this port)."""
    here = connection.local_address
    return connection.request is not None and bool(here) and secret.relay_proven(connection.request.headers, here[1])


def address(connection: Any) -> str:
    """Where a page is: the TCP peer, or, for a page relayed from this machine, the address the relay saw."""
    remote = connection.remote_address
    host = str(remote[0]) if remote else "?"
    headers = connection.request.headers if connection.request is not None else None
    told = headers.get(PEER) if headers is not None else None
    if isinstance(told, str) and told and relayed(connection):
        return told[:100]
    return host


async def watch(status: Status, connection: Any, reload_all: Callable[[], None],
                generation: Callable[[], int]) -> None:
    """A status page's socket: the snapshot now and after every change; its
    buttons' messages, ``{"type": "reload"}`` (every page, like kill -USR1)
    or with ``"page": ID`` (that page alone)."""
    from websockets.exceptions import ConnectionClosed

    status.watchers.add(connection)
    try:
        await connection.send(status.snapshot())
        async for frame in connection:
            try:
                message = json.loads(frame)
            except ValueError:
                continue
            if not isinstance(message, dict) or message.get("type") != "reload" or not status.may_reload():
                continue
            if "page" not in message:
                status.why = "status page: reload all"
                reload_all()
            elif (one := status.find(message["page"])) is not None:
                status.why = "status page: reload this one"
                status.one(one, generation())
    except ConnectionClosed:
        pass
    finally:
        status.watchers.discard(connection)
