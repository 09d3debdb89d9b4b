"""Build, then reload: what the build writes is learned, not a trigger; its error lines are found."""

import os
import signal
import sys

import psutil
import pytest

from conftest import free_port, module, running, until, write
from sigreload import building


def test_error_lines_are_sphinx_mkdocs_and_compiler_errors_not_counts_or_exception_names():
    output = "\n".join([
        "reading sources... [100%] index",
        "/d/index.rst:5: ERROR: Unknown directive type \"foo\".",
        "ERROR    -  Config value 'nav': expected a list",
        "x.c:1:2: error: expected ';'",
        "build succeeded, 0 errors, 2 warnings.",
        "KeyError happened somewhere",
    ])
    assert building.error_lines(output) == [
        "/d/index.rst:5: ERROR: Unknown directive type \"foo\".",
        "ERROR    -  Config value 'nav': expected a list",
        "x.c:1:2: error: expected ';'",
    ]


def test_a_report_puts_the_error_lines_first_and_the_whole_log_below():
    result = building.Result(1, "a\nfile:1: error: bad\nb\n", ["file:1: error: bad"])
    assert result.report().startswith("file:1: error: bad\n\n--- the build's output ---\na\n")
    assert building.Result(1, "just a log").report() == "just a log"


def test_a_build_that_cannot_start_is_a_failed_result(tmp_path):
    result = building.run(["/nonexistent/tool"], str(tmp_path))
    assert not result.ok and result.errors == ["cannot run /nonexistent/tool: No such file or directory"]
    assert building.run([sys.executable, "-c", "print('ERROR: x')"], str(tmp_path)).errors == ["ERROR: x"]


def test_a_build_that_leaves_a_process_holding_its_output_still_ends(tmp_path):
    """The reviewer r34a2: a build that double-forked a setsid'd process (a daemon)
    kept its output pipe open: the watcher waited for its end for good."""
    pid_file = tmp_path / "daemon.pid"
    script = f"(setsid sh -c 'echo $$ > {pid_file}; exec sleep 300' &); echo built"
    try:
        result = building.run(["sh", "-c", script], str(tmp_path))
        assert result.ok and "built" in result.output
    finally:
        until(pid_file.exists, 5, "the daemon never started")
        until(lambda: pid_file.read_text().strip(), 5, "the daemon never said its PID")
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_what_builds_write_is_theirs_and_edits_during_a_build_are_not():
    p = building.Products()
    assert p.written(["/d/_build/doctrees/env.pickle", "/d/_build/doctrees/index.doctree"], first=True) == []
    p.edited(["/d/index.rst"])  # you: /d holds sources now
    # The build rewrites its own files, adds a new one in its folder, and you save during it:
    assert p.written(["/d/_build/doctrees/env.pickle", "/d/_build/doctrees/new.doctree",
                      "/d/index.rst"]) == ["/d/index.rst"]
    # A file the build writes among your sources: taken for an edit once, the build's when written again.
    assert p.written(["/d/api.rst"]) == ["/d/api.rst"]
    assert p.written(["/d/api.rst"]) == []
    assert p.written(["/d/index.rst"]) == ["/d/index.rst"]  # yours, however often a build runs meanwhile
    assert p.written(["/d/index.rst"]) == ["/d/index.rst"]
    p.edited(["/d/api.rst"])  # you edited the generated file: yours from now on
    assert p.written(["/d/api.rst"]) == ["/d/api.rst"]


BUILD = """import os, subprocess, sys
if os.path.exists("slow"):  # a build of two processes (a group) that takes its time
    subprocess.run(["sleep", "300"])
if os.path.exists("setsid"):  # ... one of them in a session (and group) of its own
    subprocess.run(["setsid", "sleep", "300"])
"""


@pytest.mark.parametrize("build", ["first", "after an edit", "first, with setsid"])
@pytest.mark.parametrize("how", ["Ctrl-C", "SIGTERM"])
def test_stopping_sigreload_during_a_build_stops_the_build_whole_in_one_line(procs, tmp_path, how, build):
    src = tmp_path / "src"
    src.mkdir()
    write(src / "build.py", BUILD)
    if build.startswith("first"):
        write(src / ("setsid" if "setsid" in build else "slow"), "")
    stack = procs(module("sigreload") + [src, "--exec", f"{sys.executable} build.py", "--output", tmp_path / "out",
                                         "--port", free_port(), "--ws-port", free_port()], cwd=tmp_path)
    stack.wait_seen("ready on", 15)
    if not build.startswith("first"):
        stack.wait_seen("watching", 15)
        write(src / "slow", "")
    sleeps = []
    until(lambda: sleeps.extend(p for p in psutil.Process(stack.pid).children(recursive=True)
                                if p.cmdline()[:1] == ["sleep"]) or sleeps, 15, "the build never started")
    build_group = psutil.Process(stack.pid).children(recursive=True)
    if how == "Ctrl-C":
        os.killpg(stack.pid, signal.SIGINT)  # the terminal signals its foreground group
    else:
        os.kill(stack.pid, signal.SIGTERM)  # sigreload alone
    assert stack.exit_code(10) == 0
    until(lambda: not any(map(running, build_group)), 5, "a process of the build outlived sigreload")
    said = stack.output()
    assert said.count("build stopped") <= 1  # one line (none when the watcher was too slow to say it: killed)
    assert "build failed" not in said and "cannot leave" not in said and "build error" not in said


def test_sigkill_of_sigreload_during_the_first_build_ends_the_watcher_and_the_build(procs, tmp_path):
    """Issue 34: the watcher followed its parent only once watching, after the first build."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "build.py", BUILD)
    write(src / "slow", "")
    stack = procs(module("sigreload") + [src, "--exec", f"{sys.executable} build.py", "--output", tmp_path / "out",
                                         "--port", free_port(), "--ws-port", free_port()], cwd=tmp_path)
    sleeps = []
    until(lambda: sleeps.extend(p for p in psutil.Process(stack.pid).children(recursive=True)
                                if p.cmdline()[:1] == ["sleep"]) or sleeps, 15, "the build never started")
    below = psutil.Process(stack.pid).children(recursive=True)
    os.kill(stack.pid, signal.SIGKILL)  # sigreload alone: no handler, no goodbye
    until(lambda: not any(map(running, below)), 10, "a process outlived a SIGKILLed sigreload")
