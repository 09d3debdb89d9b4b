"""Save -> the new page's ``load`` event: ours against the seed's bare recipe.

The seed's bare recipe is the blog post's: stock ``python -m http.server``, its
reload server (bench/seed_broadcaster.py) and its inline snippet (a WebSocket
that reloads on any message). Ours: the same page, the snippet inserted by
sigreload's file server (``/_sigreload/reload.js``), and pasted as the README
says (``<script src="http://127.0.0.1:PORT/reload.js">``) on stock http.server.
Each setup has its own broadcaster and its own tab; a save is a write of the
page followed by the recipe's own ``kill -USR1`` (no watcher: its polling phase
would be most of the noise, and it is the same on both sides); the time runs
from the write to the new page's ``load`` event as the page's clock records it.
The setups alternate, in a rotating order, on the same page.
"""

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sigreload import process_life

PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script>addEventListener("load", () => {{ window.loadedAt = performance.timeOrigin + performance.now(); }});</script>
<link rel="stylesheet" href="style.css"></head><body><h1 id="title">{title}</h1>
<script src="app.js"></script>{snippet}</body></html>"""
SEED = ("<script>const socketUrl = 'ws://127.0.0.1:{port}'; const webSocket = new WebSocket(socketUrl);"
        " webSocket.onmessage = () => {{ window.location.reload(); }};</script>")
PASTED = '<script src="http://127.0.0.1:{port}/reload.js"></script>'
HERE = Path(__file__).resolve().parent
# The bench's own clock in every tab (the same for the three setups): when a
# WebSocket message reaches the old page, kept in sessionStorage for the new page.
HEARD = """(() => { const Real = window.WebSocket; if (!Real) return;
  window.WebSocket = function (...a) { const ws = new Real(...a); ws.addEventListener("message", () => {
    try { if (sessionStorage.getItem("bench-armed")) { sessionStorage.removeItem("bench-armed");
      sessionStorage.setItem("bench-heard", String(performance.timeOrigin + performance.now())); } } catch {} });
    return ws; };
  window.WebSocket.prototype = Real.prototype; Object.assign(window.WebSocket, Real); })();"""
# Where the new page's time goes, from its navigation entry (ms from its navigation start) and the
# snippet's script entry; heard: the old page got the broadcast (ms before the navigation starts).
PHASES = """(() => { const n = performance.getEntriesByType("navigation")[0];
  const s = performance.getEntriesByType("resource").find((r) => /reload\\.js/.test(r.name));
  const heard = Number(sessionStorage.getItem("bench-heard")) || null;
  const others = performance.getEntriesByType("resource").filter((r) => /(app\\.js|style\\.css)$/.test(r.name));
  return { loaded: window.loadedAt, began: performance.timeOrigin, heard,
    response: n.responseEnd, interactive: n.domInteractive, dcl: n.domContentLoadedEventEnd,
    loadStart: n.loadEventStart, script: s ? s.responseEnd - s.startTime : null,
    scriptBytes: s ? s.transferSize : null, fetched: others.filter((r) => r.transferSize > 0).length,
    files: Math.max(0, ...others.map((r) => r.responseEnd - r.startTime)) }; })()"""
STEPS = (("save -> the old page hears the broadcast", "heard"),
         ("broadcast heard -> navigation starts (the old page's snippet)", "handled"),
         ("navigation start -> page's response end", "response"),
         ("response end -> DOM interactive (parsing, parse-blocking scripts)", "parsed"),
         ("DOM interactive -> DOMContentLoaded end", "dcl"),
         ("DOMContentLoaded end -> load event start (subresources)", "subresources"),
         ("load event start -> the page's load listener (earlier load listeners)", "listeners"),
         ("the snippet's script fetch (resource entry)", "script"),
         ("the snippet's script, bytes over the network", "scriptBytes"),
         ("style.css and app.js: how many asked the server (not the cache)", "fetched"),
         ("style.css and app.js: the longer fetch", "files"))


def started(argv, ready, **kwargs):
    """A process, once a line of its output contains ``ready``."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True, start_new_session=True, **kwargs)
    for line in proc.stdout:
        if ready in line:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # drained: never blocks on a full pipe
            return proc
    raise RuntimeError(f"{argv} exited before {ready!r}")


def stock_server(root, port):
    return started([sys.executable, "-u", "-m", "http.server", str(port), "--bind", "127.0.0.1"], "Serving", cwd=root)


class Setup:
    """One page, its servers and its tab: ``save(i)`` -> ms from the write to the new page's load, and
    to its navigation's start (the rest is the new page's load itself)."""

    def __init__(self, name, root, snippet, free_port, browser, procs):
        self.name, self.root, self.snippet = name, root, snippet
        self.ws, self.http, self.procs = free_port(), free_port(), procs
        root.mkdir(parents=True)
        (root / "style.css").write_text("h1 { color: rgb(0, 0, 0); }")
        (root / "app.js").write_text("window.appVersion = 0;")
        self.write("v0")
        self.signalled = self.start()
        self.tab = browser.new_page()
        self.tab.goto(f"http://127.0.0.1:{self.http}/")
        self.tab.wait_for_function("window.loadedAt")
        self.tab.wait_for_timeout(500)  # the socket open

    def write(self, title):
        snippet = self.snippet.format(port=self.ws)
        (self.root / "index.html").write_text(PAGE.format(title=title, snippet=snippet))

    def start(self):
        """The servers; the PID a save signals."""
        if self.name == "seed":
            env = {**os.environ, "PORT": str(self.ws), "HOST": "127.0.0.1"}
            broadcaster = started([sys.executable, "-u", str(HERE / "seed_broadcaster.py")], "Running", env=env)
        else:
            broadcaster = started([*process_life.module_argv("sigreload.broadcaster"), "--port", str(self.ws)],
                                  "ready on")
        self.procs.append(broadcaster)
        if self.name == "ours, inserted":
            self.procs.append(started([*process_life.module_argv("sigreload.http_server"), str(self.root),
                                       "--port", str(self.http), "--inject", str(self.ws)], "serving"))
        else:
            self.procs.append(stock_server(self.root, self.http))
        return broadcaster.pid

    def save(self, i):
        self.tab.wait_for_timeout(150)
        start = 1000 * time.time()
        self.tab.evaluate("sessionStorage.removeItem('bench-heard'); sessionStorage.setItem('bench-armed', '1')")
        with self.tab.expect_event("load", timeout=10_000):
            self.write(f"v{i}")
            os.kill(self.signalled, signal.SIGUSR1)
        p = self.tab.evaluate(PHASES)
        steps = {"heard": p["heard"] and p["heard"] - start, "handled": p["heard"] and p["began"] - p["heard"],
                 "response": p["response"], "parsed": p["interactive"] - p["response"],
                 "dcl": p["dcl"] - p["interactive"], "subresources": p["loadStart"] - p["dcl"],
                 "listeners": p["loaded"] - p["began"] - p["loadStart"], "script": p["script"],
                 "scriptBytes": p["scriptBytes"], "fetched": p["fetched"], "files": p["files"]}
        # (save -> load, save -> the new page's navigation starts, where it went)
        return p["loaded"] - start, p["began"] - start, steps


def rows(results, pw_browser, free_port, summary, edits=20):
    """The rows: each setup's median, and ours over the seed's (per round, alternating)."""
    procs = []
    browser = pw_browser.new_context()
    browser.add_init_script(HEARD)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            setups = [Setup(name, Path(tmp) / str(n), snippet, free_port, browser, procs)
                      for n, (name, snippet) in enumerate((("seed", SEED), ("ours, inserted", ""),
                                                           ("ours, pasted", PASTED)))]
            ms, began = {s.name: [] for s in setups}, {s.name: [] for s in setups}
            phases = {s.name: {key: [] for _, key in STEPS} for s in setups}
            for i in range(1, edits + 1):
                turn = setups[i % 3:] + setups[:i % 3]
                for s in turn:
                    total, start, steps = s.save(i)
                    ms[s.name].append(total)
                    began[s.name].append(start)
                    for key, value in steps.items():
                        phases[s.name][key].append(value)
            for name, values in ms.items():
                results[f"save -> new page's load event, {name} (ms)"] = summary(values)
                results[f"save -> new page's navigation starts, {name} (ms)"] = summary(began[name])
                results[f"new page's navigation start -> its load event, {name} (ms)"] = summary(
                    [a - b for a, b in zip(values, began[name], strict=True)])
            for name in ms:
                for row, key in STEPS:
                    results[f"save -> load, step: {row}, {name} (ms)"] = summary(phases[name][key])
            for name in ("ours, inserted", "ours, pasted"):
                results[f"save -> new page's load event, {name} / the seed's bare recipe (median ratio)"] = summary(
                    [statistics.median(ms[name]) / statistics.median(ms["seed"])])
    finally:
        browser.close()
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


if __name__ == "__main__":  # alone: python bench/save_load.py [EDITS]
    sys.path.insert(0, str(HERE))
    import run

    found = {}
    pw, pw_browser = run.browser()
    try:
        rows(found, pw_browser, run.free_port, run.summary, int(sys.argv[1]) if sys.argv[1:] else 20)
    finally:
        pw_browser.close()
        pw.stop()
    for row, value in found.items():
        print(f"{row}: {value}")
