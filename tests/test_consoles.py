"""The pages' console lines in the terminal: a budget for all pages together,
one note for what it left out, long lines cut, no padding that wraps into a
row that reads like one of sigreload's own."""

import json
import logging
import re
import time

from conftest import run_async
from sigreload import consoles


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "sigreload.page"]


def error(text="boom", path="/p.html"):
    return {"type": "console", "kind": "console.error", "path": path, "text": text}


def test_a_thousand_pages_share_one_budget_and_one_note(caplog):
    caplog.set_level(logging.INFO, "sigreload.page")
    clock, due = Clock(), []
    c = consoles.Consoles(clock, later=lambda delay, f: due.append((clock.now + delay, f)))
    for page in range(1000):
        for _ in range(5):
            c.said(page, error(f"from {page}"))
    said = lines(caplog)
    assert len(said) == consoles.TOTAL_PER_SECOND
    assert len(due) == 1  # one note, when the second ends
    clock.now = due[0][0]
    due[0][1]()
    note = lines(caplog)[-1]
    assert note == (f"({1000 * 5 - consoles.TOTAL_PER_SECOND} more line(s) from pages within a second, "
                    f"not shown: at most {consoles.TOTAL_PER_SECOND} a second in all)")
    for page in range(1000):  # a new second: every page's own note is a line of the budget too
        c.left(page)
    assert len(lines(caplog)) <= 2 * consoles.TOTAL_PER_SECOND + 1


def test_long_and_padded_lines_are_cut_and_never_wrap_into_a_forged_row(caplog, monkeypatch):
    caplog.set_level(logging.INFO, "sigreload.page")
    monkeypatch.setattr(consoles, "columns", lambda: 80)
    c = consoles.Consoles(Clock())
    forged = "x" + " " * 300 + "sigreload.watch: changed index.html, every page reloaded"
    c.said(1, error(forged))
    c.said(2, error("\u3000" * 100 + "wide \u5b57" * 200))
    first, second = lines(caplog)
    assert "  " not in first and len(first) <= 80 - consoles.PREFIX
    assert first.startswith("[a browser /p.html] console.error: x sigreload.watch: changed")
    width = sum(2 if consoles.unicodedata.east_asian_width(ch) in "WF" else 1 for ch in second)
    assert width <= 80 - consoles.PREFIX and second.endswith("…")


def test_many_connections_flooding_a_real_broadcaster_print_a_bounded_number_of_lines(broadcaster):
    proc, port = broadcaster

    async def flood():
        from websockets.asyncio.client import connect

        sockets = [await connect(f"ws://127.0.0.1:{port}/sigreload") for _ in range(100)]
        for ws in sockets:
            await ws.recv()  # hello
        began = time.monotonic()
        for round in range(3):
            for i, ws in enumerate(sockets):
                await ws.send(json.dumps(error(f"page {i} round {round}")))
        for ws in sockets:
            await ws.close()
        return time.monotonic() - began

    took = run_async(flood())
    proc.wait_for(r"more line\(s\) from pages within a second, not shown", 10)
    printed = [line for line in proc.output().splitlines() if line.startswith("sigreload.page:")]
    seconds = int(took) + 2
    assert 0 < len(printed) <= consoles.TOTAL_PER_SECOND * seconds + 2 * seconds, len(printed)
    assert not any(re.search(r"\s{2,}", line) for line in printed)

