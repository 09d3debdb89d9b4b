"""The paths that differ between Linux and macOS (sigreload/platforms.py), each
run both ways: Linux's shortcuts, and the portable paths with the system-wide
connection listing denied (SIGRELOAD_PORTABLE=1), as macOS does for a user
who is not root."""

import json
import os
import signal
import socket
import sys
import time

import psutil
import pytest

from conftest import client, deadline, recv, until
from sigreload import platforms

pytestmark = pytest.mark.portable_too

# A stand-in app: listens, says its port, and accepts (argv "1") or never does ("0").
LISTENER = """import signal, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
print(s.getsockname()[1], flush=True)
held = []
while sys.argv[1] == "1":
    held.append(s.accept()[0])
signal.pause()
"""


def listener(procs, accepts):
    app = procs([sys.executable, "-c", LISTENER, "1" if accepts else "0"])
    return app, int(app.wait_for(r"^(\d+)$").group(1))


def test_the_switch_denies_the_system_wide_listing_as_macos_does(platform_paths):
    if platform_paths == "portable" or not sys.platform.startswith("linux"):
        with pytest.raises(psutil.AccessDenied):
            platforms.net_connections()
        assert not platforms.shortcuts() and platforms.pidfd(os.getpid()) is None
        assert platforms.parent_death_signal() is None
    else:
        assert platforms.net_connections() and platforms.shortcuts()


def test_the_listener_on_a_port_is_found_among_this_users_processes(procs):
    app, port = listener(procs, accepts=True)
    assert platforms.listeners(port) == {app.pid}
    assert platforms.listeners(port, "127.0.0.1") == {app.pid}
    assert platforms.listeners(port, "::1") == set()
    app.kill()
    assert platforms.listeners(port) == set()  # the one found last is gone: every process is looked at


@pytest.mark.parametrize("accepts", [True, False], ids=["accepts", "accepts nothing"])
def test_the_accept_check_tells_an_app_that_accepts_from_one_that_does_not(procs, accepts):
    app, port = listener(procs, accepts)
    assert platforms.accepting(port)  # nothing waits
    with socket.create_connection(("127.0.0.1", port)):
        if accepts:
            until(lambda: platforms.accepting(port), 5, "the connection was never seen accepted")
        else:
            assert not platforms.accepting(port)


def test_a_process_start_time_is_exact():
    """Werkzeug's and uvicorn's new children are told from the old by when they
    started: psutil's Linux create_time can read up to 1 s early."""
    before = time.time()
    proc = psutil.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=-1)
    try:
        started = platforms.started_at(proc.pid)
        assert started is not None and before - 0.02 <= started <= time.time() + 0.02
    finally:
        proc.communicate()
    assert platforms.started_at(proc.pid) is None


def test_pages_hear_that_the_watcher_stopped_within_a_second(watched):
    b, w, port, site = watched
    with client(port) as ws:
        hello = json.loads(recv(ws))
        end = deadline(5)
        while hello["root"] is None:  # the watcher said what it watches: looked at on each hello
            assert time.monotonic() < end, "the broadcaster never saw the watcher"
            with client(port) as again:
                hello = json.loads(recv(again))
        os.kill(w.pid, signal.SIGKILL)
        killed = time.monotonic()
        told = json.loads(recv(ws, 2))
        took = time.monotonic() - killed
        assert told["type"] == "hello" and told["root"] is None
        print(f"told {took * 1000:.0f} ms after the watcher's end")
