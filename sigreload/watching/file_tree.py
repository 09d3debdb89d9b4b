"""The watched tree: a Tree keeps the signature of every file under a root,
folder by folder, and rescans it whole, by folder, or a slice at a time.

Nothing here starts a thread or sends a signal: ``pacing`` says when,
``file_watching`` makes these calls, ``watcher`` acts on what they find.
"""

from __future__ import annotations

import heapq
import logging
import os
import stat
import sys
import time
from collections.abc import Iterable

from sigreload.watching.signatures import (
    DEFAULT_IGNORE,
    Signature,
    Stamp,
    inside,
    listing_key,
    matcher,
    scan_dir,
    signature,
    stamp,
)

Files = dict[str, Signature]  # {path: signature}
Listed = tuple[list[bytes], list[Signature]]  # a folder's file names, encoded, and their signatures

RACY = 2.0  # a folder changed this recently (s) may change again within its clock tick
FOLDER_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)  # quick(): stat files by name in it
ENCODING = sys.getfilesystemencoding()
LIST_EVERY = 8  # a folder with an unchanged stamp still has its names listed once in this many passes

log = logging.getLogger("sigreload.watch")


def snapshot(root: str, patterns: Iterable[str] = DEFAULT_IGNORE) -> Files:
    """{path: signature} of every regular file under ``root`` (one full pass)."""
    return Tree(root, patterns).snapshot()


def changes(old: Files, new: Files) -> list[str]:
    """Sorted paths created, modified or deleted between two {path: signature}."""
    return sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))


def young(st: os.stat_result) -> bool:
    """Whether a folder's stamp is too recent to be trusted: a coarse clock may not move it."""
    return time.time() - st.st_mtime <= RACY


class Tree:
    """Per-folder state of one watched root: rescanned whole, by folder, or in slices.

    Never raises for the file system: an unreadable folder is reported once
    (and its files kept as they were), symlink loops are entered once.
    """

    def __init__(self, root: str, patterns: Iterable[str] = DEFAULT_IGNORE) -> None:
        self.root, self.skip = root, matcher(patterns)
        self.real_root = os.path.realpath(root)
        self.files: dict[str, Files] = {}  # folder -> its files
        self.subdirs: dict[str, set[str]] = {}
        self.ids: dict[tuple[int, int], str] = {}  # (device, inode) -> folder: symlink loops entered once
        self.stamps: dict[str, tuple[Stamp, int, int]] = {}  # folder -> (stamp, passes left, listing key)
        self.listed: dict[str, Listed] = {}  # folder -> (its files' names, their signatures): quick()'s own copy
        self.warned: set[str] = set()
        self.queue: list[str] = []
        self.gone = False
        self.began, self.done, self.size, self.cpu, self.cycle_cpu = time.monotonic(), 0, 0, 0.0, 0.0
        started = time.thread_time()
        self.rescan(root)
        self.cost = time.thread_time() - started  # CPU per full sweep (smoothed)
        self.sweeps = 0

    def snapshot(self) -> Files:
        return {p: s for files in self.files.values() for p, s in files.items()}

    def rescan(self, folder: str) -> list[str]:
        """Rescan one folder (and any new subfolder, however deep): the changed paths."""
        found: list[str] = []
        todo = [folder]
        while todo:
            found += self._rescan_one(todo.pop(), todo)
        return found

    def _rescan_one(self, folder: str, todo: list[str]) -> list[str]:
        try:
            st = os.stat(folder)  # before the listing: a change during it shows next time
            if folder not in self.files:  # new: is it a folder we already watch (a symlink loop)?
                where = (st.st_dev, st.st_ino)
                if self.ids.setdefault(where, folder) != folder and self.ids[where] in self.files:
                    raise FileExistsError
            files, subdirs, key = scan_dir(folder, self.root, self.skip, self.real_root)
        except FileNotFoundError:
            return self.drop(folder) if folder != self.root else []
        except OSError as exc:
            if folder not in self.warned and not isinstance(exc, FileExistsError):
                self.warned.add(folder)
                log.warning("cannot read %r (%s): not watched", folder, exc.strerror)
            return []
        old = self.files.get(folder, {})
        found = [] if old == files else changes(old, files)  # the common case, in C
        self.files[folder] = files
        self.listed.pop(folder, None)
        # (stamp, passes left before its names are listed again, their key). A stamp as
        # young as a coarse clock's tick (1-2 s on ext3, HFS+, FAT) may hide a later change
        # in the same tick: such a folder has its names listed at every pass ("racy git").
        # Others are staggered, so that a checkout's folders are not all listed at once.
        left = 0 if young(st) else LIST_EVERY if folder in self.stamps else hash(folder) % LIST_EVERY + 1
        self.stamps[folder] = (stamp(st), left, key)
        known = self.subdirs.get(folder, set())
        if len(known) != len(subdirs) or not known.issuperset(subdirs):
            for gone in known - set(subdirs):
                found += self.drop(gone)
            self.subdirs[folder] = set(subdirs)
        todo += [sub for sub in subdirs if sub not in self.files]
        return found

    def known(self, path: str) -> Signature | None:
        """The signature last seen for ``path`` (None: not a file we know)."""
        return self.files.get(os.path.dirname(path), {}).get(path)

    def drop(self, folder: str) -> list[str]:
        """Forget a vanished folder: its files (and its subfolders') are deleted."""
        found: list[str] = []
        todo = [folder]
        while todo:
            gone = todo.pop()
            found += sorted(self.files.pop(gone, {}))
            self.stamps.pop(gone, None)
            self.listed.pop(gone, None)
            todo += self.subdirs.pop(gone, ())
        return found

    def sweep(self, upto: float = 1.0) -> list[str]:
        """Rescan folders until ``upto`` (0 to 1) of the current full sweep is done;
        the next one begins when it ends. Returns the changed paths; keeps the CPU
        spent in ``cpu`` and a full sweep's (smoothed) in ``cost``."""
        started, found = time.thread_time(), list[str]()
        if not self.queue:
            self.queue = sorted(self.files, reverse=True)
            self.size = len(self.files) + sum(map(len, self.files.values()))  # a folder costs itself too
            self.done, self.cycle_cpu = 0, self.cpu
        while self.queue and self.done < upto * self.size:
            folder = self.queue.pop()
            if folder in self.files:
                self.done += 1 + len(self.files[folder])
                found += self.quick(folder)
        self.cpu += time.thread_time() - started
        if not self.queue:
            # The mean of the sweeps so far, then of about the last 8: a steady period.
            # (The first listing's cost, allocations included, is no guide.)
            self.sweeps += 1
            self.cost += (self.cpu - self.cycle_cpu - self.cost) / min(self.sweeps, 8)
            self.began = time.monotonic()
        return found

    def quick(self, folder: str, files: bool = True) -> list[str]:
        """Rescan a folder, cheaply when its stamp says its entries are the same:
        then only its known files are stat()ed (``_stat_files``). Its names are
        listed too (no stat, no globs) at every pass while its stamp is young,
        and once in LIST_EVERY passes after: some network and FUSE file systems
        keep a folder's stamp when an entry is added. ``files=False``: only
        whether its entries changed (a notification names the folder of every
        file written; the files have their own)."""
        known = self.stamps.get(folder)
        if known:
            try:
                fd = os.open(folder, FOLDER_FLAGS)
            except OSError:  # vanished or unreadable: the listing tells
                return self.rescan(folder)
            try:
                here = os.stat(fd)
                listing = not known[1] if files else young(here)  # (a young stamp has no passes left)
                if known[0] == stamp(here) and (not listing or listing_key(os.listdir(fd)) == known[2]):
                    if not files:
                        return []
                    found = self._stat_files(folder, fd)
                    if found is not None:
                        left = known[1] - 1 if known[1] else 0 if young(here) else LIST_EVERY
                        self.stamps[folder] = (known[0], left, known[2])
                        return found
            except OSError:
                pass
            finally:
                os.close(fd)
        return self.rescan(folder)

    def _stat_files(self, folder: str, fd: int) -> list[str] | None:
        """The changed files of a folder whose entries are the same, each stat()ed by
        name in the open folder ``fd`` (no walk of the whole path, no new string:
        the names are kept encoded beside their signatures); None: list it."""
        names, sigs = self.listed.get(folder) or self._list(folder)
        stat = os.stat
        for name, sig in zip(names, sigs, strict=True):
            st = stat(name, dir_fd=fd)
            if (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns) != sig:  # signature(), inlined
                return self._restat(folder, fd, names, sigs)
        return []

    def _restat(self, folder: str, fd: int, names: list[bytes], sigs: list[Signature]) -> list[str] | None:
        """A file changed in a folder whose entries are the same (a write in place,
        most likely): the changed paths, their signatures renewed. None when a
        file was replaced or is no longer a regular one: the folder is listed."""
        files, found, renewed = self.files[folder], list[str](), list[Signature]()
        for name, sig in zip(names, sigs, strict=True):
            st = os.stat(name, dir_fd=fd)
            new = signature(st)
            if new != sig:
                if st.st_ino != sig[2] or not stat.S_ISREG(st.st_mode):
                    return None
                path = os.path.join(folder, os.fsdecode(name))
                files[path] = new
                found.append(path)
            renewed.append(new)
        self.listed[folder] = (names, renewed)
        return sorted(found)

    def _list(self, folder: str) -> Listed:
        files, cut = self.files[folder], len(os.path.join(folder, ""))
        names = [p[cut:].encode(ENCODING, "surrogateescape") for p in files]  # os.fsencode, inlined
        listed: Listed = (names, list(files.values()))
        self.listed[folder] = listed
        return listed

    def check(self, path: str) -> list[str]:
        """Re-stat one path a hint or the hot list names: the changed paths.

        A folder we know, still there, has its entries looked at (a
        notification names a folder for every write in it); a new, moved or
        deleted one rescans its parent; a path under an ignored or unknown
        folder changes nothing.
        """
        folder = os.path.dirname(path)
        if folder not in self.files:
            return []
        rel = os.path.relpath(folder, self.root).replace(os.sep, "/")
        if self.skip(os.path.basename(path), "" if rel == "." else rel + "/"):
            return []
        try:
            st = os.stat(path) if not os.path.islink(path) or inside(path, self.real_root) else None
        except OSError:
            st = None
        if path in self.files and st and stat.S_ISDIR(st.st_mode):
            return self.quick(path, files=False)
        if path in self.files or (st and stat.S_ISDIR(st.st_mode)):
            return self.rescan(folder)
        new = signature(st) if st and stat.S_ISREG(st.st_mode) else None
        if self.files[folder].get(path) == new:
            return []
        if new is None:
            del self.files[folder][path]
        else:
            self.files[folder][path] = new
        self.listed.pop(folder, None)
        return [path]

    def quiet_for(self, paths: list[str]) -> float:
        """Seconds since the newest of ``paths`` was written (its ctime), 0 when unknown."""
        ctimes = [sig[3] for sig in map(self.known, paths) if sig]
        return max(0.0, time.time() - max(ctimes) / 1e9) if ctimes and len(ctimes) == len(paths) else 0.0

    def recent(self, since: float, most: int) -> list[str]:
        """The ``most`` most recently modified files, modified after ``since`` (a time.time())."""
        cutoff = since * 1e9
        young = ((s[0], p) for f in self.files.values() for p, s in f.items() if s[0] > cutoff)
        return [p for _, p in heapq.nlargest(most, young)]
