"""The watcher's look at an app restarted by hand (``--app``), with no edit.

Behind the proxy a page's failed request says the app is gone; with the
middleware (or a pasted snippet) nothing asks the app between edits. So
while pages are open (the broadcaster holds a connection: a page's socket,
or the proxy's relay of one) the watcher looks, at most once every EVERY
seconds, whether the app's port still takes a TCP connection (about 0.1 ms;
the app's log shows nothing: no request is sent). A refused connection is
an app gone: pages say so (``app_server.notice``), and the Waiter's look for
its return (an HTTP answer, ``app_ready.answers``) reloads them once it
answers. No page open: no look at all.
"""

from __future__ import annotations

import socket
from typing import Any

import psutil

from sigreload import platforms, tcp_table

EVERY = 1.0  # seconds between two looks while pages are open
CONNECT = 0.2  # seconds a connection to the app may take (loopback: far less)
GONE = "(nothing listens on its port: stopped by hand?)"  # why, after app_server.DOWN


def pages_open(broadcaster: Any, port: int) -> bool:
    """Whether the broadcaster (a psutil.Process, or None: none found) holds an
    established connection on its ``port``: a page's socket. Linux: a row of
    /proc/net/tcp* (a fraction of a ms); elsewhere its own sockets (psutil: ms)."""
    if broadcaster is None:
        return False
    if platforms.shortcuts():
        return tcp_table.established_on(port)
    return any(c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
               for c in platforms.own_connections(broadcaster))


def listens(host: str, port: int) -> bool:
    """Whether something takes a TCP connection on the app's port (refused: no)."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT):
            return True
    except OSError:
        return False
