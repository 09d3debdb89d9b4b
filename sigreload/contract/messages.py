"""The message folder: what changed, left by the watcher for the broadcaster,
and what open pages use, left by the HTTP server and the broadcaster for the watcher.

A signal carries no data. Before it signals, the watcher ``post``s a message
(JSON: the changed paths and the folder's id, or a failed build's output);
when the signal arrives the broadcaster ``collect``s every message left since
its last broadcast. A bare ``kill -USR1`` leaves none: every page reloads.

The broadcaster makes the folder (``Mailbox``): a new one per run, made as
``mkdtemp`` makes one (a name nobody can guess, 0700, never one that already
exists), in ``XDG_RUNTIME_DIR`` when that is this user's, else in the
temporary folder. It holds its MARK file open for its whole run: the others
learn the folder from the broadcaster they found (``folder_of``, psutil), so
a folder or a link that another user made is never used.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

MARK = "broadcaster.pid"  # the file a broadcaster holds open in its folder: how the others find it


def private(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder (not a link) of this user that nobody else may enter."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def base() -> str:
    """Where message folders are made: XDG_RUNTIME_DIR when it is this user's alone, else the temporary folder."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return runtime if runtime and private(runtime) else tempfile.gettempdir()


def runtime_refused() -> str | None:
    """Why XDG_RUNTIME_DIR is not used (another user's folder, a link, open to others), or None."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and not private(runtime):
        return f"XDG_RUNTIME_DIR ({runtime}) is not a folder of this user closed to others: not used"
    return None


class Mailbox:
    """The broadcaster's message folder for this run on ``port``; ``close`` removes it.

    Folders that earlier broadcasters on this port left (killed: their PID
    is gone) are removed first. Raises OSError when none can be made.
    """

    def __init__(self, port: int) -> None:
        prefix, where = f"sigreload-{port}-", base()
        for name in os.listdir(where):
            if name.startswith(prefix) and private(os.path.join(where, name)) and not alive(os.path.join(where, name)):
                shutil.rmtree(os.path.join(where, name), ignore_errors=True)
        self.folder = Path(tempfile.mkdtemp(prefix=prefix, dir=where))
        self.mark = open(self.folder / MARK, "x")  # held open until the process ends
        self.mark.write(str(os.getpid()))
        self.mark.flush()

    def close(self) -> None:
        self.mark.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def alive(folder: str) -> bool:
    """Whether the broadcaster that made ``folder`` still runs."""
    try:
        os.kill(int(Path(folder, MARK).read_text()), 0)
        return True
    except ProcessLookupError:
        return False
    except (OSError, ValueError):
        return True  # not sure: keep it


def folder_of(proc: Any) -> Path | None:
    """The message folder of the broadcaster ``proc`` (a psutil.Process of this
    user): the folder of the MARK it holds open, if that folder is private and
    the MARK names ``proc``. (A broadcaster starting on the same port opens a
    dead one's MARK for a moment, to read it, before it removes that folder:
    its open files may show that MARK first, and its own not yet.)"""
    import psutil

    try:
        files = proc.open_files()
    except (psutil.Error, OSError):
        return None
    for f in files:
        path = Path(f.path)
        if path.name == MARK and private(path.parent) and names(path, proc.pid):
            return path.parent
    return None


def names(mark: Path, pid: int) -> bool:
    """Whether the MARK file ``mark`` holds ``pid`` (False while it is being written)."""
    try:
        return mark.read_text() == str(pid)
    except OSError:
        return False


def root_id(root: str | os.PathLike[str]) -> str:
    """An id of a served/watched folder: its device and inode (the path is never shown)."""
    st = os.stat(root)
    return f"{st.st_dev:x}-{st.st_ino:x}"


def post(folder: Path, message: dict[str, Any]) -> None:
    """Leave ``message`` in the broadcaster's ``folder``; send the signal after this.

    One file per message, written atomically: two quick changes never lose
    each other's paths. Raises OSError (a full disk), leaving nothing behind.
    """
    name = f"{time.time_ns():020d}-{os.getpid()}"
    write(folder, f"{name}.json", json.dumps(message).encode())


def write(folder: Path, name: str, data: bytes) -> None:
    """``folder``/``name`` holds ``data``, atomically (a temporary file renamed);
    raises OSError and removes the temporary file when it cannot."""
    tmp = folder / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, folder / name)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def collect(folder: Path | None) -> list[dict[str, Any]]:
    """Every message left in ``folder``, oldest first; consumed.

    An unreadable message, or one that is not a JSON object, counts as ``{}``
    (reload everything); never raises.
    """
    try:
        files = sorted(folder.glob("*.json")) if folder else []
    except OSError:
        return []
    messages = []
    for f in files:
        try:
            message = json.loads(f.read_text())
            f.unlink()
        except (OSError, ValueError):
            message = {}
        messages.append(message if isinstance(message, dict) else {})  # not an object: reload everything
    return messages


WATCHER = "watcher.ids"  # the folders the watcher of this broadcaster watches (not *.json: those are messages)


def watching(folder: Path | None, root: str, output: str | None = None, also: Iterable[str] = ()) -> list[str]:
    """Say, for the broadcaster whose folder is ``folder``, which folders this
    process watches: ``root`` (a server of it or of any folder above it serves
    its pages), the build's ``output`` as it is now (a build may make it anew),
    and ``also`` (ids said before); as ids. Returns them."""
    folders, parent = [root], os.path.dirname(root)
    while parent not in folders:
        folders.append(parent)
        parent = os.path.dirname(parent)
    ids = list(also)
    try:
        ids = list(dict.fromkeys(ids + [root_id(f) for f in folders + ([output] if output else [])
                                        if os.path.isdir(f)]))
        if folder:
            write(folder, WATCHER, json.dumps({"roots": ids, "pid": os.getpid()}).encode())
    except OSError:
        pass  # only for a hint in the pages' consoles
    return ids


def watcher(folder: Path | None) -> tuple[list[str], int] | None:
    """(the ids ``watching`` left, its watcher's PID) while that watcher runs; else None."""
    try:
        said = json.loads((folder / WATCHER).read_text()) if folder else {}
        pid = int(said["pid"])
        if not running(pid):  # ours: the folder is private
            return None
        return [str(i) for i in said["roots"]], pid
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stamp(path: Path) -> tuple[int, int] | None:
    """What changes when the file at ``path`` is written anew (a stat), or None."""
    try:
        st = os.stat(path)
        return st.st_mtime_ns, st.st_ino
    except OSError:
        return None


def running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


# When the app answered requests lately (the proxy's view), as wall-clock windows (not *.json: those are messages)
ANSWERING = "app-answering.windows"
WINDOWS_KEPT = 64
# Seconds of a window still open that count at once: a view writes its data in well under
# this; a long-poll the app holds open (no answer yet) must not make every later save look like its write
WINDOW_MOST = 1.0
SETTLE = 1.0  # seconds after a change in a window open longer: it ended meanwhile (the app's write) or not (an edit)


class Answering:
    """When the app was computing answers (the proxy's view), left for the
    watcher: a file the app writes meanwhile (its data, uploads, a cache) is
    its output, not an edit. A window runs from when the app has the whole
    request (a half-sent POST opens none) until its answer's headers came (an
    open EventSource's stream is none). The last WINDOWS_KEPT (start, end)
    windows, in time.time() seconds, written when a request ends into the
    folder ``where()`` names, and the requests being answered now (no end
    yet), written when one begins and when it ends. Single-threaded (the
    proxy's event loop)."""

    def __init__(self, where: Callable[[], Path | None]) -> None:
        self.where = where
        self.windows: list[tuple[float, float | None]] = []
        self.open: dict[int, float] = {}  # requests being answered: their start

    def begin(self, request: int, start: float) -> None:
        """A request is being answered (its window is open until ``end``)."""
        self.open[request] = start
        self._write()

    def end(self, request: int, end: float) -> None:
        """The request's answer came (or it ended before it began: nothing)."""
        if request in self.open:
            self.windows = (self.windows + [(self.open.pop(request), end)])[-WINDOWS_KEPT:]
            self._write()

    def _write(self) -> None:
        folder = self.where()
        if folder is not None:
            said = self.windows + [(start, None) for start in self.open.values()]
            try:
                write(folder, ANSWERING, json.dumps(said).encode())
            except OSError:
                pass  # only a hint: the file reloads the pages, as without a proxy


def app_wrote(folder: Path | None, mtime: float, before: float = 0.02, after: float = 0.005) -> bool | None:
    """Whether a file changed at ``mtime`` (time.time() seconds) while the app was
    computing an answer, by what the proxy left in ``folder``: True in a window
    that ended, or in the first WINDOW_MOST seconds of one still open; None
    (not known yet: look again) later in one still open, until SETTLE seconds
    after the change (a slow view ends soon after its write; a long-poll the
    app holds does not: the change is an edit then). A file's mtime comes from
    the kernel's coarse clock, up to a tick (4 or 10 ms) behind time.time(): a
    write just after a request began may show ``before`` it; never after it
    ended (``after``: rounding only), so an edit saved right after a page load
    is still an edit."""
    try:
        windows = json.loads((folder / ANSWERING).read_text()) if folder else []
        inside = [(start, end) for start, end in windows
                  if start - before <= mtime <= (end if end is not None else float("inf")) + after]
    except (OSError, ValueError, TypeError):
        return False
    if any(end is not None or mtime <= start + WINDOW_MOST for start, end in inside):
        return True
    return None if inside and time.time() - mtime < SETTLE else False


# Why the app will not answer until a fix (the watcher's view, for the proxy): no file while it may
APP_DOWN = "app-down.why"


def app_down(folder: Path | None, why: str | None) -> None:
    """Say that the app is down (``why``), or that it may answer again (None)."""
    if folder is None:
        return
    try:
        if why is None:
            (folder / APP_DOWN).unlink(missing_ok=True)
        else:
            write(folder, APP_DOWN, why.encode())
    except OSError:
        pass  # only a hint: the proxy then waits for the app as it would without one


def app_down_since(folder: Path | None) -> float | None:
    """When the watcher said the app is down (time.time() seconds), or None."""
    try:
        return (folder / APP_DOWN).stat().st_mtime if folder else None
    except OSError:
        return None


USED_MAX = 256  # paths kept per source: what a hostile page can make the watcher look at first


class Used:
    """What open pages use, for the watcher to look at first (LiveServer.jl
    watches what it served). ``source`` names the list: "http" (files our HTTP
    server served, as paths) or "pages" (what the snippets reported, as URL
    paths). Bounded to USED_MAX, newest last; written atomically into the
    folder ``where()`` names (None: no broadcaster yet, kept for when there
    is one), only when it changed. Thread-safe."""

    def __init__(self, where: Callable[[], Path | None], source: str) -> None:
        self.where, self.name = where, f"used-{source}.paths"
        self.paths: dict[str, None] = {}
        self.lock = threading.Lock()
        self.written_to: Path | None = None
        self._write()  # a list an earlier process left in this folder (killed) is stale

    def add(self, path: str) -> None:
        """Note one more path (a file just served)."""
        with self.lock:
            if path in self.paths and self.where() == self.written_to:
                return  # nothing new (the folder too: a new broadcaster gets the whole list)
            self.paths[path] = None
            self._write()

    def replace(self, paths: Iterable[str]) -> None:
        """The whole list, as it is now."""
        with self.lock:
            new = dict.fromkeys(paths)
            if list(new) != list(self.paths) or self.written_to is None:
                self.paths = new
                self._write()

    def _write(self) -> None:
        self.paths = dict.fromkeys(list(self.paths)[-USED_MAX:])
        folder = self.where()
        if folder is None:
            return
        lines = [p.encode("utf-8", "surrogateescape") for p in self.paths if "\n" not in p]
        try:
            write(folder, self.name, b"\n".join(lines))
            self.written_to = folder
        except OSError:
            pass  # only an optimisation: the sweep still finds every change


USED_SOURCES = ("http", "pages")


def used_files(folder: Path | None) -> list[str]:
    """The files in ``folder`` that hold what open pages use, one per source (they may not exist)."""
    return [str(folder / f"used-{source}.paths") for source in USED_SOURCES] if folder else []


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
            text = Path(name).read_bytes().decode("utf-8", "surrogateescape")
            lists[source] = [p for p in text.split("\n") if p][-USED_MAX:]
        except OSError:
            pass
    return stamp, lists
