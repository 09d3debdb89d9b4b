"""The watcher's messages on a full disk or quota: a reserve in the message folder.

A full disk (or quota) refuses a new message file, and without its message
a signal reloads every page: a soak saw about 40 reloads per page in a
minute, and one warning line per change. So the watcher keeps RESERVE bytes
of spaces in the folder, written while there was room; when a message
cannot be written, it goes into the reserve in place (its blocks are
allocated already: no new space is needed) and the reserve is renamed into
a message (trailing spaces are valid JSON). The broadcaster's ``changes.read``
removes it, which frees its blocks for the next messages. It is said once
when the folder fills and once when there is room again (a new reserve
could be made); pages keep getting what changed all along, as long as
what the broadcaster frees is not taken by whatever fills the disk.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from sigreload.contract import changes, messages

RESERVE = 64 << 10  # bytes: a message of about a thousand paths
CHANNEL = messages.Channel(
    ".reserve",  # not *.json: changes.read never takes it
    format="RESERVE bytes of spaces, then a change message written over them in place (renamed: a *.json)",
    writer="the watcher, at its first message and after each one it used",
    reader="the broadcaster, once it is renamed into a change message (changes.read)",
    removed="renamed into a change message when the folder takes no new file",
)

log = logging.getLogger("sigreload.watch")


class Poster:
    """Leaves the watcher's change messages (``post``: ``changes.write``), through the reserve when it must."""

    def __init__(self) -> None:
        self.full: str | None = None  # why the folder refused a message, until there is room again

    def post(self, folder: Path, message: dict[str, Any]) -> None:
        """``changes.write``, or the reserve when the folder takes no new file; raises
        OSError only when neither worked (said once per spell)."""
        try:
            changes.write(folder, message)
        except OSError as exc:
            used = self.from_reserve(folder, message)
            self.refused(exc, used)
            if not used:
                raise
        self.keep(folder)

    def from_reserve(self, folder: Path, message: dict[str, Any]) -> bool:
        """The message written into the reserve in place, renamed into a message."""
        data = json.dumps(message).encode()
        reserve = folder / CHANNEL.name
        if len(data) > RESERVE:
            return False
        try:
            fd = os.open(reserve, os.O_WRONLY | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            os.pwrite(fd, data, 0)
        except OSError:
            return False
        finally:
            os.close(fd)
        try:
            os.replace(reserve, folder / f"{time.time_ns():020d}-{os.getpid()}.json")
        except OSError:
            return False
        return True

    def refused(self, exc: OSError, used: bool) -> None:
        if self.full is None:
            self.full = exc.strerror or str(exc)
            how = "pages still get what changed, from its reserve" if used else "every page reloads on a change"
            log.warning("the message folder takes no new file (%s): %s, until there is room again", self.full, how)

    def keep(self, folder: Path) -> None:
        """A reserve in ``folder`` when there is none (at start, after one was used);
        the first one made after a refusal says there is room again."""
        reserve = folder / CHANNEL.name
        if reserve.exists():
            return
        try:
            CHANNEL.put(folder, b" " * RESERVE)
        except OSError:
            return
        if self.full is not None:
            self.full = None
            log.info("the message folder has room again: pages get what changed")
