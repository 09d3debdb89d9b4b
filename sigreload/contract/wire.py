"""The wire: every name that crosses a process or the network, in one place.

URL paths, query flags, cookie and header names, and the page markup the
snippet looks for. Every Python side imports them from here; the snippet
(``snippet/reload.js``) keeps its copies in one table at its top,
``const WIRE = {...}``, whose keys are these names and whose values are
these strings: ``tests/test_wire.py`` fails when the two disagree. A name
changed here is changed in that table too, in the same commit.

The message folder (what crosses between sigreload's own processes on this
machine) is described in ``sigreload.contract`` and its channel modules.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

# The broadcaster's own port (where a pasted snippet comes from)
SOCKET_PATH = "/sigreload"  # the snippet's WebSocket: a client that connects here is a sigreload page
STATUS_SOCKET_PATH = "/sigreload/status"  # the status page's WebSocket (every page's URL, errors; relays only)
SNIPPET_PATH = "/reload.js"  # the snippet, for a page that pastes a script tag
IDIOMORPH_PATH = "/idiomorph.js"  # the morphing library the snippet loads when it morphs (--morph)
MORPH_PATH = "/morph.js"  # the snippet's own morphing part, loaded only when the hello says --morph
OVERLAY_PATH = "/overlay.js"  # the error overlay the snippet loads when a build fails
STATUS_PAGE_PATH = "/status"  # the status page (which pages are open, their errors)

# The LiveReload port (--livereload): the browser extensions' and livereload.js's protocol
LIVERELOAD_SOCKET_PATH = "/livereload"  # LiveReload's WebSocket
LIVERELOAD_CLIENT_PATH = "/livereload.js"  # the LiveReload client that sites' templates include

# The page's own origin (sigreload's file server and proxy): everything under PREFIX is sigreload's
PREFIX = "/_sigreload/"  # never forwarded to the app nor looked up in the served folder
OWN_SNIPPET_PATH = PREFIX + "reload.js"  # the snippet the servers insert into pages
OWN_IDIOMORPH_PATH = PREFIX + "idiomorph.js"  # IDIOMORPH_PATH, on the page's origin
OWN_MORPH_PATH = PREFIX + "morph.js"  # MORPH_PATH, on the page's origin
OWN_OVERLAY_PATH = PREFIX + "overlay.js"  # OVERLAY_PATH, on the page's origin
OWN_SOCKET_PATH = PREFIX + "socket"  # the broadcaster's SOCKET_PATH, relayed for a page of this origin
OWN_STATUS_PAGE_PATH = PREFIX  # the status page, on the page's origin
OWN_TOKEN_PATH = PREFIX + "token"  # GET: a one-time token that lets a page open a file in the editor
OWN_OPEN_PATH = PREFIX + "open"  # POST (JSON: token, file, line): open a file in the editor
OWN_APP_PATH = PREFIX + "app"  # the proxy's down page asks here whether the app answers again ({"up": bool})

# Query flags
STATUS_QUERY = "status"  # OWN_SOCKET_PATH?status is relayed to STATUS_SOCKET_PATH
FRESH_QUERY = "sigreload"  # ?sigreload=<ms>: the snippet's cache-buster on a stylesheet or image it refreshes

# Cookies (set by the snippet, read by the proxy)
EDIT_COOKIE = "sigreload-edit"  # "1": this reload follows an edit that restarts nothing (templates): ask again

# HTTP headers (case-insensitive on the wire; spelled as sigreload sends them)
RELAY_HEADER = "X-Sigreload-Relay"  # sigreload's own relays (file server, proxy) prove themselves to the broadcaster
PEER_HEADER = "X-Sigreload-Peer"  # the page's address, as a relay on this machine saw it (for the status page)
ROOT_HEADER = "X-Sigreload-Root"  # the file server's folder id: the snippet maps changed files to its URLs
DOWN_HEADER = "X-Sigreload-Down"  # "1": the proxy's answer is its own down page, not the app's
SERVER_NAME = "sigreload"  # the file server's Server header
TIMING_NAME = "sigreload"  # the file server's Server-Timing metric (desc: the folder id)

# Page markup
DOWN_META = "sigreload-down"  # <meta name=...> in the proxy's down page: the snippet asks OWN_APP_PATH
KEEP_ATTRIBUTE = "data-sigreload-keep"  # ="off" on an element (or <html>): its state is not kept over a reload
APP_ATTRIBUTE = "data-sigreload-app"  # on the tag an app's middleware inserts: its page waits for it
POSTED_ATTRIBUTE = "data-sigreload-posted"  # on the tag in an answer to a non-GET/HEAD request: reloaded by a GET
MORPH_ATTRIBUTE = "data-sigreload-morph"  # ="off" on <html>: the page reloads instead of morphing

# Event types (the "type" of what the broadcaster sends, and of what a page sends it)
HELLO, RELOAD, CSS, ERROR, FOLLOW, PROOF = "hello", "reload", "css", "error", "follow", "proof"
CHALLENGE, USING, PAGE, FOCUS, CONSOLE = "challenge", "using", "page", "focus", "console"

# Events
#
# What the broadcaster sends a sigreload snippet (on ``/sigreload``): one JSON
# object a frame, each with its ``type``. ``boot`` names the broadcaster's run
# and ``generation`` counts its broadcasts: after a reconnect a page compares
# them with what it last saw to tell whether it missed something. A pasted
# original snippet (on ``/``) gets the bare text ``reload`` instead, and
# nothing else.

ChangeKind = Literal["reload", "css"]  # reload the page; refresh its stylesheets


class Recalled(TypedDict):
    """A broadcast a hello recalls: a page that was away replays those that concern it."""

    type: str  # "reload", "css" or "error"
    generation: int
    at: int  # the broadcaster's wall clock, in ms
    paths: list[str] | None  # None: every file (or too many to list)
    root: str | None  # the id of the folder ``paths`` are in


class _Hello(TypedDict):
    type: Literal["hello"]
    boot: str
    generation: int
    root: list[str] | None  # ids of the folders a watcher watches (None: none runs)
    console: bool  # the page's console errors reach the terminal
    morph: bool  # --morph: HTML edits are applied in place
    overlay: bool  # runtime errors are shown on the page
    follow: bool  # --follow: a saved page opens in the tab focused last
    now: int  # the broadcaster's wall clock, in ms
    recent: list[Recalled]


class Hello(_Hello, total=False):
    """The first message to a snippet, and again when whether a watcher runs changes."""

    error: str  # the last failed build's output, until a good build
    notice: str  # what the last good build still reported


class _Change(TypedDict):
    type: ChangeKind
    boot: str
    generation: int


class Change(_Change, total=False):
    """Files changed (``paths`` under ``root``; neither: every file): reload, or refresh stylesheets."""

    paths: list[str]
    root: str
    notice: str


class BuildError(TypedDict):
    """A build failed: its output, drawn on the page (nothing reloads)."""

    type: Literal["error"]
    boot: str
    generation: int
    text: str


class Follow(TypedDict):
    """--follow: this tab opens ``path`` (a page that was saved and that no tab shows)."""

    type: Literal["follow"]
    path: str
    boot: str
    generation: int


class Proof(TypedDict):
    """The answer to a tab's challenge: this is the sigreload it knew (``secret.proof``)."""

    type: Literal["proof"]
    proof: str


class Status(TypedDict):
    """To the status page (``/_sigreload/``): every connected page and the last reloads (``page_status``)."""

    type: Literal["status"]
    now: float  # the broadcaster's wall clock, in s
    pages: list[dict[str, Any]]
    reloads: list[dict[str, Any]]


Event = Hello | Change | BuildError | Follow | Proof | Status
