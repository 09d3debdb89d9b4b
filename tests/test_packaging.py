"""sigreload as its users install it: one name in their virtualenv, beside
packages and files of their own that share its old module names.

The wheel and the sdist are built once (``python -m build``); the wheel goes
into a fresh virtualenv beside PyPI's ``proxy.py`` (it ships a module named
``proxy``), and runs from a folder that holds its own ``watcher.py``,
``proxy.py`` and ``messages.py``, each of which exits loudly if it ever runs.
"""

import os
import shutil
import subprocess
import sys
import tarfile
import time
import venv
import zipfile

import pytest

from conftest import ROOT, SCALE, free_port, open_page, write

DECOY = 'raise SystemExit("the user\'s own {name} ran in sigreload\'s place")\n'
SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"  # Debian's bundle, which pip is told to use here
PAGE = "<!doctype html><html><head><title>mine</title></head><body><p>{text}</p></body></html>"


def run(argv, **kwargs):
    """Run to completion; fail with its output when it fails."""
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=600 * SCALE, **kwargs)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The wheel and the sdist, built from this checkout: (wheel, sdist)."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", out, ROOT])
    return next(out.glob("*.whl")), next(out.glob("*.tar.gz"))


def fresh_venv(folder):
    """A new virtualenv's bin folder."""
    venv.create(folder, with_pip=True)
    return folder / "bin"


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory):
    """The wheel in a fresh virtualenv beside PyPI's proxy.py: its bin folder."""
    bin_dir = fresh_venv(tmp_path_factory.mktemp("venv") / "env")
    run([bin_dir / "python", "-m", "pip", "install", "-q", dist[0], "proxy.py"])
    return bin_dir


@pytest.fixture
def project(tmp_path):
    """A user's folder with a page and their own watcher.py, proxy.py and messages.py."""
    folder = tmp_path / "project"
    folder.mkdir()
    for name in ("watcher.py", "proxy.py", "messages.py"):
        write(folder / name, DECOY.format(name=name))
    write(folder / "index.html", PAGE.format(text="first"))
    # Written a minute ago: the stock http.server the proxy test puts behind it answers
    # If-Modified-Since in whole seconds (a 304 for a page saved twice in one second).
    old = time.time() - 60
    os.utime(folder / "index.html", (old, old))
    return folder


def test_the_wheel_installs_one_top_level_name(dist):
    with zipfile.ZipFile(dist[0]) as wheel:
        names = wheel.namelist()
        info = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert wheel.read(info).decode().split() == ["sigreload"]
    tops = {n.split("/")[0] for n in names if ".dist-info/" not in n}
    assert tops == {"sigreload"}
    assert "sigreload/snippet/reload.js" in names  # the snippet travels inside the package
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "sigreload").rglob("*.py")}
    assert not modules - set(names), "modules left out of the wheel"  # sigreload.middleware was, once


def test_the_sdist_holds_what_the_tests_and_r_need(dist):
    with tarfile.open(dist[1]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    tracked = run(["git", "ls-files"], cwd=ROOT).stdout.split()
    wanted = [n for n in tracked if not n.startswith((".ci/", ".gitignore"))]
    assert not [n for n in wanted if n not in names]


def test_the_unpacked_sdist_installs_and_its_tests_run(dist, tmp_path):
    with tarfile.open(dist[1]) as sdist:
        sdist.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))  # 3.11.4+
    source = next(tmp_path.glob("sigreload-*"))
    bin_dir = fresh_venv(tmp_path / "env")
    run([bin_dir / "python", "-m", "pip", "install", "-q", "-e", ".[test]"], cwd=source)
    collected = run([bin_dir / "python", "-m", "pytest", "--collect-only", "-q"], cwd=source)
    summary = collected.stdout.strip().splitlines()[-1]  # "343 tests collected in 0.45s", no errors
    assert "tests collected" in summary and "error" not in summary, collected.stdout
    quick = ["tests/test_building.py", "tests/test_pacing.py", "tests/test_cli.py"]
    assert " passed" in run([bin_dir / "python", "-m", "pytest", "-q", *quick], cwd=source).stdout


def served(procs, argv, cwd):
    """Start ``argv`` (a sigreload command) in ``cwd``; its page URL once all three are ready."""
    proc = procs(argv, cwd=cwd)
    url = proc.wait_seen(r"at (http://\S+/)", 30).group(1)
    for ready in ("ready on", "watching"):
        proc.wait_seen(ready, 30)
    return proc, url


def reloads_on_edit(page, url, folder):
    open_page(page, url)  # the snippet is in the page: it said hello
    write(folder / "index.html", PAGE.format(text="second"))
    page.wait_for_function("document.body.innerText.includes('second')", timeout=10_000 * SCALE)


def test_the_static_site_recipe_beside_same_named_modules(installed, project, procs, page):
    ws = free_port()
    proc, url = served(procs, [installed / "python", "-m", "sigreload", ".", "--port", "0", "--ws-port", ws],
                       cwd=project)
    reloads_on_edit(page, url, project)
    assert "ran in sigreload's place" not in proc.output()


def test_the_proxy_beside_same_named_modules(installed, project, procs, page):
    app = free_port()
    procs([sys.executable, "-P", "-m", "http.server", app, "--bind", "127.0.0.1", "--directory", project])
    ws = free_port()
    proc, url = served(procs, [installed / "sigreload", ".", "--proxy", f"http://127.0.0.1:{app}",
                               "--port", "0", "--ws-port", ws], cwd=project)
    reloads_on_edit(page, url, project)
    assert "ran in sigreload's place" not in proc.output()


def test_every_console_script_runs_from_the_wheel(installed, project):
    for name in ("sigreload", "sigreload-http", "sigreload-broadcast", "sigreload-watch",
                 "sigreload-reload", "sigreload-css", "sigreload-init"):
        shown = run([installed / name, "--version"], cwd=project)
        assert shown.stdout.startswith("sigreload "), name
    assert run([installed / "python", "-m", "sigreload", "--version"], cwd=project).stdout.startswith("sigreload ")


@pytest.mark.parametrize("tool", ["pipx", "uv"])
def test_tool_installs_bring_sigreload_and_r(tool, dist, tmp_path):
    """The README's pipx and uv lines: sigreload's commands and rfilerunner's `r` on PATH."""
    exe = shutil.which(tool) or pytest.skip(f"no {tool} here (pip install -e '.[test]')")
    line = next(line.split("  #")[0].strip() for line in (ROOT / "README.md").read_text().splitlines()
                if line.startswith(f"    {tool} ") and " install " in line)
    bin_dir = tmp_path / "bin"
    env = {**os.environ, "PIPX_HOME": str(tmp_path / "pipx"), "PIPX_BIN_DIR": str(bin_dir),
           "UV_TOOL_DIR": str(tmp_path / "uv"), "UV_TOOL_BIN_DIR": str(bin_dir)}
    if "SSL_CERT_FILE" not in env and os.path.exists(SYSTEM_CAS):  # uv trusts its own list, else
        env["SSL_CERT_FILE"] = SYSTEM_CAS
    env.pop("VIRTUAL_ENV", None)
    argv = [exe, *line.split()[1:]]
    argv[argv.index(".")] = str(dist[0])  # the README installs from the clone: here, its wheel
    run(argv, env=env)
    for name in ("sigreload", "sigreload-watch", "r", "rfile"):
        assert (bin_dir / name).exists(), f"{tool} did not put {name} on PATH"
    assert run([bin_dir / "sigreload", "--version"]).stdout.startswith("sigreload ")


NO_SIDE_EFFECTS = """import os, pkgutil, signal, threading, importlib
import sigreload
before = {s: signal.getsignal(s) for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)}
for module in pkgutil.walk_packages(sigreload.__path__, "sigreload."):
    if not module.name.endswith("__main__"):
        importlib.import_module(module.name)
after = {s: signal.getsignal(s) for s in before}
print(sorted(s.name for s in before if before[s] != after[s]), sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])),
      threading.active_count(), os.environ.get("SIGRELOAD_LIFELINE"))
"""


def test_importing_any_module_changes_nothing_in_the_process():
    """No handler, no blocked signal, no thread, the environment as it was: each process does those in main()."""
    env = {**os.environ, "SIGRELOAD_LIFELINE": "7:1"}
    shown = run([sys.executable, "-c", NO_SIDE_EFFECTS], env=env).stdout.strip()
    assert shown == "[] [] 1 7:1"
