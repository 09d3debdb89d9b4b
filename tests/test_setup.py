"""The README's run command, as written, in a copy of this repository: in zsh
(where `r` is a built-in that repeats the last command) and in bash with
Debian's externally managed Python (which refuses `pip install` outside a venv)."""

import glob
import os
import shutil
import urllib.request

import pytest

from conftest import ROOT, SCALE, free_port

COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "node_modules", "__pycache__", "*.egg-info",
                                     ".pytest_cache", ".mypy_cache", ".ruff_cache")


def readme_command(test=False):
    """The README's run (or test) command, word for word."""
    lines = [line.strip() for line in (ROOT / "README.md").read_text().splitlines()
             if line.startswith("    python3 -m venv ")]
    return next(line for line in lines if ("[test]" in line) == test)


def missing(what):
    """Skip without ``what``; in CI, where .ci/run installs it, fail."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI")
    pytest.skip(f"no {what} here")


def test_the_readme_names_one_run_and_one_test_command():
    assert "pytest" in readme_command(test=True) and "pytest" not in readme_command()
    assert readme_command(test=True) in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("shell", ["zsh", "bash with Debian's python3"])
def test_the_readme_run_command_starts_the_demo(procs, tmp_path, shell):
    if shell == "zsh":
        argv = [shutil.which("zsh") or missing("zsh (apt-get install zsh)"), "-f", "-c"]
        path = os.environ["PATH"]
    else:
        if not glob.glob("/usr/lib/python3*/EXTERNALLY-MANAGED"):
            missing("Debian's externally managed python3 (apt-get install python3-venv)")
        (tmp_path / "bin").mkdir()
        os.symlink("/usr/bin/python3", tmp_path / "bin" / "python3")
        argv, path = ["bash", "-c"], f"{tmp_path / 'bin'}:{os.environ['PATH']}"
    repo = tmp_path / "sigreload"
    shutil.copytree(ROOT, repo, ignore=COPY_IGNORE)
    http, ws = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env.update(PATH=path, PORT=str(http), WS_PORT=str(ws))
    proc = procs(argv + [readme_command()], cwd=repo, env=env)
    for ready in ("serving", "ready on", "watching"):
        proc.wait_seen(ready, 300)  # a fresh venv: pip installs the four dependencies first
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/", timeout=5 * SCALE) as page:
        assert b"sigreload" in page.read()
    if shell != "zsh":
        assert "externally-managed" not in proc.output()
