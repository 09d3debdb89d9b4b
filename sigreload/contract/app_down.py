"""The app is down: why the app will not answer until a fix (the watcher's
view), for the proxy.

The watcher restarts the app server (``--app``) and sees when it cannot
start (a syntax error, a port taken); the proxy then answers its down page
at once instead of waiting for the app to answer each request.
"""

from __future__ import annotations

from pathlib import Path

from sigreload.contract import messages

CHANNEL = messages.Channel(
    "app-down.why",
    format="text: why the app is down, as the watcher's log says it (UTF-8); its mtime: since when",
    writer="the watcher (--app), after each restart of the app server",
    reader="the proxy, when the app does not answer (its mtime against the app's last answer)",
    removed="by the watcher when the app may answer again (no file: it may)",
)


def write(folder: Path | None, why: str | None) -> None:
    """Say that the app is down (``why``), or that it may answer again (None);
    never raises (only a hint: the proxy then waits for the app as it would without one)."""
    if folder is None:
        return
    try:
        if why is None:
            CHANNEL.remove(folder)
        else:
            CHANNEL.put(folder, why.encode())
    except OSError:
        pass


def read(folder: Path | None) -> float | None:
    """Since when the watcher says the app is down (time.time() seconds), or None
    (it may answer). The reason is for people: the proxy needs only when."""
    try:
        return (folder / CHANNEL.name).stat().st_mtime if folder else None
    except OSError:
        return None
