"""Two limits of issue 36 (3): the broadcaster reads a page's ``using`` at most
once a second per connection (a flood from one page holds no other page's
reload), and a default port taken between sigreload's look and its server's
bind moves on at most MOST_MOVES times, then sigreload stops in one line."""

import json
import os
import signal
import sys
import time

from websockets.sync.client import connect

from conftest import SCALE, deadline, free_port, module, until, write
from sigreload import cli
from sigreload.broadcasting import handler
from sigreload.contract import discovery, used_paths


def using(*paths):
    return json.dumps({"type": "using", "paths": list(paths)})


def test_a_using_flood_from_one_page_is_read_once_a_second_and_holds_no_other_pages_reload(procs):
    port = free_port()
    broadcaster = procs(module("broadcaster") + ["--port", port])
    broadcaster.wait_for("ready")
    folder = []
    until(lambda: folder.append(discovery.Locator(port).lookup()) or folder[-1], 10, "no message folder")
    url, origin = f"ws://127.0.0.1:{port}/sigreload", "http://127.0.0.1:8000"
    with connect(url, origin=origin, open_timeout=10 * SCALE) as flooder, \
            connect(url, origin=origin, open_timeout=10 * SCALE) as other:
        for page in (flooder, other):
            assert '"hello"' in page.recv(timeout=10 * SCALE)
        flooder.send(using("/first.css"))
        for i in range(2000):  # within a second of the first: none of them is read
            flooder.send(using(f"/flood{i}.css", f"/flood{i}.js"))
        os.kill(broadcaster.pid, signal.SIGUSR1)
        end = deadline(10)
        while '"reload"' not in (said := other.recv(timeout=max(0.1, end - time.monotonic()))):
            pass  # the other page's reload, while the flood is read (or not)
        until(lambda: used_paths.read(folder[-1]).get("pages") == ["/first.css"], 10,
              f"the first 'using' reported alone: {used_paths.read(folder[-1])}")

        def later_read():  # a second on, the page's next 'using' is read again
            flooder.send(using("/later.css"))
            return used_paths.read(folder[-1]).get("pages") == ["/later.css"]

        until(later_read, 10 + handler.USING_EVERY, "a 'using' a second later was not read")
    assert "Traceback" not in broadcaster.output(), said


# Runs sigreload whose look at each port is followed at once by another program
# binding it (this process, holding it until it exits): every server's bind fails.
SQUATTED = """
import sys
from sigreload import cli, listening
looked, held = listening.probe, []
def probe(host, port):
    free = looked(host, port)
    if free is None:
        held.extend(listening.bind(host, port))
    return free
listening.probe = probe
sys.argv[0] = "sigreload"
cli.run(sys.argv[1:])
"""


def test_a_default_port_taken_at_every_move_stops_sigreload_in_one_line_after_most_moves(procs, tmp_path):
    write(tmp_path / "index.html", "<h1>v1</h1>")
    stack = procs([sys.executable, "-c", SQUATTED, tmp_path], cwd=tmp_path)
    stack.wait_for(rf"taken {cli.MOST_MOVES + 1} times between sigreload's look and its bind", 60)
    until(lambda: stack.popen.poll() is not None, 30, "sigreload did not stop")
    said = stack.output()
    assert stack.popen.returncode == 1, said
    assert said.count("taken ") == 1 and "Traceback" not in said, said
    assert said.count(" instead") == cli.MOST_MOVES, said  # each move said once
