"""`r` itself (rfilerunner) starts all three processes and leaves nothing behind."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import psutil
import pytest
from websockets.sync.client import connect

from conftest import client, free_port, recv, running, until, write

pytestmark = pytest.mark.skipif(not shutil.which("r"), reason="rfilerunner's `r` is not installed")


def port_free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def r_all(procs, site):
    """`r` with stdin at end-of-file, serving the demo copy on free ports."""
    http, ws = free_port(), free_port()
    env = {**os.environ, "ROOT": str(site), "PORT": str(http), "WS_PORT": str(ws)}
    proc = procs(["r"], env=env)  # stdin is /dev/null: at end-of-file
    for ready in (r"serving .* at http://127\.0\.0\.1:\d+/", "broadcast: ready on ws://", "watch: watching"):
        proc.wait_seen(ready)
    return proc, http, ws


def descendants(pid):
    return psutil.Process(pid).children(recursive=True)


def test_r_starts_all_three_and_reloads_without_busy_looping(r_all, site):
    proc, http, ws = r_all
    names = " ".join(" ".join(p.cmdline()) for p in descendants(proc.pid))
    for module in ("sigreload.http_server", "sigreload.broadcaster", "sigreload.watcher"):
        assert f" {module} " in names  # -m NAME, or Python 3.10's bootstrap NAME
    with client(ws) as conn:
        recv(conn)
        write(site / "index.html", "<h1>new</h1>")
        assert '"reload"' in recv(conn)
    # The behaviour under test is the absence of a busy loop: measure a second.
    assert psutil.Process(proc.pid).cpu_percent(interval=1.0) < 20


@pytest.mark.portable_too
@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "SIGKILL", "Ctrl-C"])
def test_stopping_r_leaves_no_process_and_no_port(r_all, how):
    proc, http, ws = r_all
    children = descendants(proc.pid)
    assert len(children) >= 4  # supervisor + three processes
    if how == "Ctrl-C":
        os.killpg(proc.pid, signal.SIGINT)  # the terminal signals the whole group
    else:
        os.kill(proc.pid, getattr(signal, how))  # r alone
    until(lambda: not any(map(running, children)), 10, "a child outlived r")  # (a deadline: 2 s failed under load)
    until(lambda: port_free(http) and port_free(ws), 2, "a port is still held")


LINEAGE = """import os, sys
read, write = os.pipe()  # a pipe of its own, at the number the variable names
os.environ["SIGRELOAD_LIFELINE"] = f"{read}:{sys.argv[1]}"
from sigreload import process_life
print(process_life.lineage().lifeline == read)
"""


@pytest.mark.parametrize("spawner", ["its parent", "a process above it"])
def test_a_lifeline_counts_only_from_the_parent_that_made_it(spawner):
    """`r` passes our lifeline's variable on to the supervisor, never the pipe: the
    number may then be any file of the supervisor's, which it must never follow."""
    import subprocess
    import sys

    pid = os.getpid() if spawner == "its parent" else os.getppid()
    done = subprocess.run([sys.executable, "-c", LINEAGE, str(pid)], capture_output=True, text=True)
    assert done.stdout.strip() == str(spawner == "its parent"), done.stderr


@pytest.mark.portable_too
def test_a_killed_supervisor_leaves_no_process_and_no_port(r_all):
    """Its children read end-of-file on their lifelines, however it died."""
    proc, http, ws = r_all
    supervisor = next(p for p in descendants(proc.pid) if os.path.basename(p.cmdline()[1]) == "sigreload")
    children = supervisor.children()
    assert len(children) == 3
    supervisor.kill()
    until(lambda: not any(map(running, children)), 2, "a child outlived the supervisor")
    until(lambda: port_free(http) and port_free(ws), 2, "a port is still held")


def test_init_writes_an_rfile_that_r_runs_and_never_overwrites(procs, tmp_path):
    import subprocess
    import urllib.request

    from conftest import module

    if not shutil.which("sigreload"):
        pytest.skip("sigreload is not installed (pip install -e .)")
    init = module("sigreload") + ["init"]
    first = subprocess.run(init, cwd=tmp_path, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "rfile.yml").exists() and (tmp_path / "index.html").exists()
    assert "5678" not in (tmp_path / "index.html").read_text()  # the server inserts the snippet: any port
    (tmp_path / "rfile.yml").write_text((tmp_path / "rfile.yml").read_text() + "# mine\n")
    again = subprocess.run(init, cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode != 0 and "pass --force" in again.stderr
    assert (tmp_path / "rfile.yml").read_text().endswith("# mine\n")
    http, ws = free_port(), free_port()
    proc = procs(["r"], cwd=tmp_path, env={**os.environ, "PORT": str(http), "WS_PORT": str(ws)})
    for ready in ("serving", "ready on", "watching"):
        proc.wait_seen(ready)
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/") as page:
        body = page.read()
        assert b"It works" in body and b"/_sigreload/reload.js" in body
    with connect(f"ws://127.0.0.1:{http}/_sigreload/socket", origin=f"http://127.0.0.1:{http}") as ws_client:
        assert json.loads(ws_client.recv(timeout=10))["type"] == "hello"  # from the broadcaster on WS_PORT
    forced = subprocess.run(init + ["--force"], cwd=tmp_path, capture_output=True, text=True)
    assert forced.returncode == 0 and not (tmp_path / "rfile.yml").read_text().endswith("# mine\n")



def test_init_follows_the_configuration_file(procs, tmp_path):
    """With a sigreload.toml, `sigreload init` writes its page into the file's root and
    prints the file's port, and the rfile's `r` serves that root on that port."""
    import subprocess
    import urllib.request

    from conftest import module

    if not shutil.which("sigreload"):
        pytest.skip("sigreload is not installed (pip install -e .)")
    http, ws = free_port(), free_port()
    (tmp_path / "site").mkdir()
    (tmp_path / "sigreload.toml").write_text(f'root = "site"\nport = {http}\nws-port = {ws}\n')
    init = subprocess.run(module("sigreload") + ["init"], cwd=tmp_path, capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "site" / "index.html").exists() and not (tmp_path / "index.html").exists()
    assert f"http://127.0.0.1:{http}/" in init.stdout and "sigreload.toml" in init.stdout
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "WS_PORT", "LAN")}
    proc = procs(["r"], cwd=tmp_path, env=env)
    proc.wait_seen(f"serving {tmp_path / 'site'} at http://127.0.0.1:{http}/")
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/") as page:
        assert b"It works" in page.read()


SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"  # Debian's bundle (uv trusts its own list, else)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    from conftest import ROOT

    out = tmp_path_factory.mktemp("dist")
    installed(sys.executable, "-m", "build", "--wheel", "--outdir", out, ROOT, env=os.environ)
    return next(out.glob("*.whl"))


def installed(*argv, env):
    from conftest import SCALE

    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, timeout=600 * SCALE)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(params=["pipx", "uv"])
def tool_bin(request, wheel, tmp_path):
    """The README's pipx or uv line, run into a folder of its own (from this checkout's wheel): its bin folder."""
    from conftest import ROOT

    tool = request.param
    exe = shutil.which(tool) or pytest.skip(f"no {tool} here (pip install -e '.[test]')")
    line = next(line.split("  #")[0].strip() for line in (ROOT / "README.md").read_text().splitlines()
                if line.startswith(f"    {tool} ") and " install " in line)
    env = {**os.environ, "PIPX_HOME": str(tmp_path / "pipx"), "PIPX_BIN_DIR": str(tmp_path / "bin"),
           "UV_TOOL_DIR": str(tmp_path / "uv"), "UV_TOOL_BIN_DIR": str(tmp_path / "bin")}
    if "SSL_CERT_FILE" not in env and os.path.exists(SYSTEM_CAS):
        env["SSL_CERT_FILE"] = SYSTEM_CAS
    env.pop("VIRTUAL_ENV", None)
    argv = [exe, *line.split()[1:]]
    argv[argv.index(".")] = wheel  # the README installs from the clone: here, its wheel
    installed(*argv, env=env)
    return tmp_path / "bin"


def test_the_recipes_run_after_the_readme_tool_installs(tool_bin, procs, tmp_path):
    """`r`, `r reload` and `r css` with only the tool's commands on PATH (its python3: the system's,
    without sigreload or its dependencies), from a clone: the rfile calls the console scripts."""
    from conftest import ROOT, SCALE

    bin_dir = tool_bin  # pipx's or uv's
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "snippet", clone / "snippet")
    shutil.copy(ROOT / "rfile.yml", clone)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PATH=f"{bin_dir}:/usr/bin:/bin", PORT=str(free_port()), WS_PORT=str(free_port()))
    proc = procs([bin_dir / "r"], cwd=clone, env=env)
    for ready in (r"serving .* at http://127\.0\.0\.1:\d+/", "broadcast: ready on ws://", "watch: watching"):
        proc.wait_seen(ready, 30)
    with client(int(env["WS_PORT"])) as conn:
        recv(conn)
        for command, kind in (("reload", '"reload"'), ("css", '"css"')):
            done = subprocess.run([bin_dir / "r", command], cwd=clone, env=env, capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL, timeout=30 * SCALE)
            assert done.returncode == 0 and "sent SIGUSR" in done.stdout, done.stdout + done.stderr
            assert kind in recv(conn)
