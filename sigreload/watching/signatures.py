"""What a file looks like to the watcher: its stat signature, and a folder's
listing (what is ignored, what is not followed).

A file changed when its signature differs (``!=``): any write, truncate,
rename-into-place or ``cp -p`` shows. Nothing here keeps state but
``WatchedFile``; ``file_tree.Tree`` keeps a whole tree of these.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import stat
import time
from collections.abc import Callable, Collection, Iterable

Signature = tuple[int, int, int, int]  # mtime_ns, size, inode, ctime_ns
Stamp = tuple[int, int, int]  # a folder's: mtime_ns, ctime_ns, inode
Skip = Callable[[str, str], bool]  # skip(name, prefix under ROOT)

DEFAULT_IGNORE = (
    ".git", ".hg", ".svn", ".bzr", "_darcs", "CVS", "node_modules", "__pycache__",
    ".venv", "venv", ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache",
    ".cache", ".sass-cache", ".idea", ".vscode", ".DS_Store", "*.pyc",
    "*.swp", "*.swo", "*.swx", "*.swpx", "*~", ".#*", "#*#", "4913", "*.tmp", ".goutputstream-*",
    "*___jb_tmp___", "*___jb_old___", "*.crdownload", "*.part", ".*.kate-swp",
    # what a running app writes into its own folder: a page load must not reload the page
    "*.log", "*.sqlite3", "*.sqlite3-journal", "*.db-journal", "*-wal", "*-shm",
    "nohup.out",  # `nohup sigreload ... &` (README) writes our own log there: an edit would be a loop
)

# Atomic writers' temporary names, kept apart from DEFAULT_IGNORE because a real
# file may be named so: sed -i (sedXXXXXX), Python's tempfile (tmpXXXXXXXX), Qt's
# QSaveFile and rsync (name.XXXXXX), npm's write-file-atomic (name.<8 hex>). One
# that is gone by the time its burst is told was renamed into place or dropped:
# what matters is the file it became. Six random letters hold a capital or a
# digit (all but 0.5% of them do): a deleted ``sedentary`` or ``app.coffee`` is told.
# sed's other 0.5% (``sedvymnqj``) is its temporary when a file beside it that is
# there changed in the same burst (the one it was renamed onto: the suite saw one).
RANDOM6 = r"(?=[a-z]*[A-Z0-9])[A-Za-z0-9]{6}"
TEMPORARY = re.compile(rf"sed{RANDOM6}|tmp[a-z0-9_]{{8}}(\..*)?|.+\.{RANDOM6}|.+\.[0-9a-f]{{8}}")
SED_LOWER = re.compile(r"sed[a-z]{6}")


def transient(path: str, burst: Collection[str] = ()) -> bool:
    """Whether ``path`` was an atomic writer's temporary: a TEMPORARY name, gone now
    (or an all-lowercase sed one, gone, beside a file of ``burst`` that is there)."""
    name, folder = os.path.basename(path), os.path.dirname(path)
    if TEMPORARY.fullmatch(name) is None and not (SED_LOWER.fullmatch(name) and any(
            p != path and os.path.dirname(p) == folder and os.path.lexists(p) for p in burst)):
        return False
    return not os.path.lexists(path)


def own_output(path: str) -> bool:
    """Whether ``path`` is the file this process's stdout or stderr writes to
    (``sigreload > out.txt`` in ROOT): a change of it is our own log, never an
    edit (telling it would be logged, a change again: a loop). Judged by device
    and inode (fstat, portable), whatever name or link reaches it."""
    mine = outputs()
    if not mine:
        return False
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) in mine


@functools.cache
def outputs() -> frozenset[tuple[int, int]]:
    """The (device, inode) of the regular files fd 1 and 2 write to, looked at once (our fds stay)."""
    found = set()
    for fd in (1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found.add((st.st_dev, st.st_ino))
    return frozenset(found)


def signature(st: os.stat_result) -> Signature:
    """What we compare: any write, truncate, rename-into-place or cp -p shows."""
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


def signature_of(path: str) -> Signature | None:
    """The signature of the file at ``path``, None when it cannot be stat()ed."""
    try:
        return signature(os.stat(path))
    except OSError:
        return None


def stamp(st: os.stat_result) -> Stamp:
    """A folder's own signature: it changes when an entry is added, removed or renamed."""
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def matcher(patterns: Iterable[str]) -> Skip:
    """skip(name, prefix) for globs, ``prefix`` being the folder's path under ROOT
    ("" or "sub/"): a glob with "/" at its start or in its middle matches prefix +
    name, any other the name (``d1/``, as in .gitignore: a folder at any depth).
    Runs per entry per pass: compiled once, and with name globs only, each
    name's verdict is remembered."""
    def compiled(globs: list[str]) -> Callable[[str], re.Match[str] | None]:
        return re.compile("|".join(fnmatch.translate(g) for g in globs) or "(?!)").match

    patterns = list(patterns)
    by_name = compiled([p.rstrip("/") for p in patterns if "/" not in p.rstrip("/")])
    paths = [p.strip("/") for p in patterns if "/" in p.rstrip("/")]
    if paths:
        by_path = compiled(paths)
        return lambda name, prefix: by_name(name) is not None or by_path(prefix + name) is not None
    verdicts: dict[str, bool] = {}

    def skip(name: str, prefix: str) -> bool:
        verdict = verdicts.get(name)
        if verdict is None:
            verdict = verdicts[name] = by_name(name) is not None
        return verdict

    return skip


def inside(path: str, real_root: str) -> bool:
    """Whether ``path`` resolves (symlinks followed) to ``real_root`` or below it."""
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def listing_key(names: Iterable[str]) -> int:
    """What a folder's entry names come to: it differs when one is added, removed or renamed."""
    return hash(frozenset(names))


def scan_dir(folder: str, root: str, skip: Skip,
             real_root: str | None = None) -> tuple[dict[str, Signature], list[str], int]:
    """({path: signature} of the regular files in ``folder``, [subfolders], the
    ``listing_key`` of all its entries).

    Raises OSError when the folder cannot be listed; skips entries that
    vanish mid-scan, FIFOs, sockets, dangling links, and links that lead out
    of ``real_root`` (ROOT, resolved: the HTTP server never serves through
    them either); never enters a virtualenv (a pyvenv.cfg).
    """
    with os.scandir(folder) as it:
        entries = list(it)
    key = listing_key(e.name for e in entries)
    if folder != root and any(e.name == "pyvenv.cfg" for e in entries):
        return {}, [], key
    prefix = "" if folder == root else os.path.relpath(folder, root).replace(os.sep, "/") + "/"
    files: dict[str, Signature] = {}
    folders: list[str] = []
    isreg, isdir = stat.S_ISREG, stat.S_ISDIR
    for entry in entries:
        if skip(entry.name, prefix) or (real_root and entry.is_symlink() and not inside(entry.path, real_root)):
            continue
        try:
            st = entry.stat()  # follows links; one call tells folder from file
        except OSError:
            continue
        if isreg(st.st_mode):  # signature(), inlined: this is the hot loop
            files[entry.path] = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)
        elif isdir(st.st_mode):
            folders.append(entry.path)
    return files, folders, key


class WatchedFile:
    """One file and its last seen signature (LiveServer.jl's WatchedFile)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.signature = signature_of(path)

    def has_changed(self) -> int:
        """-1 when it went since the last look, 0 when the same (still gone
        too), 1 when changed or back; remembers what it saw."""
        now = signature_of(self.path)
        changed, self.signature = now != self.signature, now
        return -1 if changed and now is None else int(changed)


def written_ago(path: str) -> float:
    """Seconds since ``path`` was last modified (its mtime); 0 when it cannot be stat()ed."""
    try:
        return time.time() - os.stat(path).st_mtime
    except OSError:
        return 0.0


def has_entries(folder: str) -> bool:
    """Whether ``folder`` exists and lists anything (a build may have emptied it)."""
    try:
        with os.scandir(folder) as it:
            return next(it, None) is not None
    except OSError:
        return False
