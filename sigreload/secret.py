"""The secret an open tab asks its broadcaster to prove: no other server
that later listens on the port (another local user's, once sigreload
stopped) can take the tab over.

A tab's snippet sends a nonce of its own when its socket opens (a
``challenge``); the broadcaster answers HMAC(key, port:nonce) (a ``proof``).
The tab keeps the first proof it got (in its sessionStorage, with the
nonce) and from then on acts on a socket only once it proves the same:
reloads, build errors, and typed state given back after a reload. A
server that cannot prove it gets nothing from the tab (not a console line,
not a path) and is never reloaded into.

Why so: the tab can hold no secret that a local user could not also read
(every page and /reload.js is served to anyone on the machine), but it can
hold a nonce nobody else saw and the answer to it. A server that does not
know the key cannot answer it; one that knows it can only be a sigreload
of this user run from the same folder on the same port: the key is
HMAC(the user's secret, the folder), the port is in the proof. The user's
secret is a 0600 file in a 0700 folder of theirs
(``$XDG_STATE_HOME/sigreload``, else ``~/.local/state/sigreload``), made
with O_EXCL|O_NOFOLLOW; where there is none, a secret for this run alone
(a restarted sigreload is then a stranger too: the tabs wait for a reload by hand).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from sigreload.contract import messages, wire

log = logging.getLogger("sigreload.broadcast")
NAME = "secret"
SIZE = 32  # bytes of the user's secret
NONCE_MOST = 128  # characters of a tab's nonce
RELAY_HEADER = wire.RELAY_HEADER  # sigreload's own relays (file server, proxy) prove themselves with it
RELAY_LABEL = b"sigreload relay"
FOLDER_ENV = "SIGRELOAD_KEY_FOLDER"  # set by ``sigreload`` for its broadcaster: the folder it serves


def state_folder() -> Path:
    """Where the user's secret lives: ``$XDG_STATE_HOME/sigreload`` (``~/.local/state``)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state, "sigreload")


def user_secret(folder: Path | None = None) -> bytes | None:
    """The user's secret, made on first use; None when ``folder`` is not this
    user's alone or the file is not theirs, 0600 and a plain file."""
    folder = folder or state_folder()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return None
    if not messages.private(folder):
        return None
    path = folder / NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return read_secret(path)
    except OSError:
        return None
    made = secrets.token_bytes(SIZE)
    with os.fdopen(fd, "wb") as f:
        f.write(made)
    return made


def read_secret(path: Path) -> bytes | None:
    """The secret in ``path``, when it is this user's plain file that nobody else may read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None
        made = f.read(SIZE + 1)
    return made if len(made) == SIZE else None


def folder_key(folder: str) -> bytes:
    """The key of a sigreload run from ``folder``: the same for every run from
    there (a restart is trusted), another for any other folder or user."""
    found = user_secret()
    if found is None:
        log.info("no private place for sigreload's secret in %s: open tabs will trust only this run",
                 state_folder())
        found = secrets.token_bytes(SIZE)
    return hmac.new(found, os.path.realpath(folder).encode("utf-8", "surrogateescape"), hashlib.sha256).digest()


def proof(key: bytes, port: int, nonce: object) -> str | None:
    """The answer to a tab's nonce (None for a nonce that is not a short printable string)."""
    if not isinstance(nonce, str) or not 0 < len(nonce) <= NONCE_MOST or not nonce.isprintable():
        return None
    return hmac.new(key, f"{port}:{nonce}".encode(), hashlib.sha256).hexdigest()


@cache
def relay_proof(port: int) -> str | None:
    """What sigreload's relays send in RELAY_HEADER to the broadcaster on ``port``:
    HMAC(the user's secret, a fixed label and the port). A browser cannot set that
    header on a WebSocket, another local user cannot compute it, and a server that
    squats another port learns nothing good here. None where this user has no secret
    (nothing is then relayed as proven: the status socket is refused through a relay)."""
    found = user_secret()
    return hmac.new(found, RELAY_LABEL + f":{port}".encode(), hashlib.sha256).hexdigest() if found else None


def relay_proven(headers: Mapping[str, str] | None, port: int) -> bool:
    """Whether a request's ``headers`` carry this user's relay proof for ``port`` (RELAY_HEADER)."""
    told, own = headers.get(RELAY_HEADER) if headers is not None else None, relay_proof(port)
    return isinstance(told, str) and own is not None and hmac.compare_digest(told.encode(), own.encode())
