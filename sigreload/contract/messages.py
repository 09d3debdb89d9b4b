"""The message folder: a private folder per broadcaster run, where sigreload's
processes on this machine leave each other files (the channels:
``sigreload.contract`` lists them all; one module each).

A signal carries no data: the watcher leaves what changed in the folder
(``changes``) before it signals, and the other channels are hints that the
processes look at when they need them. Every file is written atomically
(``write``: a temporary file renamed), so a reader never sees half of one.

The broadcaster makes the folder (``Mailbox``): a new one per run, made as
``mkdtemp`` makes one (a name nobody can guess, 0700, never one that already
exists), in ``XDG_RUNTIME_DIR`` when that is this user's, else in the
temporary folder. It holds its MARK file open for its whole run: the others
learn the folder from the broadcaster they found (``folder_of``, psutil), so
a folder or a link that another user made is never used.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARK = "broadcaster.pid"  # the file a broadcaster holds open in its folder (its PID): how the others find it


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


@dataclass(frozen=True)
class Channel:
    """One file in the message folder, and who uses it: its ``name``, its
    ``format``, the process that ``writer`` names writes it, the one ``reader``
    names reads it, and when it is ``removed``. (A channel's module has the
    ``write`` and ``read`` functions that give it its types; these are the
    bytes underneath.)"""

    name: str
    format: str
    writer: str
    reader: str
    removed: str = "with the folder, when the broadcaster stops"

    def put(self, folder: Path, data: bytes) -> None:
        """The file holds ``data``, atomically (``write``); raises OSError."""
        write(folder, self.name, data)

    def get(self, folder: Path | None) -> bytes | None:
        """What the file holds; None without a folder or a readable file."""
        try:
            return (folder / self.name).read_bytes() if folder else None
        except OSError:
            return None

    def stamp(self, folder: Path | None) -> tuple[int, int, int] | None:
        """What changes when the file is written anew (a stat, nothing read), or None."""
        try:
            st = os.stat(folder / self.name) if folder else None
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ino, st.st_size) if st else None

    def remove(self, folder: Path) -> None:
        """No file (already none: nothing); raises OSError."""
        (folder / self.name).unlink(missing_ok=True)
