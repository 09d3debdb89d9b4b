"""Shared fixtures: real processes, real sockets, deadlines scaled by one factor.

SIGRELOAD_TIME_SCALE (default 1) multiplies every deadline. Every process a
test starts is killed with its process group at teardown, and its output is
printed when the test fails.
"""

import asyncio
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, settings

import engines
from apps import free_port, save as write  # noqa: F401 (for the tests)
from sigreload import platforms, process_life

ROOT = Path(__file__).resolve().parent.parent
# The processes, by the names the tests use: each runs by module name, as sigreload starts it.
MODULES = {"sigreload": "sigreload", "http_server": "sigreload.http_server",
           "broadcaster": "sigreload.broadcaster", "watcher": "sigreload.watcher"}

SCALE = float(os.environ.get("SIGRELOAD_TIME_SCALE", "1"))
# A run started under nohup passes SIGHUP ignored to every process it starts, and
# sigreload's processes then outlive their parents on purpose (nohup asked): the
# tests that follow a parent's death failed. The suite starts them as a terminal would.
signal.signal(signal.SIGHUP, signal.SIG_DFL)
# Property-based tests (hypothesis): a short run by default (CI), a long one
# with HYPOTHESIS_PROFILE=long (README: "Tests").
settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=5_000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def deadline(seconds):
    """A deadline ``seconds`` (scaled) from now, as a monotonic time."""
    return time.monotonic() + seconds * SCALE


def until(predicate, seconds, what):
    """Poll ``predicate`` until true; fail naming ``what`` at the (scaled) deadline.

    For states no event announces (a process gone, a port released).
    """
    end, tick = deadline(seconds), threading.Event()
    while not predicate():
        assert time.monotonic() < end, f"{what} (after {seconds * SCALE:.1f}s)"
        tick.wait(0.005)


def running(proc):
    """A psutil.Process alive and not a zombie (exited, its new parent not yet reaping it)."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Proc:
    """A started process whose output lines are collected by a thread."""

    def __init__(self, argv, **kwargs):
        self.argv = argv
        self.popen = process_life.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     cwd=kwargs.pop("cwd", ROOT), **kwargs)
        self.pid = self.popen.pid
        self.lines, self.seen = queue.Queue(), []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.popen.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            self.seen.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern, seconds=10):
        """The first new line matching ``pattern`` (a regex) before the deadline."""
        end = deadline(seconds)
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {seconds * SCALE:.1f}s") from None
            if line is None:
                raise AssertionError(f"process exited ({self.popen.wait()}) before {pattern!r}")
            match = re.search(pattern, line)
            if match:
                return match

    def wait_seen(self, pattern, seconds=10):
        """Like wait_for, but also matches lines already seen (any order)."""
        for line in list(self.seen):
            if re.search(pattern, line):
                return re.search(pattern, line)
        return self.wait_for(pattern, seconds)

    def wait_stack(self, seconds=10):
        """A whole sigreload's start: its watcher watches and its HTTP server listens
        (their lines come in either order; a client sooner is refused)."""
        self.wait_seen("watching", seconds)
        return self.wait_seen(r"sigreload\.http: (serving|proxying) \S+ at ", seconds)

    def exit_code(self, seconds=5):
        return self.popen.wait(timeout=seconds * SCALE)

    def output(self):
        return "\n".join(self.seen)

    def kill(self):
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.failed_call = report.failed


@pytest.fixture
def procs(request):
    """start(argv) -> Proc; everything started is killed and shown on failure."""
    started = []

    def start(argv, **kwargs):
        proc = Proc([str(a) for a in argv], **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
    if getattr(request.node, "failed_call", False):
        for proc in started:
            print(f"--- output of {' '.join(proc.argv)} ---\n{proc.output()}")


def module(name):
    """The command line that runs one of sigreload's processes (see MODULES)."""
    return process_life.module_argv(MODULES[name])


def cli(name, *args):
    """Run one of sigreload's modules to completion: CompletedProcess (text)."""
    return subprocess.run(module(name) + [str(a) for a in args], capture_output=True,
                          text=True, cwd=ROOT, stdin=subprocess.DEVNULL, timeout=30 * SCALE)


@pytest.fixture
def site(tmp_path):
    """A copy of the demo page in a fresh folder."""
    root = tmp_path / "site"
    shutil.copytree(ROOT / "snippet", root)
    return root


@pytest.fixture
def broadcaster(procs):
    """A running broadcaster on a free port: (Proc, port)."""
    proc = procs(module("broadcaster") + ["--port", "0", "-v"])
    port = int(proc.wait_for(r"ready on ws://127\.0\.0\.1:(\d+)").group(1))
    return proc, port


@pytest.fixture
def http_server(procs, site):
    """Our HTTP server on the demo copy: (Proc, base URL)."""
    proc = procs(module("http_server") + [site, "--port", "0"])
    url = proc.wait_for(r"at (http://\S+/)").group(1)
    return proc, url


def client(port, path="/sigreload", **kwargs):
    from websockets.sync.client import connect

    return connect(f"ws://127.0.0.1:{port}{path}", open_timeout=5 * SCALE, **kwargs)


def recv(ws, seconds=5):
    return ws.recv(timeout=seconds * SCALE)


def drain(ws, quiet=0.5):
    """Every message until none comes for ``quiet`` seconds (the absence is what is tested)."""
    seen = []
    while True:
        try:
            seen.append(ws.recv(timeout=quiet * SCALE))
        except TimeoutError:
            return seen


def run_async(coro):
    """asyncio.run in a worker thread: Playwright's sync API owns the main thread's loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture
def watched(procs, broadcaster, site):
    """A broadcaster, a watcher of the demo copy: (broadcaster Proc, watcher Proc, port, site)."""
    proc, port = broadcaster
    w = procs(module("watcher") + [site, "--ws-port", port, "--interval", "0.05"])
    w.wait_for("watching")
    return proc, w, port, site


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HELLO_SEEN = "() => { try { return !!JSON.parse(sessionStorage.getItem('sigreload')).boot } catch { return false } }"


def open_page(page, url):
    """Load ``url`` and wait until the snippet got its hello (the page's own record of it).

    Waiting for the WebSocket frame instead races: it may arrive before the waiter.
    """
    page.goto(url)
    page.wait_for_function(HELLO_SEEN)


@pytest.fixture(scope="session")
def playwright():
    """Playwright, once per session (its sync API runs one instance at a time)."""
    if not CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail("Chromium is required in CI (apt-get install chromium)")
        pytest.skip("no chromium on PATH: apt-get install chromium to run browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright):
    """Headless Debian Chromium through Playwright; never downloads a browser."""
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000 * SCALE)
    yield page
    context.close()


@pytest.fixture(scope="module")
def running_engines():
    """Each engine started once per module, when a test first asks for it (and
    closed after it: idle browsers on two cores would slow the tests after)."""
    running = {}
    yield running
    for engine in running.values():
        engine.close()


@pytest.fixture(params=engines.ENGINES)
def tab(request, running_engines):
    """A fresh tab in Chromium, Firefox and WebKit in turn (CI: all three required)."""
    name = request.param
    why = engines.missing(name)
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI; missing: {why}")
        pytest.skip(f"{name} is not installed here (missing: {why})")
    if name not in running_engines:
        chromium = request.getfixturevalue("browser") if name == "chromium" else None
        running_engines[name] = engines.launch(name, chromium)
    tab = running_engines[name].tab()
    tab.engine, tab.browser = name, running_engines[name]
    yield tab
    tab.close()


# --- Platforms: the portable paths, and browser tests that can be left out -------------------------

BROWSER_FIXTURES = {"page", "browser", "playwright", "tab", "running_engines"}


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: starts a browser (leave them out with -m 'not browser')")
    config.addinivalue_line("markers", "portable_too: runs a second time with the Linux shortcuts off "
                                       f"({platforms.PORTABLE_ENV}=1), as on macOS")


def pytest_collection_modifyitems(items):
    for item in items:
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("portable_too"):
        metafunc.parametrize("platform_paths", ["linux", "portable"], indirect=True)


@pytest.fixture(autouse=True)
def platform_paths(request, monkeypatch):
    """"portable" (tests marked portable_too, their second run): everything the
    test starts, and sigreload's code in the test itself, take the paths that
    macOS takes (platforms.PORTABLE_ENV); set before any other fixture starts a process."""
    which = getattr(request, "param", "linux")
    if which == "portable":
        monkeypatch.setenv(platforms.PORTABLE_ENV, "1")
    return which
