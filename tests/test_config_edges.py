"""The configuration file's edges a newcomer met (the reviewer r32n3): a closed
stdout, a file that would shadow another, the written file's comments, ignore
globs with a trailing slash, resolved paths, the watcher's own output file,
and one-line messages."""

import os
import subprocess
import sys

import pytest

from conftest import SCALE, module


def run(cwd, *args, **kwargs):
    """`sigreload ARGS` run to completion in ``cwd``."""
    return subprocess.run(module("sigreload") + [str(a) for a in args], capture_output=True, text=True,
                          cwd=cwd, stdin=subprocess.DEVNULL, timeout=30 * SCALE, **kwargs)


@pytest.mark.parametrize("command", [
    module("sigreload") + ["config"],
    module("sigreload") + ["init", "--config"],
    [sys.executable, "-c", "from sigreload.starter import main; main()", "--config"],  # sigreload-init
])
def test_a_closed_stdout_ends_quietly(tmp_path, command):
    """`sigreload config | head -1` printed a BrokenPipeError traceback (3 runs of 10):
    a reader gone before the printing is the same, every time."""
    read, written = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(command, stdout=written, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                              stdin=subprocess.DEVNULL, timeout=30 * SCALE)
    finally:
        os.close(written)
    assert done.returncode == 141 and done.stderr == "", done
