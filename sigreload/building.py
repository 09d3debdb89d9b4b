"""Build, then reload: running the build, reading its output, and telling
what it writes (its products) from what you edit.

The watcher runs the build after a settled burst of changes, then sweeps the
tree at once: what changed while the build ran is the build's own writing
and never a trigger (Sphinx's ``_build/doctrees`` beside ``--output``, a
generated page), except an edit you made meanwhile: then exactly one more
build. Nothing here watches or signals: ``watcher.Notifier`` does.
"""

from __future__ import annotations

import logging
import os
import re
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sigreload import process_life
from sigreload.build_output import Output
from sigreload.watching.signatures import has_entries

TAIL = 8000  # characters of a build's output kept for the pages
ERRORS_MAX = 40  # error lines shown above the log
# "index.rst:5: ERROR: Unknown directive", "ERROR    -  Config value", "x.c:1:2: error: ..."
# (not "0 errors", not "KeyError: ..." inside a traceback's last line: that fails the build anyway)
ERROR_LINE = re.compile(r"(?:^|[\s:(\[])(?:ERROR|Error|error)\b\s*[:\]-]")

WAKE = 0.25  # seconds between two looks at the signals while a build runs
LEFT_OPEN = 1.0  # seconds a build's output is still read after it exited
STOP_GRACE = 1.0  # seconds a stopped build's group has after SIGTERM, before SIGKILL (sigreload waits 1.5 s)

log = logging.getLogger("sigreload.watch")


@dataclass
class Result:
    """One run of the build: its exit status, the tail of its output, its error lines;
    ``stopped`` when the watcher stopped it (it neither failed nor succeeded)."""

    status: int
    output: str
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stopped: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 0

    def report(self) -> str:
        """What the pages show: the error lines first, then the whole log."""
        if not self.errors:
            return self.output
        return "\n".join(self.errors) + "\n\n--- the build's output ---\n" + self.output


def error_lines(output: str) -> list[str]:
    """The lines of ``output`` that report an error (at most ERRORS_MAX)."""
    return [line.rstrip() for line in output.splitlines() if ERROR_LINE.search(line)][:ERRORS_MAX]


def start(argv: list[str], cwd: str) -> subprocess.Popen[bytes]:
    """Start the build in ``cwd`` (no shell, no stdin) in a process group of its
    own: Ctrl-C in the terminal reaches the watcher, which stops the build's
    whole group (``stop_group``), not only its first process. Raises OSError."""
    return subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def collect(proc: subprocess.Popen[bytes], argv: list[str], started: float,
            wake: Callable[[], None] = lambda: None) -> Result:
    """Wait for the build ``proc``; its result, output and errors collected.

    The wait wakes every WAKE seconds (and calls ``wake``): in the main
    thread, a stop signal that the kernel gave another thread runs its
    handler only when main runs. Its output is read until its end, or until
    LEFT_OPEN after the build exited: a process it left behind (a daemon, a
    double fork out of its group) may hold the pipe for good."""
    assert proc.stdout is not None
    chunks, exited, fd = [], 0.0, proc.stdout.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            if selector.select(WAKE):
                if not (data := os.read(fd, 1 << 16)):
                    break
                chunks.append(data)
            if proc.poll() is None:
                wake()
            elif not exited:
                exited = time.monotonic()
            elif time.monotonic() - exited >= LEFT_OPEN:
                log.debug("the build exited; a process it started still holds its output: not waited for")
                break
    proc.stdout.close()
    proc.wait()
    output = b"".join(chunks).decode(errors="replace")
    tail = output[-TAIL:] or (f"{argv[0]} exited with status {proc.returncode}" if proc.returncode else "")
    return Result(proc.returncode, tail, error_lines(output), time.monotonic() - started)


def cannot(argv: list[str], exc: OSError) -> Result:
    """The failed result of a build that did not start."""
    text = f"cannot run {argv[0]}: {exc.strerror}"
    return Result(127, text, [text])


def run(argv: list[str], cwd: str) -> Result:
    """Run the build in ``cwd`` (no shell, no stdin), output and errors collected."""
    started = time.monotonic()
    try:
        proc = start(argv, cwd)
    except OSError as exc:
        return cannot(argv, exc)
    return collect(proc, argv, started)


def stop_group(pgid: int, grace: float = STOP_GRACE) -> None:
    """SIGTERM to the process group ``pgid``; SIGKILL to what is left of it
    after ``grace`` seconds. Returns once the group is gone (or killed)."""
    end = time.monotonic() + grace
    try:
        os.killpg(pgid, signal.SIGTERM)
        while time.monotonic() < end:
            time.sleep(0.02)  # only while stopping: no event says a group emptied
            os.killpg(pgid, 0)
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the group is gone


class Products:
    """What the build writes, learned by watching it.

    A change seen while no build ran is an edit: its file is a source, its
    folder a folder of sources. A change seen while a build ran is the
    build's, unless its file is a source, or it lies in a folder of sources
    and is not known as the build's yet: then it is an edit made during the
    build (one more build), and the build's for good if the next build
    writes it too. Everything the first build (at start) writes is the build's.
    """

    def __init__(self) -> None:
        self.paths: set[str] = set()  # written by builds
        self.sources: set[str] = set()  # files edited outside builds
        self.folders: set[str] = set()  # ... and their folders
        self.suspects: set[str] = set()  # written during the last build, taken for edits

    def edited(self, paths: list[str]) -> None:
        """``paths`` changed while no build ran."""
        for path in paths:
            self.sources.add(path)
            self.folders.add(os.path.dirname(path))
            self.paths.discard(path)

    def written(self, paths: list[str], first: bool = False) -> list[str]:
        """``paths`` changed while a build ran: the edits among them (the rest is the build's)."""
        edits = []
        for path in paths:
            ours = path in self.paths or path in self.suspects or os.path.dirname(path) not in self.folders
            if path not in self.sources and (first or ours):
                self.paths.add(path)
            else:
                edits.append(path)
        self.suspects = set(edits) - self.sources
        return edits


class Builder:
    """The build a watcher runs (``argv`` in ``cwd``, else in ``root``): each run said in the
    terminal, what it writes learned (``products``), and what the pages are told."""

    def __init__(self, *, argv: list[str], root: str, cwd: str | None = None, output: str | None = None,
                 orphaned: Callable[[], bool] = lambda: False) -> None:
        self.argv, self.root, self.output, self.cwd = argv, root, output, cwd or root
        self.orphaned = orphaned  # whether the process that started us is gone: the build stops then
        self.products = Products()
        self.compared = Output(output) if output else None  # what a build changes in its output
        self.empty_said = False
        self.lock = threading.Lock()  # ``run`` (the watching thread, or main at start) against ``stop``
        self.proc: subprocess.Popen[bytes] | None = None  # the build running now
        self.below: list[Any] = []  # its processes seen while it runs (psutil), a setsid one's too
        self.stopping = False

    def run(self) -> Result:
        """Run the build once; its outcome, said in the terminal. After ``stop``,
        a ``stopped`` result (said once), and no build starts."""
        started = time.monotonic()
        with self.lock:
            if self.stopping:
                return Result(-signal.SIGTERM, "", stopped=True)
            try:
                self.proc = proc = start(self.argv, self.cwd)
            except OSError as exc:
                proc, result = None, cannot(self.argv, exc)
        if proc is not None:
            result = collect(proc, self.argv, started, self.look)
        with self.lock:
            self.proc, self.below, result.stopped = None, [], self.stopping
        if result.stopped:
            log.info("build stopped: the watcher is stopping")
        elif result.ok:
            log.info("build succeeded in %.1fs", result.seconds)
        else:
            log.error("build failed (exit %d):\n%s", result.status, result.output.rstrip())
        return result

    def look(self) -> None:
        """While the build runs (every WAKE): note its processes (one that left
        its group with setsid is still below it), and stop it when the process
        that started us is gone (SIGKILLed during the first build, say)."""
        with self.lock:
            proc = self.proc
        if proc is not None:
            below = process_life.descendants([proc])
            with self.lock:
                self.below = list({p.pid: p for p in [*self.below, *below]}.values())
        if self.orphaned():
            log.info("the process that started me is gone: stopping the build")
            self.stop()

    def stop(self) -> None:
        """Stop the running build's whole process group (SIGTERM, then SIGKILL
        after STOP_GRACE), and every process seen below it (SIGKILL: one in a
        session of its own); start no other. Returns once they are gone.
        Idempotent, from any thread."""
        with self.lock:
            self.stopping = True
            proc, seen = self.proc, self.below
        if proc is not None:
            below = [*seen, *process_life.descendants([proc])]  # before the group goes: then they are orphans
            stop_group(proc.pid)
            process_life.kill(below)

    def notice(self, result: Result) -> str | None:
        """What a good build should still tell you (terminal and pages): its error
        lines, or an output folder left empty (said once until it fills)."""
        if result.errors:
            log.warning("build succeeded, but its output has %d error line(s):\n%s",
                        len(result.errors), "\n".join(result.errors))
            return "The build succeeded, but reported errors:\n\n" + result.report()
        empty = bool(self.output) and not has_entries(self.output or "")
        if empty and not self.empty_said:
            log.warning("build succeeded, but %s is empty: is --output the folder the build writes?",
                        ascii(self.output)[1:-1])
        self.empty_said = empty
        return f"The build succeeded, but its output folder {self.output} is empty." if empty else None

    def message(self, result: Result) -> dict[str, str]:
        """What the broadcaster's pages get: a failed build's report, or a good one's notice."""
        if not result.ok:
            return {"error": result.report()}
        notice = self.notice(result)
        return {"notice": notice} if notice else {}
