"""What must hold on every Python that sigreload supports (3.10 to 3.13: CI
runs this file on each): nothing in the current folder runs inside
sigreload's processes, however they were started (``-P`` exists from 3.11;
``python -m`` puts the current folder first on sys.path on every version)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SCALE, client, free_port, recv, write
from sigreload import process_life
from sigreload.contract import discovery

STUB = 'raise SystemExit("{name}.py from the current folder ran inside sigreload")\n'


def shadowing(folder, *names):
    """``folder`` with a stand-in for each stdlib module of ``names`` that stops whoever imports it."""
    for name in names:
        (folder / f"{name}.py").write_text(STUB.format(name=name))
    return folder


def test_python_m_sigreload_runs_its_own_argparse_not_the_folders(tmp_path):
    shadowing(tmp_path, "argparse")
    done = subprocess.run([sys.executable, "-m", "sigreload", "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=30 * SCALE, stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr


# ``python -m sigreload`` typed by hand imports the folder's runpy.py before any of
# sigreload's code (Python itself does, on every version): only the script avoids it.
HOW = {"console script": ([str(Path(sys.executable).parent / "sigreload")], ("runpy",)),
       "python -m sigreload": ([sys.executable, "-u", "-m", "sigreload"], ())}


@pytest.mark.parametrize("how", HOW)
def test_a_users_stdlib_named_files_never_run_inside_its_processes(procs, tmp_path, how):
    site = tmp_path / "site"
    shutil.copytree(ROOT / "snippet", site)
    command, more = HOW[how]
    shadowing(site, "email", "json", "signal", "argparse", *more)
    ws = free_port()
    sigreload = procs([*command, ".", "--port", free_port(), "--ws-port", ws], cwd=site)
    for ready in ("serving", "ready on", "watching"):
        sigreload.wait_seen(ready)
    with client(ws) as page:
        assert json.loads(recv(page))["type"] == "hello"
        write(site / "index.html", (site / "index.html").read_text() + "<!-- edited -->")
        assert json.loads(recv(page, 10))["type"] == "reload"
    assert "current folder ran" not in sigreload.output()


def test_each_process_runs_by_name_past_a_users_runpy_py(tmp_path):
    shadowing(tmp_path, "runpy", "argparse")
    for name in ("sigreload.watcher", "sigreload.broadcaster", "sigreload.http_server"):
        done = subprocess.run([*process_life.module_argv(name), "--help"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=30 * SCALE, stdin=subprocess.DEVNULL)
        assert done.returncode == 0 and "usage:" in done.stdout, done.stderr
        assert discovery.runs_broadcaster(process_life.module_argv(name)) == (name == "sigreload.broadcaster")
