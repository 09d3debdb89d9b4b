"""Output nobody reads never holds a process: a program that starts sigreload
and reads only its first lines (an editor's plugin, a benchmark) left the
pipe full after about 500 edits' lines, and every process then stopped at
its next line, every page with it."""

import array
import fcntl
import os
import select
import signal
import subprocess
import termios
import time

from websockets.exceptions import WebSocketException

from conftest import SCALE, client, deadline, module, recv

FULL = 60_000  # bytes waiting in the pipe: it is full (64 KiB on Linux)


def waiting(pipe):
    """Bytes in ``pipe`` that nobody read yet."""
    count = array.array("i", [0])
    fcntl.ioctl(pipe.fileno(), termios.FIONREAD, count)
    return count[0]


def test_a_full_pipe_of_output_never_stops_the_broadcaster():
    proc = subprocess.Popen([*module("broadcaster"), "--port", "0", "-v"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        ready = ""
        while "ready on" not in ready:
            ready = proc.stdout.readline().decode()
            assert ready, "the broadcaster ended before its ready line"
        port = int(ready.split("127.0.0.1:")[1].split()[0])
        end = deadline(60)
        while waiting(proc.stdout) < FULL:  # pages come and go, each a few debug lines, never read
            assert proc.poll() is None and time.monotonic() < end, "the pipe never filled"
            try:
                with client(port) as ws:
                    recv(ws)
            except (TimeoutError, OSError, WebSocketException) as exc:
                raise AssertionError(f"a page could not connect with {waiting(proc.stdout)} bytes unread") from exc
        for _ in range(20):  # full for good: more pages, each told of a reload
            with client(port) as ws:
                assert '"hello"' in recv(ws)
                proc.send_signal(signal.SIGUSR1)
                assert '"reload"' in recv(ws, 10), "a full pipe stopped the broadcast"
        assert waiting(proc.stdout) >= FULL
        fd, said = proc.stdout.fileno(), b""
        while waiting(proc.stdout):  # read now: what it left out is said with its next line (which may
            said = (said + os.read(fd, 1 << 16))[-(1 << 20):]  # come while this reads)
        with client(port) as ws:
            recv(ws)
        end = deadline(10)
        while b"not shown" not in said:
            assert time.monotonic() < end, f"no count of the lines left out: {said[-500:]!r}"
            if select.select([fd], [], [], 0.1)[0]:
                said += os.read(fd, 1 << 16)
        assert b"line(s) not shown: nothing read this output meanwhile" in said
    finally:
        proc.kill()
        proc.wait(10 * SCALE)
