"""sigreload's benchmark: measures, never asserts.

    python3 bench/run.py [--edits 20] [--big 10000] [--json bench/results/latest.json]
    python3 bench/run.py --soak MINUTES [--tabs 6] [--sockets 150]   (bench/soak.py)

Builds a 10-file site and a 10,000-file tree in a temporary folder, runs the
real processes the way `r` does (python -m sigreload, which starts all three),
drives headless Chromium (Debian's, through Playwright) and prints one table:
each figure's median, 90th percentile and maximum, with the core count.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sigreload import process_life  # noqa: E402

sys.path.insert(0, str(HERE.parent / "tests"))
from apps import free_port, save as write  # noqa: E402

SNIPPET = (HERE.parent / "snippet" / "reload.js").read_text()
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="style.css"></head><body><h1 id="title">{title}</h1>
<script src="app.js"></script><script data-port="{port}">{snippet}</script></body></html>"""
SHOWN = "addEventListener('DOMContentLoaded', () => { window.shownAt = Date.now(); });"


def build_site(root, files, ws_port, page=PAGE, snippet=SNIPPET):
    """index.html, style.css, app.js, and ``files`` more in folders of 100; the
    page has ``snippet`` pasted (empty: our server inserts it)."""
    root.mkdir(parents=True)
    write(root / "index.html", page.format(title="v0", port=ws_port, snippet=snippet))
    write(root / "style.css", "h1 { color: rgb(0, 0, 0); }")
    write(root / "app.js", "window.appVersion = 0;")
    old = time.time() - 86400  # a tree nobody touched today, like a real one
    for i in range(max(0, files - 3)):
        folder = root / f"d{i // 100:03d}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{i}.txt").write_text(str(i))
        os.utime(folder / f"f{i}.txt", (old, old))


@contextlib.contextmanager
def built_site(files, page=PAGE, snippet=SNIPPET):
    """(site, the WebSocket port its pages name): ``build_site`` in a folder removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        site, ws_port = Path(tmp) / "site", free_port()
        build_site(site, files, ws_port, page, snippet)  # the page's snippet talks to this port
        yield site, ws_port


KEPT_LINES = 2000  # a Stack's last lines of output, kept to be shown


class Stack:
    """python -m sigreload (as `r` runs it) on free ports, and its three children."""

    def __init__(self, root, extra=(), ws_port=None, env=None):
        self.http, self.ws = free_port(), ws_port or free_port()
        self.started = time.monotonic()
        argv = [*process_life.module_argv("sigreload"), str(root),
                "--port", str(self.http), "--ws-port", str(self.ws), *extra]
        self.proc = process_life.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        self.log = []
        ready = (("serving", "proxying"), ("ready on",), ("watching",))
        for line in self.proc.stdout:
            self.log.append(line.decode(errors="replace").rstrip())
            if all(any(k in line for line in self.log for k in keys) for keys in ready):
                break
        self.ready_after = time.monotonic() - self.started
        self.url = f"http://127.0.0.1:{self.http}/"
        # The rest read as it comes: a full pipe (64 KB, about 500 edits' lines)
        # would block every process at its next line, and every page with it.
        threading.Thread(target=self.drain, daemon=True).start()

    def drain(self):
        for line in self.proc.stdout:
            self.log.append(line.decode(errors="replace").rstrip())
            del self.log[:-KEPT_LINES]

    def processes(self):
        main = psutil.Process(self.proc.pid)
        return [main] + main.children(recursive=True)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def cpu_seconds(procs):
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def switches(procs):
    """{thread id: context switches} of every thread of ``procs`` (Linux): each is a wake-up."""
    out = {}
    for p in procs:
        try:
            for t in p.threads():
                n = psutil.Process(t.id).num_ctx_switches()
                out[t.id] = n.voluntary + n.involuntary
        except psutil.Error:
            pass
    return out


def idle(stack, seconds):
    """(Percent of one core, wake-ups a second) of every sigreload process over ``seconds``."""
    procs = stack.processes()
    cpu, woke = cpu_seconds(procs), switches(procs)
    time.sleep(seconds)  # idle is what is measured
    woken = sum(n - woke.get(tid, 0) for tid, n in switches(procs).items())  # threads alive at the end
    return 100 * (cpu_seconds(procs) - cpu) / seconds, woken / seconds


def record_idle(results, name, stack, seconds):
    cpu, woke = idle(stack, seconds)
    results[f"{name}: idle CPU, % of a core"] = summary([cpu])
    results[f"{name}: idle wake-ups a second, all threads"] = summary([woke])


def rss_mb(stack):
    return sum(p.memory_info().rss for p in stack.processes()) / 2**20


async def ws_latency(stack, edits):
    """Each (path, text) written -> a snippet client has the event (ms)."""
    from websockets.asyncio.client import connect

    out = []
    async with connect(f"ws://127.0.0.1:{stack.ws}/sigreload") as ws:
        await ws.recv()
        for path, text in edits:
            start = time.time()
            write(path, text)
            while json.loads(await ws.recv())["type"] not in ("reload", "css"):
                pass
            out.append(1000 * (time.time() - start))
            # Let the watcher's burst window close; the jitter spreads the next write over a
            # whole tick (a fixed pause phase-locks the writes to the watcher's 50 ms ticks).
            await asyncio.sleep(0.15 + random.uniform(0, 0.05))
    return out


def page_edits(stack, site, count, tag="ws"):
    return [(site / "index.html", PAGE.format(title=f"{tag}{i}", port=stack.ws, snippet=SNIPPET))
            for i in range(count)]


def page_latency(page, stack, site, kind, edits, url=None, snippet=SNIPPET):
    """Write -> the page shows it (ms): a full reload for html/js, a swap for css;
    the page at ``url`` (the stack's own by default), with ``snippet`` pasted."""
    out = []
    page.goto(url or stack.url)
    page.wait_for_function("window.shownAt")
    page.wait_for_timeout(300)
    for i in range(1, edits + 1):
        if kind == "css":
            color = f"rgb({i}, 0, 0)"
            page.evaluate("""(color) => { window.swapped = new Promise((done) => {
                const h1 = document.querySelector('h1');
                const tick = () => getComputedStyle(h1).color === color
                    ? done(Date.now()) : requestAnimationFrame(tick);
                tick(); }); }""", color)
            start = time.time()
            write(site / "style.css", f"h1 {{ color: {color}; }}")
            out.append(page.evaluate("window.swapped") - 1000 * start)
        else:
            start = time.time()
            with page.expect_event("load"):
                if kind == "html":
                    write(site / "index.html", PAGE.format(title=f"v{i}", port=stack.ws, snippet=snippet))
                else:
                    write(site / "app.js", f"window.appVersion = {i};")
            shown = page.evaluate("window.shownAt")
            out.append(shown - 1000 * start)
        page.wait_for_timeout(150)
    return out


def burst(page, stack, site, files=500):
    """Rewrite ``files`` files at once: page loads seen, and the last one's delay (ms)."""
    page.goto(stack.url)
    page.wait_for_function("window.shownAt")
    page.wait_for_timeout(500)
    loads = []
    page.on("load", lambda _: loads.append(time.time()))
    targets = sorted(site.rglob("*.txt"))[:files - 1]
    for n, path in enumerate(targets):
        path.write_text(f"burst {n}")
    write(site / "index.html", PAGE.format(title="burst", port=stack.ws, snippet=SNIPPET))
    last_write = time.time()
    page.wait_for_timeout(2000)
    return len(loads), (1000 * (loads[-1] - last_write) if loads else None)


async def many_clients(port, pid, count=500, rounds=5):
    """Signal -> all ``count`` clients have the message (ms), ``rounds`` times."""
    from websockets.asyncio.client import connect

    clients = [await connect(f"ws://127.0.0.1:{port}/") for _ in range(count)]
    out = []
    for _ in range(rounds):
        start = time.time()
        os.kill(pid, signal.SIGUSR1)
        await asyncio.gather(*(c.recv() for c in clients))
        out.append(1000 * (time.time() - start))
        await asyncio.sleep(0.2)
    for c in clients:
        await c.close()
    return out


def run_async(coro):
    """asyncio.run in a worker thread (Playwright's sync API owns this thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def wake_cost(times=30):
    """CPU (ms) one wake-up of a sleeping thread costs here: the machine's state.
    About 0.15 ms on this VM in a normal hour, 0.5 to 3 ms in its slow ones
    (the host evicts our caches while we sleep), when every CPU figure inflates."""
    event, started = threading.Event(), time.process_time()
    for _ in range(times):
        event.wait(0.1)
    return 1000 * (time.process_time() - started) / times


def summary(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
    return {"median": statistics.median(values), "p90": p90, "max": values[-1], "n": len(values)}


def page_rows(results, name, stack, site, pw_browser, edits):
    """An open page: write -> it shows the edit (ms), for its HTML and its stylesheet."""
    context = pw_browser.new_context()
    page = context.new_page()
    page.add_init_script(SHOWN)
    for kind in ("html", "css"):
        results[f"{name}: write -> page, {kind} (ms)"] = summary(page_latency(page, stack, site, kind, edits))
    context.close()


def poll_mode(args, results, pw_browser):
    """--poll on the big tree: idle CPU, a recently edited file, a cold file (ms), bursts."""
    with built_site(args.big) as (site, ws_port):
        stack = Stack(site, ["--poll"], ws_port)
        try:
            name = f"{args.big} files, --poll"
            record_idle(results, name, stack, args.idle)
            edit_rows(results, name, stack, site, args.big, args.edits, args.edits)
            page_rows(results, name, stack, site, pw_browser, args.edits)
            results[f"{name}: memory RSS (MB)"] = summary([rss_mb(stack)])
            burst_rows(results, name, stack, site)
        finally:
            stack.stop()
        full_tree_poller(results, f"{args.big} files", site, args.big, args, args.edits)


def burst_rows(results, name, stack, site, times=3):
    """Three 500-file bursts, the page among them: messages to a plain client, and when the last came."""
    bursts = [run_async(plain_burst(stack, site)) for _ in range(times)]
    results[f"{name}: 500-file burst, messages to a plain client"] = summary([n for n, _ in bursts])
    results[f"{name}: 500-file burst, last message after last write (ms)"] = summary(
        [delay for _, delay in bursts if delay is not None])


def edit_rows(results, name, stack, site, files, hot_edits, cold_edits, hot="recently edited file", skip=0):
    """Edits of the page (``hot``) and of cold files (from the ``skip``-th on: ones
    no earlier run edited) -> a snippet client (ms)."""
    latency = run_async(ws_latency(stack, page_edits(stack, site, hot_edits)))
    results[f"{name}: {hot} -> ws client (ms)"] = summary(latency)
    cold = sorted(site.rglob("*.txt"))[skip:: max(1, files // cold_edits)][:cold_edits]
    edits = [(path, "cold edit") for path in cold]
    results[f"{name}: cold file -> ws client (ms)"] = summary(run_async(ws_latency(stack, edits)))


async def plain_burst(stack, site, files=500, listen=3.0):
    """499 cold files, then the page, rewritten at once: (messages a plain client got
    within ``listen`` seconds, the last one's delay after the last write in ms)."""
    from websockets.asyncio.client import connect

    got = []
    async with connect(f"ws://127.0.0.1:{stack.ws}/") as ws:
        await asyncio.sleep(0.5)
        targets = sorted(site.rglob("*.txt"))[:: max(1, len(list(site.rglob("*.txt"))) // (files - 1))]
        for n, path in enumerate(targets[: files - 1]):
            path.write_text(f"burst {n} {time.time()}")
        write(site / "index.html", PAGE.format(title=f"burst {time.time()}", port=stack.ws, snippet=SNIPPET))
        last_write = time.time()
        try:
            async with asyncio.timeout(listen):
                while True:
                    await ws.recv()
                    got.append(time.time())
        except TimeoutError:
            pass
    return len(got), (1000 * (got[-1] - last_write) if got else None)


# The yardstick for --poll, run on the same tree in the same run: a plain poller
# that stats every file every 0.1 s (chokidar's polling interval), as a tool
# without a budget does.
FULL_TREE_POLLER = """import os, sys, time
def snap(root):
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            try:
                st = os.stat(os.path.join(folder, name))
                out[os.path.join(folder, name)] = (st.st_mtime_ns, st.st_size, st.st_ctime_ns)
            except OSError:
                pass
    return out
old = snap(sys.argv[1])
print("ready", flush=True)
while True:
    time.sleep(0.1)
    new = snap(sys.argv[1])
    for path in sorted(p for p in new.keys() | old.keys() if new.get(p) != old.get(p)):
        print(path, flush=True)
    old = new
"""


def full_tree_poller(results, name, site, files, args, cold_edits):
    """The yardstick's idle CPU and cold-file latency, on ``site``, in this run."""
    import queue

    proc = subprocess.Popen([sys.executable, "-u", "-c", FULL_TREE_POLLER, str(site)], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.strip()) for line in proc.stdout], daemon=True).start()
    try:
        lines.get(timeout=120)  # ready
        polled = psutil.Process(proc.pid)
        cpu = cpu_seconds([polled])
        time.sleep(args.idle)
        results[f"{name}, full-tree poller: idle CPU, % of a core"] = summary(
            [100 * (cpu_seconds([polled]) - cpu) / args.idle])
        out = []
        for path in sorted(site.rglob("*.txt"))[2 :: max(1, files // cold_edits)][:cold_edits]:
            start = time.time()
            path.write_text(f"yardstick {start}")
            while lines.get(timeout=120) != str(path):
                pass
            out.append(1000 * (time.time() - start))
        results[f"{name}, full-tree poller: cold file -> noticed (ms)"] = summary(out)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def huge_tree(args, results, pw_browser):
    """``args.huge`` files, with notifications and with --poll: start-up, memory, idle, edits."""
    with built_site(args.huge) as (site, ws_port):
        for skip, (mode, extra) in enumerate((("", []), (", --poll", ["--poll"]))):
            name = f"{args.huge} files{mode}"
            stack = Stack(site, extra, ws_port)
            try:
                results[f"{name}: ready after start (ms)"] = summary([1000 * stack.ready_after])
                results[f"{name}: memory RSS (MB)"] = summary([rss_mb(stack)])
                record_idle(results, name, stack, args.idle)
                for path in ("", "style.css", "app.js"):  # a page open: what it uses is known
                    urllib.request.urlopen(stack.url + path).read()
                edit_rows(results, name, stack, site, args.huge, args.edits, 6, hot="file a page uses", skip=skip)
                page_rows(results, name, stack, site, pw_browser, args.edits)
                burst_rows(results, name, stack, site)
            finally:
                stack.stop()
        full_tree_poller(results, f"{args.huge} files", site, args.huge, args, 6)


def r_startup(results, runs=5):
    """`r` on the demo copy: start -> page reachable and broadcaster ready (ms)."""
    out = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(HERE.parent / "snippet", Path(tmp) / "site")
            http, ws = free_port(), free_port()
            env = {**os.environ, "ROOT": str(Path(tmp) / "site"), "PORT": str(http), "WS_PORT": str(ws)}
            start = time.monotonic()
            proc = subprocess.Popen(["r"], cwd=HERE.parent, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            seen = ""
            while "ready on" not in seen or "serving" not in seen:
                seen += proc.stdout.readline().decode(errors="replace")
            urllib.request.urlopen(f"http://127.0.0.1:{http}/").read()
            out.append(1000 * (time.monotonic() - start))
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    results["r: start -> demo page reachable, broadcaster ready (ms)"] = summary(out)


def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=chromium, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"])
    return pw, b


def run_tree(name, files, args, results, pw_browser, watcher_args=()):
    with built_site(files) as (site, ws_port):
        stack = Stack(site, watcher_args, ws_port)
        try:
            results[f"{name}: ready after start (ms)"] = summary([1000 * stack.ready_after])
            latency = run_async(ws_latency(stack, page_edits(stack, site, args.edits)))
            results[f"{name}: write -> ws client (ms)"] = summary(latency)
            context = pw_browser.new_context()
            page = context.new_page()
            page.add_init_script(SHOWN)
            for kind in ("html", "css", "js"):
                results[f"{name}: write -> page, {kind} (ms)"] = summary(
                    page_latency(page, stack, site, kind, args.edits))
            context.close()
            record_idle(results, name, stack, args.idle)
            results[f"{name}: memory RSS (MB)"] = summary([rss_mb(stack)])
            if files >= 500:
                context = pw_browser.new_context()
                page = context.new_page()
                page.add_init_script(SHOWN)
                loads, delay = burst(page, stack, site)
                results[f"{name}: 500-file burst, page loads"] = summary([loads])
                results[f"{name}: 500-file burst, last load after last write (ms)"] = summary([delay])
                context.close()
        finally:
            stack.stop()


def device_rows(results, pw, pw_browser, edits):
    """An edit seen by a page reached other ways than http://127.0.0.1 (the
    snippet inserted by our server, its socket on the page's origin): over
    --https, through a one-port forwarder (as SSH -L), and on a second host
    (a network namespace: root only), beside the same page on loopback."""
    from apps import Forwarder, NetworkHost

    def rows(name, stack, url, browser=pw_browser, **context):
        context = browser.new_context(**context)
        page = context.new_page()
        page.add_init_script(SHOWN)
        for kind in ("html", "css"):
            results[f"10 files, {name}: write -> page, {kind} (ms)"] = summary(
                page_latency(page, stack, site, kind, edits, url, snippet=""))
        context.close()

    with built_site(10, snippet="") as (site, _), tempfile.TemporaryDirectory() as cache:
        stack = Stack(site)
        try:
            rows("snippet inserted, loopback", stack, stack.url)
            forwarder = Forwarder(stack.http)
            try:
                rows("through a one-port forwarder", stack, f"http://127.0.0.1:{forwarder.port}/")
            finally:
                forwarder.close()
        finally:
            stack.stop()
        stack = Stack(site, ["--https"], env={**os.environ, "XDG_CACHE_HOME": cache})
        try:
            rows("--https", stack, f"https://127.0.0.1:{stack.http}/", ignore_https_errors=True)
        finally:
            stack.stop()
        if os.geteuid() != 0 or not shutil.which("ip"):
            print("bench: not root, or no ip (iproute2): the LAN host rows are skipped")
            return
        host, wrapper = NetworkHost(os.getpid() % 10000), Path(cache) / "chromium-there"
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {host.name} {shutil.which("chromium")} "$@"\n')
        wrapper.chmod(0o755)
        try:
            host.make()
            there = pw.chromium.launch(executable_path=str(wrapper), args=["--no-sandbox", "--disable-gpu"])
            stack = Stack(site, ["--lan"])
            try:
                rows("a phone on the LAN (a second host)", stack, f"http://{host.here}:{stack.http}/", there)
            finally:
                stack.stop()
                there.close()
        finally:
            host.delete()


def listening(port):
    """Whether something accepts connections on loopback ``port``."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def engine_rows(results, pw_browser, edits):
    """Per engine, our server and stock http.server: a write -> the page shows it
    (HTML and script: a reload; CSS: a swap)."""
    import engines

    for name in engines.ENGINES:
        if engines.missing(name):
            print(f"bench: {name} skipped (missing: {engines.missing(name)})", file=sys.stderr)
            continue
        driver = engines.launch(name, pw_browser)
        try:
            for server in ("ours", "stock"):
                for kind, ms in engine_latency(driver, server, edits).items():
                    results[f"{name}, {server} server: write -> page, {kind} (ms)"] = summary(ms)
            for kind, ms in engine_latency(driver, "ours", edits, morph=True).items():
                results[f"{name}, ours server, --morph: write -> page, {kind} in place (ms)"] = summary(ms)
        finally:
            driver.close()


def engine_latency(driver, server, edits, morph=False):
    """{kind: [ms]} for ``edits`` edits of each kind in one tab of ``driver``;
    with ``morph``, HTML edits only, applied in place (--morph)."""
    shown = SHOWN.replace("{", "{{").replace("}", "}}")  # the page is a format string
    page = PAGE.replace("<head>", f"<head><script>{shown}</script>")
    with built_site(10, page) as (site, ws_port):
        stack, stock = Stack(site, ("--morph",) * morph, ws_port), None
        url = stack.url
        if server == "stock":
            port = free_port()
            stock = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                                     cwd=site, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            url = f"http://127.0.0.1:{port}/"
            while not listening(port):
                threading.Event().wait(0.02)
        tab = driver.tab()
        out = {"html": []} if morph else {"html": [], "js": [], "css": []}
        try:
            tab.goto(url)
            tab.wait_for("window.shownAt" + " && !!window.Idiomorph" * morph, 10)
            for kind in out:
                for i in range(1, edits + 1):
                    threading.Event().wait(0.15)
                    if morph:  # the same element gets the new text: no load
                        tab.evaluate("""(() => { window.seenAt = 0; const title = document.getElementById('title');
                            const tick = () => title.textContent === 'TEXT' ? (window.seenAt = Date.now())
                                               : setTimeout(tick, 1); tick(); })()""".replace("TEXT", f"v{i}"))
                        start = time.time()
                        write(site / "index.html", page.format(title=f"v{i}", port=ws_port, snippet=SNIPPET))
                        tab.wait_for("window.seenAt", 10)
                        at = tab.evaluate("window.seenAt")
                    elif kind == "css":
                        color = f"rgb({i}, 0, 0)"
                        tab.evaluate("""(() => { window.swappedAt = 0; const h1 = document.querySelector('h1');
                            const tick = () => getComputedStyle(h1).color === 'COLOR' ? (window.swappedAt = Date.now())
                                              : setTimeout(tick, 1); tick(); })()""".replace("COLOR", color))
                        start = time.time()
                        write(site / "style.css", f"h1 {{ color: {color}; }}")
                        tab.wait_for("window.swappedAt", 10)  # a swap, with either server
                        at = tab.evaluate("window.swappedAt")
                    else:
                        start = time.time()
                        if kind == "html":
                            write(site / "index.html", page.format(title=f"v{i}", port=ws_port, snippet=SNIPPET))
                            done = f"document.getElementById('title').textContent === 'v{i}'"
                        else:
                            write(site / "app.js", f"window.appVersion = {i};")
                            done = f"window.appVersion === {i}"
                        tab.wait_for(f"{done} && window.shownAt", 10)
                        at = tab.evaluate("window.shownAt")
                    out[kind].append(at - 1000 * start)
        finally:
            tab.close()
            stack.stop()
            if stock:
                stock.terminate()
                stock.wait()
    return out


def app_servers(results, pw_browser, edits):
    """Each app server behind the proxy: save -> the app answers the new code
    (its own restart, asked directly every 10 ms) and save -> the page shows it."""
    from apps import KINDS, App

    for kind in KINDS:
        started = []

        def start(argv, **kwargs):
            started.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            stdin=subprocess.DEVNULL, start_new_session=True, **kwargs))
            return started[-1]

        with tempfile.TemporaryDirectory() as tmp:
            stack = None
            try:
                app = App(kind, Path(tmp) / "app", start)
                stack = Stack(app.folder, ["--proxy", app.url])
                context = pw_browser.new_context()
                page = context.new_page()
                page.add_init_script(SHOWN)
                page.goto(stack.url)
                page.wait_for_function("window.shownAt")
                restarted, shown, wrong = [], [], 0
                for i in range(1, edits + 1):
                    page.wait_for_timeout(300)
                    start_at = time.time()
                    asked = threading.Thread(target=lambda v=f"v{i}": (app.wait_answers(v, 60),
                                             restarted.append(1000 * (time.time() - start_at))))
                    with page.expect_event("load", timeout=60_000):
                        app.edit(f"v{i}")
                        asked.start()
                    shown.append(page.evaluate("window.shownAt") - 1000 * start_at)
                    wrong += page.locator("#out").inner_text() != f"v{i}"
                    asked.join()  # restarted[i - 1] is this edit's
                context.close()
                results[f"{kind}: save -> app answers the new code (ms)"] = summary(restarted)
                results[f"{kind}: save -> page shows it, proxy (ms)"] = summary(shown)
                results[f"{kind}: app answers -> page shows it (ms)"] = summary(
                    [page - app for page, app in zip(shown, restarted, strict=True)])
                results[f"{kind}: loads that showed old output"] = summary([wrong])
            finally:
                if stack:
                    stack.stop()
                for proc in started:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--big", type=int, default=10_000)
    parser.add_argument("--huge", type=int, default=100_000, help="the biggest tree's files (0: skip it)")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle CPU measurement")
    parser.add_argument("--json", default=str(HERE / "results" / "latest.json"))
    parser.add_argument("--quick", action="store_true", help="the 10-file site only")
    parser.add_argument("--app-edits", type=int, default=10, help="edits per app server (0: none)")
    parser.add_argument("--apps-only", action="store_true", help="only the app servers")
    parser.add_argument("--engines-only", action="store_true", help="only the per-engine rows")
    parser.add_argument("--poll-only", action="store_true", help="only --poll on the big tree and the huge tree")
    parser.add_argument("--devices-only", action="store_true",
                        help="only the pages reached other ways: --https, a forwarder, a second host")
    parser.add_argument("--middleware-only", action="store_true",
                        help="only the middleware: in-process cost, requests/s through uvicorn and Flask's server")
    parser.add_argument("--attacks-only", action="store_true",
                        help="only the attack rows: 300 slow or idle sockets, 3,000 with ulimit -n 1024 (attacks.py)")
    parser.add_argument("--page-only", action="store_true",
                        help="only the page's own rows: error -> toast, --follow's save -> page")
    parser.add_argument("--proxy-only", action="store_true",
                        help="only the proxy: direct, sigreload's and browser-sync's (npm ci --prefix bench/node)")
    parser.add_argument("--soak", type=float, metavar="MINUTES",
                        help="only the soak (bench/soak.py): edits of every kind, tabs, churning sockets")
    parser.add_argument("--tabs", type=int, default=6, help="the soak's Chromium tabs")
    parser.add_argument("--sockets", type=int, default=150, help="the soak's churning WebSocket clients")
    args = parser.parse_args(argv)
    results, woke = {}, [wake_cost()]
    if args.attacks_only:
        import attacks

        attacks.rows(results, summary, free_port)
        return report(args, results, woke)
    if args.middleware_only:  # no browser: it would only load the machine
        import middleware

        middleware.rows(results, free_port, summary)
        return report(args, results, woke)
    pw, pw_browser = browser()
    try:
        if args.soak:
            import soak

            figures = soak.run(args.soak, pw_browser, Stack, args.tabs, args.sockets)
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(figures, indent=2))
            return None
        if args.devices_only:
            device_rows(results, pw, pw_browser, args.edits)
            return report(args, results, woke)
        if args.page_only:
            import page_tells

            page_tells.rows(results, pw_browser, Stack, write, summary, args.edits)
            return report(args, results, woke)
        if args.proxy_only:
            import proxies

            proxies.rows(results, pw_browser, free_port, summary)
            return report(args, results, woke)
        if args.poll_only:
            poll_mode(args, results, pw_browser)
            if args.huge:
                huge_tree(args, results, pw_browser)
            return report(args, results, woke)
        engine_rows(results, pw_browser, args.edits)
        if args.engines_only:
            return report(args, results, woke)
        if args.app_edits:
            app_servers(results, pw_browser, args.app_edits)
        if args.apps_only:
            return report(args, results, woke)
        run_tree("10 files", 10, args, results, pw_browser)
        import save_load

        save_load.rows(results, pw_browser, free_port, summary, args.edits)
        import page_tells

        page_tells.rows(results, pw_browser, Stack, write, summary, args.edits)
        device_rows(results, pw, pw_browser, args.edits)
        if not args.quick:
            run_tree(f"{args.big} files", args.big, args, results, pw_browser)
        with tempfile.TemporaryDirectory() as tmp:
            build_site(Path(tmp) / "s", 10, 0)
            stack = Stack(Path(tmp) / "s")
            pid = next(p.pid for p in stack.processes() if "sigreload.broadcaster" in p.cmdline())
            connection_burst(results, stack)  # first: the crowds below leave the machine busy a while
            broadcaster_rows(results, stack.ws, pid)
            stack.stop()
        import proxies

        proxies.rows(results, pw_browser, free_port, summary)
        import middleware

        middleware.rows(results, free_port, summary)
        import attacks

        attacks.rows(results, summary, free_port)
        if not args.quick:
            poll_mode(args, results, pw_browser)
            if args.huge:
                huge_tree(args, results, pw_browser)
    finally:
        pw_browser.close()
        pw.stop()
    r_startup(results)
    report(args, results, woke)


@contextlib.contextmanager
def seed_broadcaster():
    """The blog post's broadcaster (bench/seed_broadcaster.py), running: (port, pid)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "seed_broadcaster.py")], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PORT": str(port), "HOST": "127.0.0.1"})
    try:
        proc.stdout.readline()  # Running websocket server
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait()


def broadcaster_rows(results, port, pid, rounds=3):
    """Fan-out to 500 plain clients, ours and the blog post's, in turns (ms; and
    the ratio of the medians); then 4,000 clients joining and dropping at once:
    the longest a ping waited meanwhile (how long each broadcaster was blocked)."""
    from apps import crowd

    ours, seeds = [], []
    with seed_broadcaster() as (seed_port, seed_pid):
        for _ in range(rounds):
            ours += run_async(many_clients(port, pid))
            seeds += run_async(many_clients(seed_port, seed_pid))
        results["500 clients: signal -> all have it (ms)"] = summary(ours)
        results["500 clients, the blog post's broadcaster (ms)"] = summary(seeds)
        results["500 clients: ours / the blog post's (median ratio)"] = summary(
            [statistics.median(ours) / statistics.median(seeds)])
        for name, where, path in (("ours", port, "/sigreload"), ("the blog post's", seed_port, "/")):
            joined, dropped = zip(*(run_async(crowd(where, 4000, path=path)) for _ in range(2)), strict=True)
            results[f"4000 clients join at once, {name}: blocked (ms)"] = summary(joined)
            results[f"4000 clients drop at once, {name}: blocked (ms)"] = summary(dropped)


def connection_burst(results, stack, count=100):
    """``count`` new connections to the file server at once, each a GET of the page:
    each one's time (ms), and how many failed (refused, reset, or over 10 s)."""
    import proxies

    took, failed = proxies.at_once(stack.http, count, "/index.html")
    results[f"file server: {count} connections at once, each (ms)"] = summary(took)
    results[f"file server: {count} connections at once, failed"] = summary([float(failed)])


def report(args, results, woke):
    """Print the table (and write the JSON)."""
    woke.append(wake_cost())
    print(f"sigreload benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
          f"a thread wake-up costs {woke[0]:.2f} ms of CPU at the start, {woke[1]:.2f} at the end "
          "(normal here: about 0.15)")
    print(f"{'figure':<58} {'median':>9} {'p90':>9} {'max':>9} {'n':>4}")
    for name, s in results.items():
        if s:
            print(f"{name:<58} {s['median']:>9.1f} {s['p90']:>9.1f} {s['max']:>9.1f} {s['n']:>4}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    figures = {"cores": os.cpu_count(), "wake_up_cpu_ms": woke, "results": results}
    Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
