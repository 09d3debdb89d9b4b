"""The wire: what crosses between sigreload's processes and the pages.

Every Python side imports its names from here; the snippet keeps its copies
in one table at the top of ``snippet/reload.js``.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

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
