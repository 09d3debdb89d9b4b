"""The product as a person sees it: headless Chromium, the real processes."""

import pytest

from conftest import module, open_page, write


@pytest.fixture
def live(procs, site, broadcaster):
    """Demo copy served by our HTTP server, watched, broadcast: (base URL, site, broadcaster)."""
    proc, port = broadcaster
    watch = procs(module("watcher") + [site, "--ws-port", port, "--interval", "0.05"])
    watch.wait_for("watching")
    http = procs(module("http_server") + [site, "--port", "0", "--inject", port])  # as sigreload runs it
    url = http.wait_for(r"at (http://\S+/)").group(1)
    return url, site, proc


def test_demo_page_reloads_after_an_edit_and_shows_the_new_text(live, page):
    url, site, _ = live
    open_page(page, url)
    html = (site / "index.html").read_text().replace("Hello from sigreload", "Edited by a test")
    with page.expect_event("load"):
        write(site / "index.html", html)
    assert page.locator("#title").inner_text() == "Edited by a test"
