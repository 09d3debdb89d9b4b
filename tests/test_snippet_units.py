"""The snippet's pure parts (what a broadcast does to a page, where it connects,
what it missed, which fields it keeps), unit-tested under Node's own test runner
(tests/node/snippet.test.mjs): run here so the README's one test command covers them."""

import os
import shutil
import subprocess

import pytest

from conftest import ROOT, SCALE


def test_the_snippets_pure_parts_pass_their_node_tests():
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("Node.js is required in CI (apt-get install nodejs)")
        pytest.skip("no node on PATH: apt-get install nodejs to run the snippet's unit tests")
    run = subprocess.run([node, "--test", str(ROOT / "tests" / "node" / "snippet.test.mjs")], cwd=ROOT,
                         capture_output=True, text=True, timeout=60 * SCALE)
    assert run.returncode == 0, f"node --test failed:\n{run.stdout}\n{run.stderr}"

