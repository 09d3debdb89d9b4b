"""The message folder: what changed, left by the watcher for the broadcaster,
and what open pages use, left by the HTTP server and the broadcaster for the watcher.

A signal carries no data. Before it signals, the watcher ``post``s a message
(JSON: the changed paths and the folder's id, or a failed build's output);
when the signal arrives the broadcaster ``collect``s every message left since
its last broadcast. A bare ``kill -USR1`` leaves none: every page reloads.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def runtime_dir(port: int) -> Path:
    """This user's private folder for messages to the broadcaster on ``port``.

    Created 0700; refused (OSError) when another user owns it or can write to
    it: a planted message could only make pages skip a reload, never more.
    """
    temp = os.environ.get("XDG_RUNTIME_DIR") or os.environ.get("TMPDIR") or "/tmp"
    base = Path(temp) / f"sigreload-{os.getuid()}"
    folder = base / str(port)
    for f in (base, folder):
        f.mkdir(mode=0o700, exist_ok=True)
        st = f.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise OSError(f"{f} is not private to this user")
    return folder


def root_id(root: str | os.PathLike[str]) -> str:
    """An id of a served/watched folder: its device and inode (the path is never shown)."""
    st = os.stat(root)
    return f"{st.st_dev:x}-{st.st_ino:x}"


def post(port: int, message: dict[str, Any]) -> None:
    """Leave ``message`` for the broadcaster on ``port``; send the signal after this.

    One file per message, written atomically: two quick changes never lose
    each other's paths. Raises OSError when the folder is not ours.
    """
    folder = runtime_dir(port)
    name = f"{time.time_ns():020d}-{os.getpid()}"
    tmp = folder / f".{name}.tmp"
    tmp.write_text(json.dumps(message))
    os.replace(tmp, folder / f"{name}.json")


def collect(port: int) -> list[dict[str, Any]]:
    """Every message left for the broadcaster on ``port``, oldest first; consumed.

    An unreadable message counts as ``{}`` (reload everything); never raises.
    """
    try:
        files = sorted(runtime_dir(port).glob("*.json"))
    except OSError:
        return []
    messages = []
    for f in files:
        try:
            messages.append(json.loads(f.read_text()))
            f.unlink()
        except (OSError, ValueError):
            messages.append({})
    return messages


WATCHER = "watcher.ids"  # the folders the watcher of this port watches (not *.json: those are messages)


def watching(port: int, root: str, output: str | None = None, also: Iterable[str] = ()) -> list[str]:
    """Say, for the broadcaster on ``port``, which folders this process watches:
    ``root`` (a server of it or of any folder above it serves its pages), the
    build's ``output`` as it is now (a build may make it anew), and ``also``
    (ids said before); as ids. Returns them."""
    folders, parent = [root], os.path.dirname(root)
    while parent not in folders:
        folders.append(parent)
        parent = os.path.dirname(parent)
    ids = list(also)
    try:
        ids = list(dict.fromkeys(ids + [root_id(f) for f in folders + ([output] if output else [])
                                        if os.path.isdir(f)]))
        folder = runtime_dir(port)
        tmp = folder / f".{WATCHER}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"roots": ids, "pid": os.getpid()}))
        os.replace(tmp, folder / WATCHER)
    except OSError:
        pass  # only for a hint in the pages' consoles
    return ids


def watched(port: int) -> list[str] | None:
    """The ids ``watching`` left, while its watcher runs; None when none runs."""
    try:
        said = json.loads((runtime_dir(port) / WATCHER).read_text())
        os.kill(int(said["pid"]), 0)  # still running (ours: the folder is private)
        return [str(i) for i in said["roots"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


USED_MAX = 256  # paths kept per source: what a hostile page can make the watcher look at first


class Used:
    """What open pages use, for the watcher to look at first (LiveServer.jl
    watches what it served). ``source`` names the list: "http" (files our HTTP
    server served, as paths) or "pages" (what the snippets reported, as URL
    paths). Bounded to USED_MAX, newest last; written atomically, and only when
    it changed. Thread-safe."""

    def __init__(self, port: int, source: str) -> None:
        self.port, self.name = port, f"used-{source}.paths"
        self.paths: dict[str, None] = {}
        self.lock = threading.Lock()
        self._write()  # a list an earlier process left on this port (killed) is stale

    def add(self, path: str) -> None:
        """Note one more path (a file just served)."""
        with self.lock:
            if path in self.paths:
                return
            self.paths[path] = None
            self._write()

    def replace(self, paths: Iterable[str]) -> None:
        """The whole list, as it is now."""
        with self.lock:
            new = dict.fromkeys(paths)
            if list(new) != list(self.paths):
                self.paths = new
                self._write()

    def _write(self) -> None:
        self.paths = dict.fromkeys(list(self.paths)[-USED_MAX:])
        try:
            folder = runtime_dir(self.port)
            tmp = folder / f".{self.name}.{threading.get_ident()}.tmp"
            tmp.write_text("\n".join(self.paths))
            os.replace(tmp, folder / self.name)
        except OSError:
            pass  # only an optimisation: the sweep still finds every change


USED_SOURCES = ("http", "pages")


def used_files(port: int) -> list[str]:
    """The files that hold what open pages use, one per source (they may not exist)."""
    try:
        folder = runtime_dir(port)
    except OSError:
        return []
    return [str(folder / f"used-{source}.paths") for source in USED_SOURCES]


def used_stamp(files: list[str]) -> list[Any]:
    """What changes when any of ``files`` (``used_files``) changes: a stat each, nothing read."""
    stamp: list[Any] = []
    for name in files:
        try:
            st = os.stat(name)
            stamp.append((st.st_mtime_ns, st.st_ino, st.st_size))
        except OSError:
            stamp.append(None)
    return stamp


def used(files: list[str]) -> tuple[list[Any], dict[str, list[str]]]:
    """(``used_stamp``, {source: paths}) of what open pages use."""
    stamp, lists = used_stamp(files), {}
    for name, source in zip(files, USED_SOURCES, strict=False):
        try:
            lists[source] = Path(name).read_text().splitlines()[-USED_MAX:]
        except OSError:
            pass
    return stamp, lists
