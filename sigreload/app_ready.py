"""Whether your app server serves, seen without a request: a connection to
its port that it takes from its listening socket's queue. Nothing shows in
the app's log (Werkzeug, Django and uvicorn say nothing of a connection
closed before a request): readiness probes were ``HEAD /`` lines there, and
FastAPI answers those 405. A connection that waits in the queue (uvicorn's
parent holds the socket while its child cannot import your code) is no answer.
Portable: the connection's other end in a process of this user (macOS, no /proc).
"""

from __future__ import annotations

import socket
import time

from sigreload import platforms

TICK = 0.005  # between two looks at whether the connection was taken


def accepted(port: int, client_port: int) -> bool | None:
    """Whether the loopback connection from ``client_port`` to ``port`` was
    taken by the app (platforms.taken: Linux's /proc, or this user's
    processes elsewhere); None where that cannot be seen (another user's app)."""
    if not platforms.shortcuts() and not platforms.listeners(port):
        return None
    return platforms.taken(port, client_port)


def answers(host: str, port: int, timeout: float, scheme: str = "http") -> bool:
    """True once the app takes a connection from its listening socket (it
    serves): no request is sent, so nothing shows in the app's log (Werkzeug,
    Django and uvicorn say nothing of a connection closed before a request).
    Where that cannot be seen, a HEAD request that gets any response (over
    TLS for ``https``, its certificate unverified: the app is on this machine)."""
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
    return took if took is not None else answers_head(host, port, timeout, scheme)


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

