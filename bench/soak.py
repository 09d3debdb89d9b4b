"""The soak: sigreload under a long mix of edits, tabs and churning sockets.

    python3 bench/run.py --soak MINUTES [--tabs 6] [--sockets 150]

Runs ``python -m sigreload`` on a generated site (pages, their stylesheets,
a shared script, a 1,000-file tree), opens one headless Chromium tab per page
and keeps ``--sockets`` WebSocket clients connecting and leaving, then makes
edits of every kind until the time is up: atomic saves (renamed into place
from gedit's, sed's and Python's temporary names), in-place writes, ``sed
-i``, stylesheets, the shared script, 50-file checkouts, deletions and
re-creations. Each edit has an expected effect on each tab (one reload, one
stylesheet swap, or nothing); after the run it prints per tab what was lost
and what came extra, save -> broadcast times, and per process the start, end
and slope (per minute, after the first fifth) of memory, open files and threads.
Loopback only; it stops by itself and measures, never asserts.
"""

import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil

SETTLE = 10.0  # seconds an edit's expected updates may take before they count as lost
SAMPLE_EVERY = 10.0  # seconds between two samples of the processes
TREE = 1000  # files in the tree the checkouts rewrite
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>p{k}</title>
<link rel="stylesheet" href="css/p{k}.css"></head><body><h1>page {k}: {v}</h1>
<script src="shared.js"></script></body></html>"""


def build(root, tabs):
    """The site: pageK.html (its css/pK.css, shared.js), and a tree of TREE files."""
    (root / "css").mkdir(parents=True)
    for k in range(tabs):
        (root / f"page{k}.html").write_text(PAGE.format(k=k, v=0))
        (root / "css" / f"p{k}.css").write_text("h1 { color: rgb(0, 0, 0) }")
    (root / "shared.js").write_text("window.v = 0;")
    for i in range(TREE):
        (root / f"tree/d{i % 20:02d}").mkdir(parents=True, exist_ok=True)
        (root / f"tree/d{i % 20:02d}/f{i}.txt").write_text(str(i))


def atomic(path, text):
    """Saved as gedit, Python's tempfile or an IDE does: a temporary renamed into place."""
    name = random.choice([f".goutputstream-{random.randrange(36**6):06X}", f"tmp{random.randrange(10**8):08d}",
                          f"{path.name}.{random.randrange(16**8):08x}"])
    tmp = path.with_name(name)
    tmp.write_text(text)
    os.replace(tmp, path)


class Edits:
    """One random edit at a time; each returns {tab: "reload" | "swap"} it should cause."""

    def __init__(self, root, tabs):
        self.root, self.tabs, self.n, self.deleted = root, tabs, 0, []
        self.kinds = {"atomic save": 20, "in-place write": 15, "sed -i": 10 if shutil.which("sed") else 0,
                      "stylesheet": 20, "shared script": 3, "50-file checkout": 8, "deletion": 8,
                      "unrelated file": 10}
        self.done = {kind: 0 for kind in self.kinds}
        self.last = ""
        self.wrong = {kind: [0, 0] for kind in self.kinds}  # lost, extra: after which kind of edit

    def make(self):
        kind = self.last = random.choices(list(self.kinds), list(self.kinds.values()))[0]
        self.done[kind] += 1
        self.n += 1
        k, root = random.randrange(self.tabs), self.root
        page = root / f"page{k}.html"
        if kind in ("atomic save", "in-place write"):
            (atomic if kind == "atomic save" else Path.write_text)(page, PAGE.format(k=k, v=self.n))
        elif kind == "sed -i":
            subprocess.run(["sed", "-i", f"s/page {k}: [0-9]*/page {k}: {self.n}/", str(page)], check=True)
        elif kind == "stylesheet":
            css = root / "css" / f"p{k}.css"
            text = f"h1 {{ color: rgb({self.n % 256}, 0, 0) }}"
            if random.random() < 0.5:
                atomic(css, text)
            else:
                css.write_text(text)
            return {k: "swap"}
        elif kind == "shared script":
            (root / "shared.js").write_text(f"window.v = {self.n};")
            return {t: "reload" for t in range(self.tabs)}
        elif kind == "50-file checkout":
            for i in random.sample(range(TREE), 49):
                (root / f"tree/d{i % 20:02d}/f{i}.txt").write_text(f"{i} {self.n}")
            page.write_text(PAGE.format(k=k, v=self.n))
        elif kind == "deletion":
            if self.deleted and random.random() < 0.5:
                self.deleted.pop().write_text("back")
            else:
                i = random.randrange(TREE)
                path = root / f"tree/d{i % 20:02d}/f{i}.txt"
                if path.exists():
                    path.unlink()
                    self.deleted.append(path)
            return {}
        else:
            i = random.randrange(TREE)
            (root / f"tree/d{i % 20:02d}/f{i}.txt").write_text(f"{i} {self.n}")
            return {}
        return {k: "reload"}


def churn(port, sockets, stop, counts):
    """``sockets`` WebSocket clients that connect, stay 0.5 to 5 s and leave, until ``stop``."""
    from websockets.asyncio.client import connect

    async def one():
        while not stop.is_set():
            try:
                async with connect(f"ws://127.0.0.1:{port}/sigreload", open_timeout=10, ping_interval=None) as ws:
                    counts["connected"] += 1
                    end = time.monotonic() + random.uniform(0.5, 5)
                    while time.monotonic() < end and not stop.is_set():
                        try:
                            await asyncio.wait_for(ws.recv(), max(0.01, end - time.monotonic()))
                        except asyncio.TimeoutError:
                            pass
            except Exception as exc:  # refused, reset, timed out: counted, never fatal
                counts["failed"] += 1
                why = type(exc).__name__
                counts.setdefault("why", {})[why] = counts.setdefault("why", {}).get(why, 0) + 1
                await asyncio.sleep(0.5)

    async def all_of_them():
        await asyncio.gather(*(one() for _ in range(sockets)))

    asyncio.run(all_of_them())


def monitor(port, stop, events):
    """A snippet-like client that records when each broadcast arrives (for save -> broadcast)."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    while not stop.is_set():
        try:
            with connect(f"ws://127.0.0.1:{port}/sigreload", ping_interval=None) as ws:  # busy: no pings to miss
                while not stop.is_set():
                    try:
                        m = json.loads(ws.recv(timeout=0.5))
                    except TimeoutError:
                        continue
                    if m.get("type") != "hello":
                        events.append(time.time())
        except (OSError, ConnectionClosed):  # a ping unanswered on a busy machine: again
            time.sleep(0.2)


def sample(stack, rows, t0):
    """A row per process: (minutes since start, name, RSS MB, open files, threads)."""
    for p in stack.processes():
        try:
            cmd = " ".join(p.cmdline())
            name = next((n for n in ("broadcaster", "watcher", "http_server") if f"sigreload.{n}" in cmd), "sigreload")
            rows.append(((time.monotonic() - t0) / 60, name, p.memory_info().rss / 2**20, p.num_fds(), p.num_threads()))
        except psutil.Error:
            pass


def slope(points):
    """Least-squares slope of (x, y) points (per unit of x); 0 with fewer than two."""
    if len(points) < 2 or len({x for x, _ in points}) < 2:
        return 0.0
    return statistics.linear_regression([x for x, _ in points], [y for _, y in points]).slope


def open_tabs(pw_browser, url, tabs):
    """A tab per page, each counting its loads and stylesheet swaps (and its "missed" reloads)."""
    counts = [{"reload": 0, "swap": 0, "missed": 0} for _ in range(tabs)]
    pages = []
    for k in range(tabs):
        page = pw_browser.new_context().new_page()

        def on_console(m, c=counts[k]):
            c.setdefault("said", []).append(m.text)
            c["swap"] += "sigreload: swapped" in m.text or "stylesheets refreshed" in m.text
            c["missed"] += "missed while disconnected" in m.text

        page.on("load", lambda _, c=counts[k]: c.__setitem__("reload", c["reload"] + 1))
        page.on("console", on_console)
        page.goto(f"{url}page{k}.html")
        pages.append(page)
    pages[0].wait_for_timeout(1000)
    for c in counts:
        c["reload"] = 0  # the first load is no update
    return pages, counts


def run(minutes, pw_browser, stack_class, tabs=6, sockets=150):
    """The soak, printed; returns its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "site"
        build(root, tabs)
        stack = stack_class(root)
        stop, counts, events, rows = threading.Event(), {"connected": 0, "failed": 0}, [], []
        threads = [threading.Thread(target=churn, args=(stack.ws, sockets, stop, counts), daemon=True),
                   threading.Thread(target=monitor, args=(stack.ws, stop, events), daemon=True)]
        for t in threads:
            t.start()
        try:
            return soak(minutes, pw_browser, stack, root, tabs, sockets, stop, counts, events, rows)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
            stack.stop()


def soak(minutes, pw_browser, stack, root, tabs, sockets, stop, counts, events, rows):
    pages, seen = open_tabs(pw_browser, stack.url, tabs)
    edits, wait = Edits(root, tabs), pages[0].wait_for_timeout
    expected = [{"reload": 0, "swap": 0} for _ in range(tabs)]
    lost, extra = [0] * tabs, [0] * tabs
    latencies, t0, odd = [], time.monotonic(), []
    next_sample, end = t0, t0 + 60 * minutes
    while time.monotonic() < end:
        if time.monotonic() >= next_sample:
            sample(stack, rows, t0)
            next_sample += SAMPLE_EVERY
        before = [dict(c) for c in seen]
        for c in seen:
            c["said"] = []
        at, heard = time.time(), len(events)
        wanted = edits.make()
        for k, what in wanted.items():
            expected[k][what] += 1
        deadline = time.monotonic() + SETTLE
        while time.monotonic() < deadline and not (
                len(events) > heard and all(seen[k][w] > before[k][w] for k, w in wanted.items())):
            wait(20)
        if len(events) > heard:
            latencies.append(1000 * (events[heard] - at))
        wait(random.uniform(50, 500))  # sometimes while a tab still reloads
        for k in range(tabs):
            for w in ("reload", "swap"):
                got, want = seen[k][w] - before[k][w], (1 if wanted.get(k) == w else 0)
                lost[k] += max(0, want - got)
                extra[k] += max(0, got - want)
                edits.wrong[edits.last][0] += max(0, want - got)
                edits.wrong[edits.last][1] += max(0, got - want)
                if got != want and len(odd) < 30:
                    odd.append(f"{edits.last} -> page{k} {w} {got}/{want}: {' | '.join(seen[k].get('said', []))[:300]}")
    wait(2000)
    sample(stack, rows, t0)
    for line in odd:
        print("odd:", line)
    return report(minutes, edits, tabs, sockets, counts, seen, expected, lost, extra, latencies, rows)


def report(minutes, edits, tabs, sockets, counts, seen, expected, lost, extra, latencies, rows):
    kinds = ", ".join(f"{k} {n}" for k, n in edits.done.items() if n)
    print(f"soak: {minutes:g} min, {edits.n} edits ({kinds}); {tabs} tabs; {sockets} churning sockets "
          f"({counts['connected']} connections, {counts['failed']} failed: {counts.get('why', {})})")
    print(f"{'tab':<12} {'reloads want/got':>17} {'swaps want/got':>15} {'lost':>5} {'extra':>6} {'missed':>7}")
    for k in range(tabs):
        e, s = expected[k], seen[k]
        print(f"page{k}.html {e['reload']:>8}/{s['reload']:<8} {e['swap']:>7}/{s['swap']:<7} "
              f"{lost[k]:>5} {extra[k]:>6} {s['missed']:>7}")
    wrong = [f"{kind} {lo}/{ex}" for kind, (lo, ex) in edits.wrong.items() if lo or ex]
    if wrong:
        print("lost/extra after: " + ", ".join(wrong))
    if latencies:
        ordered = sorted(latencies)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        print(f"save -> broadcast (ms): median {statistics.median(ordered):.0f}, p99 {p99:.0f}, "
              f"max {ordered[-1]:.0f}, n {len(ordered)}")
    print(f"{'process':<12} {'RSS MB start/end':>17} {'MB/min':>7} {'files':>9} {'/min':>6} {'threads':>9} {'/min':>6}")
    figures = {"edits": edits.n, "kinds": edits.done, "wrong_after": edits.wrong, "lost": lost, "extra": extra,
               "latency_ms": latencies, "sockets": counts, "processes": {}}
    for name in sorted({r[1] for r in rows}):
        mine = [r for r in rows if r[1] == name]
        late = [r for r in mine if r[0] >= mine[-1][0] / 5] or mine
        fig = {what: (mine[0][i], mine[-1][i], slope([(r[0], r[i]) for r in late]))
               for i, what in ((2, "rss_mb"), (3, "files"), (4, "threads"))}
        figures["processes"][name] = fig
        (m0, m1, ms), (f0, f1, fs), (t0, t1, ts) = fig["rss_mb"], fig["files"], fig["threads"]
        print(f"{name:<12} {m0:>8.1f}/{m1:<8.1f} {ms:>7.2f} {f0:>4}/{f1:<4} {fs:>6.2f} {t0:>4}/{t1:<4} {ts:>6.2f}")
    return figures
