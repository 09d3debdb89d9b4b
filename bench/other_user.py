"""The benchmark's rows for another local user on loopback (issue 36, 3; the
reviewer r36a3, as ``nobody``), root and setpriv only; each server with
``ulimit -n 1024``:

- the proxy while that user holds 600 downloads it never reads: page loads;
- the broadcaster while that user holds 1,000 sockets: socket opens.

    python3 bench/attacks.py --other-user-only
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from attacks import SAMPLES, page_load, socket_open, start

OTHER = "65534"  # nobody
TESTS = Path(__file__).resolve().parent.parent / "tests"


def other_user_rows(results, summary, free_port):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("other-user rows skipped: another user's process needs root and setpriv", file=sys.stderr)
        return
    sys.path.insert(0, str(TESTS))
    from test_other_user import HOLD

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.chmod(root, 0o755)
        (root / "index.html").write_text("<!doctype html><title>mine</title><h1>mine</h1>")
        (root / "big.bin").write_bytes(b"x" * (20 << 20))
        ws, web, app = free_port(), free_port(), free_port()
        procs = [start(["sigreload.broadcaster", "--port", str(ws)], 1024, "ready"),
                 subprocess.Popen([sys.executable, "-u", "-m", "http.server", str(app), "--bind", "127.0.0.1",
                                   "--directory", str(root)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)]
        procs[-1].stdout.readline()  # "Serving HTTP": the app, a thread per connection (as Flask's server)
        procs.append(start(["sigreload.http_server", "--proxy", f"http://127.0.0.1:{app}", "--port", str(web),
                            "--inject", str(ws)], 1024, "proxying"))
        try:
            handshake = (f"GET /sigreload HTTP/1.1\\nHost: 127.0.0.1:{ws}\\nOrigin: http://127.0.0.1:8000\\n"
                         "Upgrade: websocket\\nConnection: Upgrade\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\n"
                         "Sec-WebSocket-Version: 13\\n\\n")
            for name, port, count, head, target, probe in (
                    ("proxy, another user's 600 unread downloads, ulimit 1024", web, 600,
                     f"GET /big.bin HTTP/1.1\\nHost: 127.0.0.1:{web}\\n\\n", "page loads", lambda: page_load(web)),
                    ("broadcaster, another user's 1,000 sockets, ulimit 1024", ws, 1000, handshake, "socket opens",
                     lambda: socket_open(f"ws://127.0.0.1:{ws}/sigreload", "http://127.0.0.1:8000"))):
                holder = subprocess.Popen(["setpriv", "--reuid", OTHER, "--regid", OTHER, "--clear-groups",
                                           "/usr/bin/python3", "-c", HOLD, str(port), str(count), head],
                                          stdout=subprocess.PIPE, text=True, start_new_session=True)
                try:
                    holder.stdout.readline()  # "held N": every one answered or closed
                    taken = [probe() for _ in range(SAMPLES)]
                finally:
                    holder.kill()
                    holder.wait()
                results[f"{name}: {target} (ms)"] = summary(taken)
                results[f"{name}: {target} failed"] = summary([float(taken.count(None))])
                time.sleep(1.0)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait()
