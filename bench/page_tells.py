"""The "page tells you" rows of bench/run.py (issue 35), in Chromium:

- an uncaught error -> its toast is on the page and painted (ms), on a fresh
  page each time (overlay.js is loaded then: the cost a person sees first);
- with --follow, a page saved that no tab shows -> the tab focused last
  shows it (ms, from the write to the new page's DOMContentLoaded).
"""

import tempfile
import time
from pathlib import Path

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1 id="title">{title}</h1><script src="app.js"></script></body></html>"""
APP = "function broken() { null.boom(); }\nwindow.fail = () => setTimeout(broken);\n"
SHOWN = "addEventListener('DOMContentLoaded', () => { window.shownAt = Date.now(); });"
HELLO = "() => { try { return !!JSON.parse(sessionStorage.getItem('sigreload')).boot } catch { return false } }"
TOAST = """() => new Promise((resolve) => {
  const t0 = performance.now(), painted = () => requestAnimationFrame(() => resolve(performance.now() - t0));
  new MutationObserver((_, o) => {
    if (document.querySelector("sigreload-toast")) { o.disconnect(); painted(); }
  }).observe(document.documentElement, { childList: true });
  fail();
})"""


def site(root):
    root.mkdir()
    (root / "index.html").write_text(PAGE.format(title="home"))
    (root / "app.js").write_text(APP)


def toast_latency(page, url, times):
    out = []
    for _ in range(times):
        page.goto(url)
        page.wait_for_function(HELLO)
        out.append(page.evaluate(TOAST))
    return out


def follow_latency(page, url, root, write, times):
    out = []
    page.goto(url)
    page.wait_for_function(HELLO)
    for i in range(times):
        page.evaluate("dispatchEvent(new Event('focus'))")
        page.wait_for_timeout(150)  # the focus message, then a quiet machine
        start = time.time()
        with page.expect_event("load"):
            write(root / f"p{i}.html", PAGE.format(title=f"p{i}"))
        page.wait_for_function(HELLO)
        out.append(page.evaluate("window.shownAt") - 1000 * start)
    return out


def rows(results, pw_browser, stack_class, write, summary, times):
    """Fill ``results`` with the two rows (``stack_class``: run.py's Stack)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "site"
        site(root)
        stack = stack_class(root, ["--follow"])
        context = pw_browser.new_context()
        try:
            page = context.new_page()
            page.add_init_script(SHOWN)
            results["page tells: error -> toast painted, first on a page (ms)"] = summary(
                toast_latency(page, stack.url, times))
            results["page tells: --follow, save -> followed page shown (ms)"] = summary(
                follow_latency(page, stack.url, root, write, times))
        finally:
            context.close()
            stack.stop()
