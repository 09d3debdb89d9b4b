"""Reading a configuration file as its owner meant it: a file of this user's
that nobody else can write (not a link another user made, not one swapped
between the look and the read, not writable through a group or an ACL), at
most MOST_BYTES, its TOML errors said in one line naming what is wrong.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same API from PyPI
    import tomli as tomllib

MOST_BYTES = 1 << 20  # a larger file is not read (an 80 MB pyproject.toml took 39 s)


class ConfigError(Exception):
    """A configuration file that cannot be used: the message is the whole line."""


def untrusted(info: os.stat_result, acl: bool = False) -> str | None:
    """Why a file with this stat is not read (None: it is): not this user's, or
    someone else may write it (anyone; a group with other members; or, with an
    ``acl``, whoever it names). The file can name a build command (``exec``),
    and a folder above may be shared."""
    if info.st_uid != os.getuid():
        return f"not yours (owner uid {info.st_uid})"
    if info.st_mode & 0o002:
        return "anyone can write it (chmod o-w it)"
    if info.st_mode & 0o020 and acl:
        return "an ACL lets others write it (setfacl -b it)"
    if info.st_mode & 0o020 and shared(info.st_gid):
        return "its group can write it, and has other members (chmod g-w it)"
    if info.st_nlink > 1:  # another name for it may be in a folder others can write (r32a5)
        return "it has other names (hard links)"
    if info.st_size > MOST_BYTES:
        return f"larger than {MOST_BYTES >> 20} MiB"
    return None


def shared(gid: int) -> bool:
    """Whether group ``gid`` may hold another user (not this user's own private group)."""
    import grp
    import pwd

    try:
        group = grp.getgrgid(gid)
    except KeyError:
        return True
    others = set(group.gr_mem) - {pwd.getpwuid(os.getuid()).pw_name}
    return bool(others) or gid != os.getgid() or any(p.pw_gid == gid and p.pw_uid != os.getuid()
                                                      for p in pwd.getpwall())


def read(path: Path) -> tuple[dict[str, Any], str | None]:
    """The TOML document at ``path``, or why it is not read (``untrusted``),
    judged by the file opened, not by its name: a link or a file swapped
    between a look and the read cannot slip another user's file in. Its
    syntax errors are a ConfigError."""
    try:
        fd, refused = opened(path)
    except OSError as exc:
        return {}, f"cannot read it ({exc.strerror})"
    if fd is None:
        return {}, refused
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if why := ("not a file" if not stat.S_ISREG(info.st_mode) else untrusted(info, acl(fd))):
            return {}, why
        try:
            text = file.read().decode()
            document: dict[str, Any] = tomllib.loads(text)
            return document, None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {twice(text, str(exc)) or exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read it: {exc}") from None
        except RecursionError:  # arrays nested thousands deep
            raise ConfigError(f"{path}: not valid TOML: nested too deep") from None


def opened(path: Path) -> tuple[int | None, str]:
    """``path`` open for reading, or why not. A link is followed only if it is
    this user's (or root's): another user's link in a shared folder would make
    that folder the root, and its build run there, with the developer's own file
    (r32a4). The link is looked at again after the open: one swapped meanwhile is
    not taken."""
    flags = os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK  # a FIFO in its place never blocks us
    if why := swappable(path.parent):  # whatever is judged here could be swapped back and forth (r32a5)
        return None, why
    before = os.lstat(path)
    if not stat.S_ISLNK(before.st_mode):
        return os.open(path, flags | os.O_NOFOLLOW), ""
    if before.st_uid not in (os.getuid(), 0):
        return None, f"a link another user made (owner uid {before.st_uid})"
    fd = os.open(os.path.realpath(path), flags | os.O_NOFOLLOW)
    after = os.lstat(path)
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        return None, "replaced while it was read"
    return fd, ""


def swappable(folder: Path) -> str | None:
    """Why another user could put another file in place of one in ``folder`` (None:
    nobody can): it is theirs, or anyone, a group with other members or an ACL
    may write it, without the sticky bit (which keeps each name its owner's)."""
    info = os.stat(folder)
    if info.st_uid not in (os.getuid(), 0):
        return f"its folder is another user's (owner uid {info.st_uid})"
    if info.st_mode & stat.S_ISVTX or not info.st_mode & 0o022:
        return None
    if info.st_mode & 0o002 or shared(info.st_gid) or acl(folder):
        return "others can write its folder (and so put another file in its place)"
    return None


def acl(fd: int | Path) -> bool:
    """Whether the open file (or the folder) has a POSIX access ACL (Linux): its group
    bits are then the mask of named users' and groups' rights, not one group's."""
    listxattr = getattr(os, "listxattr", None)
    try:
        return listxattr is not None and "system.posix_acl_access" in listxattr(fd)
    except OSError:
        return False


def twice(text: str, error: str) -> str | None:
    """tomllib's "Cannot overwrite a value (at line 3, column 8)" as the key it
    means ("line 3: port is set twice"); None for any other error."""
    found = re.fullmatch(r"Cannot overwrite a value \(at (?:line (\d+), column \d+|end of document)\)", error)
    lines = text.splitlines()
    number = int(found[1] or len(lines)) if found else 0  # at the end: its last line, with no newline after
    if not 0 < number <= len(lines):
        return None
    key = lines[number - 1].split("=", 1)[0].strip()
    return f"line {number}: {key} is set twice (a key takes one value)"


def configures(path: str | Path) -> bool:
    """Whether the file at ``path`` may configure sigreload: a sigreload.toml, or a
    pyproject.toml with a [tool.sigreload] table (by its text: cheap, never parsed)."""
    if os.path.basename(path) == "sigreload.toml":
        return True
    try:
        with open(path, "rb") as file:
            return b"[tool.sigreload" in file.read(MOST_BYTES)
    except OSError:
        return False
