"""Chromium, Firefox and WebKit, driven the same small way: a ``Tab`` opens a
URL, evaluates a JavaScript expression and waits for one to be true. The
browser matrix is written once against it; no engine is downloaded.

- Chromium: Playwright with Debian's ``chromium``.
- Firefox: ``puppeteer-core`` (npm, tests/node) over WebDriver BiDi with
  Debian's ``firefox-esr``, through tests/node/firefox.mjs (JSON lines).
- WebKit: Selenium's WebKitGTK driver with Debian's ``WebKitWebDriver`` and
  ``MiniBrowser --automation``, on an Xvfb screen of its own.
"""

import glob
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

NODE = Path(__file__).with_name("node")
ENGINES = ("chromium", "firefox", "webkit")


class EngineError(Exception):
    """A call the browser refused (often: the page was navigating)."""


class Tab:
    """One browser tab. Engines implement goto, evaluate and close; a call the
    browser refuses raises EngineError, whatever the engine."""

    def wait_for(self, expr, seconds):
        """Poll ``expr`` until it is truthy; a navigation under way is waited out."""
        end, error = time.monotonic() + seconds, None
        while time.monotonic() < end:
            try:
                if self.evaluate(expr):
                    return
            except EngineError as exc:
                error = exc
            threading.Event().wait(0.01)
        raise AssertionError(f"not true after {seconds:.1f}s: {expr}" + (f" (last error: {error})" if error else ""))


class PlaywrightTab(Tab):
    def __init__(self, browser):
        self.context = browser.new_context(ignore_https_errors=True)
        self.page = self.context.new_page()

    def goto(self, url):
        from playwright.sync_api import Error

        try:
            self.page.goto(url)
        except Error as exc:
            raise EngineError(str(exc)) from None

    def evaluate(self, expr):
        from playwright.sync_api import Error

        try:
            return self.page.evaluate(expr)
        except Error as exc:
            raise EngineError(str(exc)) from None

    def close(self):
        self.context.close()


class Chromium:
    """Tabs of a Playwright Chromium (the suite's: one Playwright per thread)."""

    def __init__(self, browser):
        self.browser = browser

    def tab(self):
        return PlaywrightTab(self.browser)

    def close(self):
        pass  # the suite's browser fixture closes it


class BridgeTab(Tab):
    def __init__(self, bridge):
        self.bridge, self.id = bridge, bridge.call("open")

    def goto(self, url):
        self.bridge.call("goto", tab=self.id, url=url)

    def evaluate(self, expr):
        return self.bridge.call("evaluate", tab=self.id, expr=expr)

    def close(self):
        self.bridge.call("close", tab=self.id)


class Firefox:
    """Firefox behind tests/node/firefox.mjs: one request, one answer, in order."""

    def __init__(self, timeout=30.0):
        self.timeout, self.last = timeout, 0
        self.proc = subprocess.Popen(["node", str(NODE / "firefox.mjs"), shutil.which("firefox-esr")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     start_new_session=True, env={**os.environ, "PUPPETEER_SKIP_DOWNLOAD": "1"})
        self.answers = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.version = self.receive()["ready"]

    def _read(self):
        for line in self.proc.stdout:
            self.answers.put(json.loads(line))
        self.answers.put(None)  # the driver exited

    def receive(self):
        try:
            answer = self.answers.get(timeout=self.timeout)
        except queue.Empty:
            raise EngineError(f"firefox did not answer within {self.timeout:.0f}s") from None
        if answer is None:
            raise EngineError(f"firefox's driver exited ({self.proc.wait()})")
        return answer

    def call(self, op, **args):
        self.last += 1
        self.proc.stdin.write(json.dumps({"id": self.last, "op": op, **args}) + "\n")
        self.proc.stdin.flush()
        answer = self.receive()
        if "error" in answer:
            raise EngineError(answer["error"])
        return answer["value"]

    def tab(self):
        return BridgeTab(self)

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()


class SeleniumTab(Tab):
    def __init__(self, driver):
        self.driver = driver
        driver.switch_to.new_window("window")  # a window of its own: visible (a new tab is hidden)
        self.handle = driver.current_window_handle

    def goto(self, url):
        from selenium.common.exceptions import WebDriverException

        try:
            self.driver.switch_to.window(self.handle)
            self.driver.get(url)
        except WebDriverException as exc:
            raise EngineError(exc.msg) from None

    def evaluate(self, expr):
        from selenium.common.exceptions import WebDriverException

        try:
            self.driver.switch_to.window(self.handle)
            return self.driver.execute_script(f"return ({expr});")
        except WebDriverException as exc:
            raise EngineError(exc.msg) from None

    def close(self):
        self.driver.switch_to.window(self.handle)
        self.driver.close()
        self.driver.switch_to.window(self.driver.window_handles[0])


class WebKit:
    """MiniBrowser under its own Xvfb screen (it has no headless mode)."""

    def __init__(self):
        from selenium import webdriver
        from selenium.webdriver.webkitgtk.options import Options
        from selenium.webdriver.webkitgtk.service import Service

        self.xvfb = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     start_new_session=True)
        display = ":" + self.xvfb.stdout.readline().strip()
        options = Options()
        options.binary_location = glob.glob("/usr/lib/*/webkit2gtk-4.*/MiniBrowser")[0]
        options.add_argument("--automation")
        options.accept_insecure_certs = True
        service = Service(executable_path=shutil.which("WebKitWebDriver"), service_args=["--host=127.0.0.1"],
                          env={**os.environ, "DISPLAY": display})
        self.driver = webdriver.WebKitGTK(options=options, service=service)

    def tab(self):
        return SeleniumTab(self.driver)

    def close(self):
        try:
            self.driver.quit()
        finally:
            self.xvfb.terminate()
            self.xvfb.wait()


def missing(engine):
    """Why ``engine`` cannot run here (what to install), or None."""
    needs = {"chromium": ["chromium"], "firefox": ["firefox-esr", "node"], "webkit": ["WebKitWebDriver", "Xvfb"]}
    absent = [tool for tool in needs[engine] if not shutil.which(tool)]
    if engine == "firefox" and not (NODE / "node_modules" / "puppeteer-core").is_dir():
        absent.append("tests/node/node_modules (npm ci --prefix tests/node)")
    return ", ".join(absent) or None


def launch(engine, chromium=None):
    """A running ``engine``; Chromium wraps the Playwright browser given."""
    return Chromium(chromium) if engine == "chromium" else {"firefox": Firefox, "webkit": WebKit}[engine]()
