"""The changes channel: what changed, left by the watcher for the broadcaster.

A signal carries no data. Before it signals, the watcher ``write``s a
message (what changed under which folder, or a failed build's output); when
the signal arrives the broadcaster ``read``s every message left since its
last broadcast, and they are gone. A bare ``kill -USR1`` leaves none: every
page reloads. Several files, not one: two quick changes never lose each
other's paths.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from sigreload.contract import messages

CHANNEL = messages.Channel(
    "<time_ns>-<pid>.json",  # one per message, in the order they were left (the only *.json in the folder)
    format='a JSON object: {"paths": [URL paths], "root": the folder\'s id (watcher_ids.root_id)} for a change, '
           '{"error": a failed build\'s output} for a failed build (anything else: every page reloads); '
           '"app": "down" or "back" when it says so of the app server (--app: logged as such)',
    writer="the watcher (sigreload-watch), just before it signals the broadcaster",
    reader="the broadcaster, on each signal",
    removed="by the broadcaster as it reads them",
)


def write(folder: Path, message: dict[str, Any]) -> None:
    """Leave ``message`` in the broadcaster's ``folder``; send the signal after this.

    One file per message, written atomically. Raises OSError (a full disk),
    leaving nothing behind (``reserve.Poster`` then uses its reserve).
    """
    messages.write(folder, f"{time.time_ns():020d}-{os.getpid()}.json", json.dumps(message).encode())


def read(folder: Path | None) -> list[dict[str, Any]]:
    """Every message left in ``folder``, oldest first; consumed.

    An unreadable message, or one that is not a JSON object, counts as ``{}``
    (reload everything); never raises.
    """
    try:
        files = sorted(folder.glob("*.json")) if folder else []
    except OSError:
        return []
    said = []
    for f in files:
        try:
            message = json.loads(f.read_text())
            f.unlink()
        except (OSError, ValueError):
            message = {}
        said.append(message if isinstance(message, dict) else {})  # not an object: reload everything
    return said
