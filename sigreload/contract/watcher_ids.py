"""The watcher's presence: which folders the watcher watches, for the broadcaster.

The broadcaster tells each page whether a watcher runs for it (a page
served from a folder nobody watches says so in its console), and when the
watcher stops. The ids are of folders, never their paths (``root_id``): the
pages see them, as the file server's ROOT_HEADER.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from sigreload.contract import messages

CHANNEL = messages.Channel(
    "watcher.ids",
    format='JSON: {"roots": [the watched folders\' ids, root_id], "pid": the watcher\'s PID}',
    writer="the watcher, at start, after each build (its output may be made anew), and for a new broadcaster",
    reader="the broadcaster, when its stat changes (and it watches that PID's exit)",
    removed="with the folder; a watcher that stopped leaves it, and its PID no longer runs",
)


def root_id(root: str | os.PathLike[str]) -> str:
    """An id of a served/watched folder: its device and inode (the path is never shown)."""
    st = os.stat(root)
    return f"{st.st_dev:x}-{st.st_ino:x}"


def watched(root: str, output: str | None = None, also: Iterable[str] = ()) -> list[str]:
    """The ids of the folders a watcher of ``root`` covers: ``root`` and every
    folder above it (a server of any of them serves its pages), the build's
    ``output`` as it is now (a build may make it anew), and ``also`` (ids said
    before). Folders that are gone are left out; never raises."""
    folders, parent = [root], os.path.dirname(root)
    while parent not in folders:
        folders.append(parent)
        parent = os.path.dirname(parent)
    ids = list(also)
    for f in folders + ([output] if output else []):
        try:
            ids += [root_id(f)] if os.path.isdir(f) else []
        except OSError:
            pass  # gone meanwhile
    return list(dict.fromkeys(ids))


def write(folder: Path | None, ids: list[str]) -> None:
    """Say that this process watches the folders ``ids`` (``watched``); never
    raises (only for a hint in the pages' consoles)."""
    if folder:
        try:
            CHANNEL.put(folder, json.dumps({"roots": ids, "pid": os.getpid()}).encode())
        except OSError:
            pass


def read(folder: Path | None) -> tuple[list[str], int] | None:
    """(the ids a watcher said, its PID) while that watcher runs; else None."""
    try:
        said = json.loads(CHANNEL.get(folder) or b"{}")
        pid = int(said["pid"])
        if not running(pid):  # ours: the folder is private
            return None
        return [str(i) for i in said["roots"]], pid
    except (ValueError, KeyError, TypeError):
        return None


def stamp(folder: Path | None) -> tuple[int, int, int] | None:
    """What changes when a watcher writes anew (a stat, nothing read)."""
    return CHANNEL.stamp(folder)


def running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False
