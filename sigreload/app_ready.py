"""Whether your app server answers: an HTTP answer (any status line, a 405
too) to one ``HEAD /`` within a short deadline. An accepted connection is
not enough: uvicorn takes connections while the Django app it serves hangs
in an import (its URLconf is imported on the first request), and a page
reloaded then waited with no word.

The request is sent only once the app took the connection from its
listening socket's queue (seen without a request: nothing in the app's
log); a refused connection, or one left in the queue (uvicorn's parent
holds the socket while its child cannot import your code), is no answer
and puts no line in the app's log. So a restart costs the app's log one
``HEAD /`` line (the request that proves the new process answers).
Portable: the connection's other end in a process of this user (macOS, no /proc).
"""

from __future__ import annotations

import socket
import time

from sigreload import platforms

TICK = 0.005  # between two looks at whether the connection was taken
REPLY = 1.0  # seconds an app that took the connection has to answer the HEAD (a first request imports views)


def accepted(port: int, client_port: int) -> bool | None:
    """Whether the loopback connection from ``client_port`` to ``port`` was
    taken by the app (platforms.taken: Linux's /proc, or this user's
    processes elsewhere); None where that cannot be seen (another user's app)."""
    if not platforms.shortcuts() and not platforms.listeners(port):
        return None
    return platforms.taken(port, client_port)


def answers(host: str, port: int, timeout: float, scheme: str = "http", reply: float = REPLY) -> bool:
    """True when the app takes a connection within ``timeout`` seconds and then
    answers a HEAD request (any status) within ``reply`` (over TLS for
    ``https``, its certificate unverified: the app is on this machine). A
    connection refused or not taken sends no request (nothing in the app's log)."""
    timeout = max(timeout, 0.05)
    end = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return False
    with sock:
        client_port = sock.getsockname()[1]
        while (took := accepted(port, client_port)) is False and time.monotonic() < end:
            time.sleep(TICK)
    return took is not False and answers_head(host, port, max(reply, 0.05), scheme)


def answers_head(host: str, port: int, timeout: float, scheme: str = "http") -> bool:
    """True once an HTTP HEAD request to the app gets any response (any status)."""
    import http.client  # here: 5 MB that a watcher without --app never needs
    import ssl

    conn = (http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl._create_unverified_context())
            if scheme == "https" else http.client.HTTPConnection(host, port, timeout=timeout))
    try:
        conn.request("HEAD", "/", headers={"User-Agent": "sigreload (is the app up?)"})
        conn.getresponse().close()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()

