"""Build, then reload: running the build, reading its output, and telling
what it writes (its products) from what you edit.

The watcher runs the build after a settled burst of changes, then sweeps the
tree at once: what changed while the build ran is the build's own writing
and never a trigger (Sphinx's ``_build/doctrees`` beside ``--output``, a
generated page), except an edit you made meanwhile: then exactly one more
build. Nothing here watches or signals: ``watcher.Notifier`` does.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

from sigreload.watching.signatures import has_entries

TAIL = 8000  # characters of a build's output kept for the pages
ERRORS_MAX = 40  # error lines shown above the log
# "index.rst:5: ERROR: Unknown directive", "ERROR    -  Config value", "x.c:1:2: error: ..."
# (not "0 errors", not "KeyError: ..." inside a traceback's last line: that fails the build anyway)
ERROR_LINE = re.compile(r"(?:^|[\s:(\[])(?:ERROR|Error|error)\b\s*[:\]-]")

OUTPUT_FILES_MAX = 20_000  # an output larger than this (files or bytes) is not compared: every page reloads
OUTPUT_BYTES_MAX = 512 << 20
WAKE = 0.25  # seconds between two looks at the signals while a build runs
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


def collect(proc: subprocess.Popen[bytes], argv: list[str], started: float) -> Result:
    """Wait for the build ``proc``; its result, output and errors collected.

    The wait wakes every WAKE seconds: in the main thread, a stop signal that
    the kernel gave another thread runs its handler only when main runs."""
    while True:
        try:
            output = proc.communicate(timeout=WAKE)[0].decode(errors="replace")
            break
        except subprocess.TimeoutExpired:
            continue
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


HTML_COMMENT = re.compile(rb"<!--.*?-->", re.S)


def digest_of(path: str) -> bytes:
    """A file's content digest; for a page, its HTML comments aside (mkdocs stamps
    its build time into the home page: no change a reader sees)."""
    digest = hashlib.blake2b()
    with open(path, "rb") as f:
        if path.endswith((".html", ".htm")):
            digest.update(HTML_COMMENT.sub(b"", f.read()))
        else:
            while block := f.read(1 << 20):
                digest.update(block)
    return digest.digest()


class Output:
    """The build's output folder, compared before and after a build: what the
    build changed (its pages, its stylesheets) decides what the pages do.
    Files are compared by content (builders rewrite what did not change),
    pages without their HTML comments; a file's digest is kept while its
    size, mtime and inode stay."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.digests: dict[str, tuple[tuple[int, int, int], bytes]] = {}  # path -> (stat key, digest)

    def snapshot(self) -> dict[str, bytes] | None:
        """{path: digest} of every file, or None when it is too large to compare."""
        found: dict[str, bytes] = {}
        total = 0
        for top, _, files in os.walk(self.folder):
            for name in files:
                path = os.path.join(top, name)
                try:
                    st = os.stat(path)
                    key = (st.st_size, st.st_mtime_ns, st.st_ino)
                    known = self.digests.get(path)
                    if known is None or known[0] != key:
                        known = (key, digest_of(path))
                        self.digests[path] = known
                except OSError:
                    continue  # gone meanwhile
                found[path] = known[1]
                total += key[0]
                if len(found) > OUTPUT_FILES_MAX or total > OUTPUT_BYTES_MAX:
                    return None
        self.digests = {p: d for p, d in self.digests.items() if p in found}
        return found

    @staticmethod
    def changed(before: dict[str, bytes] | None, after: dict[str, bytes] | None) -> list[str] | None:
        """The files a build added, removed or changed; None when unknown."""
        if before is None or after is None:
            return None
        return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


class Builder:
    """The build a watcher runs (``argv`` in ``root``): each run said in the
    terminal, what it writes learned (``products``), and what the pages are told."""

    def __init__(self, argv: list[str], root: str, output: str | None = None) -> None:
        self.argv, self.root, self.output = argv, root, output
        self.products = Products()
        self.compared = Output(output) if output else None  # what a build changes in its output
        self.empty_said = False
        self.lock = threading.Lock()  # ``run`` (the watching thread, or main at start) against ``stop``
        self.proc: subprocess.Popen[bytes] | None = None  # the build running now
        self.stopping = False

    def run(self) -> Result:
        """Run the build once; its outcome, said in the terminal. After ``stop``,
        a ``stopped`` result (said once), and no build starts."""
        started = time.monotonic()
        with self.lock:
            if self.stopping:
                return Result(-signal.SIGTERM, "", stopped=True)
            try:
                self.proc = proc = start(self.argv, self.root)
            except OSError as exc:
                proc, result = None, cannot(self.argv, exc)
        if proc is not None:
            result = collect(proc, self.argv, started)
        with self.lock:
            self.proc, result.stopped = None, self.stopping
        if result.stopped:
            log.info("build stopped: the watcher is stopping")
        elif result.ok:
            log.info("build succeeded in %.1fs", result.seconds)
        else:
            log.error("build failed (exit %d):\n%s", result.status, result.output.rstrip())
        return result

    def stop(self) -> None:
        """Stop the running build's whole process group (SIGTERM, then SIGKILL
        after STOP_GRACE) and start no other; returns once it is gone. Idempotent,
        from any thread."""
        with self.lock:
            self.stopping = True
            proc = self.proc
        if proc is not None:
            stop_group(proc.pid)

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
