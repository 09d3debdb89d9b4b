"""The command line: help and --version everywhere, the README names every flag,
and what `sigreload` offers reaches the process that takes it."""

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request

import psutil
import pytest
from websockets.exceptions import InvalidStatus

from conftest import ROOT, SCALE, cli, client, free_port, module, recv, running, until, write

# Each command's module and arguments: sigreload-reload, -css and -init as `sigreload` runs them.
COMMANDS = [["sigreload"], ["http_server"], ["broadcaster"], ["watcher"],
            ["sigreload", "reload"], ["sigreload", "css"], ["sigreload", "init"]]


@pytest.mark.parametrize("name", COMMANDS, ids=" ".join)
def test_every_flag_has_help_and_is_in_the_readme(name):
    shown = cli(*name, "--help")
    assert shown.returncode == 0, shown.stderr
    readme = (ROOT / "README.md").read_text()
    entries = re.split(r"\n  (?=-)", shown.stdout.split("options:", 1)[1])[1:]  # one per option
    for entry in entries:
        flag, _, text = re.match(r"(?:-\w, )?(--[\w-]+)( [A-Z_]+)?(.*)", entry, re.S).groups()
        if flag not in ("--help", "--version"):
            assert text.split(), f"{name} {flag} has no help"
            assert f"`{flag}" in readme, f"the README does not name {name} {flag}"


@pytest.mark.parametrize("name", COMMANDS, ids=" ".join)
def test_every_command_tells_its_version(name):
    shown = cli(*name, "--version")
    assert shown.returncode == 0 and re.fullmatch(r"sigreload \d+\.\d+\.\d+\n", shown.stdout)


def test_help_lists_the_subcommands():
    shown = cli("sigreload", "--help").stdout
    for sub in ("sigreload reload", "sigreload css", "sigreload init"):
        assert sub in shown


def test_sigreload_passes_open_spa_verbose_and_allow_origin_to_its_processes(procs, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write(site / "index.html", "<!doctype html><html><body><h1>spa</h1></body></html>")
    opened, fake = tmp_path / "opened", tmp_path / "browser.py"  # webbrowser runs $BROWSER with the URL
    fake.write_text("import os, sys\nopen(sys.argv[1] + '.tmp', 'w').write(sys.argv[2])\n"
                    "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n")
    browser = f"{sys.executable} {fake} {opened} %s"
    http_port, ws_port = free_port(), free_port()
    stack = procs(module("sigreload") + [site, "--port", http_port, "--ws-port", ws_port, "--open", "--spa",
                                          "-v", "--allow-origin", "http://example.test:8000"],
                  env={**os.environ, "BROWSER": browser})
    stack.wait_seen(r"watching ", 15)
    stack.wait_seen(r"ready on ws://", 15)
    url = f"http://127.0.0.1:{http_port}/"
    until(opened.exists, 10, "--open: the browser was not started")
    assert opened.read_text() == url
    with urllib.request.urlopen(url + "some/route", timeout=5 * SCALE) as page:  # --spa
        assert b"<h1>spa</h1>" in page.read()
    stack.wait_for(r"GET /some/route", 5)  # -v: the HTTP server logs requests
    with client(ws_port, origin="http://example.test:8000") as ws:  # --allow-origin
        assert ws.protocol.state.name == "OPEN"
    with pytest.raises(InvalidStatus):
        client(ws_port, origin="http://other.test:8000")


def test_a_folder_named_like_a_command_is_served(procs, tmp_path):
    (tmp_path / "css").mkdir()
    write(tmp_path / "css" / "index.html", "<h1>the css folder</h1>")
    http_port = free_port()
    stack = procs(module("sigreload") + ["css", "--port", http_port, "--ws-port", free_port()], cwd=tmp_path)
    stack.wait_seen(r"serving the folder \./css here", 15)
    stack.wait_seen(r"sigreload\.http: serving ", 15)
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=5 * SCALE) as page:
        assert b"the css folder" in page.read()


@pytest.mark.portable_too
def test_no_http_runs_the_broadcaster_and_the_watcher_and_stops_them_together(procs, tmp_path):
    write(tmp_path / "index.html", "<h1>v1</h1>")
    ws_port = free_port()
    stack = procs(module("sigreload") + [tmp_path, "--no-http", "--ws-port", ws_port])
    stack.wait_seen(r"ready on ws://", 15)
    stack.wait_seen(r"watching ", 15)
    children = psutil.Process(stack.pid).children()
    assert len(children) == 2
    with client(ws_port) as ws:
        recv(ws)
        write(tmp_path / "index.html", "<h1>v2</h1>")
        assert '"reload"' in recv(ws)
    os.kill(stack.pid, signal.SIGINT)  # Ctrl-C
    assert stack.exit_code() == 0
    psutil.wait_procs(children, timeout=5 * SCALE)
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)
    assert "sigreload.http" not in stack.output()


@pytest.mark.portable_too
@pytest.mark.parametrize("under_r, advice", [(False, "pass --ws-port"), (True, "set WS_PORT=<another port>")])
def test_a_busy_port_names_the_flag_of_the_command_that_was_run(procs, broadcaster, tmp_path, under_r, advice):
    holder, port = broadcaster
    env = {**os.environ, "SIGRELOAD_UNDER_R": "1"} if under_r else None
    stack = procs(module("sigreload") + [tmp_path, "--no-http", "--ws-port", port], env=env)
    line = stack.wait_for(r"is in use", 15).string
    assert line.endswith(f"port {port} is in use by PID {holder.pid}; stop that process or {advice}")
    assert stack.exit_code() != 0


@pytest.mark.parametrize("sub", [[], ["reload"], ["init"]], ids=lambda sub: " ".join(["sigreload", *sub]))
def test_python_m_sigreload_says_its_name_in_usage(sub):
    shown = cli("sigreload", *sub, "--help")
    assert shown.returncode == 0 and shown.stdout.startswith("usage: sigreload "), shown.stdout[:80]


def test_livereload_followed_by_a_folder_takes_the_default_port(tmp_path):
    """`--livereload .` is the folder `.`; the folder is checked (the port is not bound)."""
    shown = cli("sigreload", "--livereload", tmp_path / "missing")
    assert shown.returncode == 1 and shown.stderr.strip().endswith("missing: no such folder"), shown.stderr
    from sigreload import cli as command

    args = command.make_parser().parse_args(command.bare_livereload(["--livereload", ".", "-v"]))
    assert (args.livereload, args.root, args.verbose) == (35729, ".", True)
    args = command.make_parser().parse_args(command.bare_livereload(["--livereload", "35730", "site"]))
    assert (args.livereload, args.root) == (35730, "site")


def held(port, listen=True):
    """A socket of this process on 127.0.0.1:``port`` (listening), or None when someone else has it."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    if listen:
        sock.listen()
    return sock


def run_sigreload(argv, cwd):
    done = subprocess.run(module("sigreload") + [str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=30 * SCALE)
    return done.returncode, (done.stdout + done.stderr).splitlines()


def test_a_busy_port_is_one_line_naming_its_owner_before_anything_is_ready(tmp_path):
    with held(free_port()) as sock:
        port = sock.getsockname()[1]
        status, lines = run_sigreload([tmp_path, "--port", port, "--ws-port", free_port()], tmp_path)
    assert status == 1
    assert lines == [f"sigreload: port {port} is in use by PID {os.getpid()}; stop that process or pass --port"]


def test_sigreload_css_beside_a_css_folder_says_what_it_does_before_a_busy_port(tmp_path):
    """r32n3: with sigreload running (its port busy), `sigreload css` in a folder that has
    css/ said only the busy port, not that it meant to serve ./css."""
    (tmp_path / "css").mkdir()
    with held(free_port()) as sock:
        port = sock.getsockname()[1]
        status, lines = run_sigreload(["css", "--port", port, "--ws-port", free_port()], tmp_path)
    assert status == 1 and len(lines) == 2, lines
    assert lines[0].endswith("serving the folder ./css here (the command is sigreload-css)")
    assert f"port {port} is in use" in lines[1]


def test_the_same_port_for_http_and_the_broadcaster_is_refused_in_one_line(tmp_path):
    port = free_port()
    status, lines = run_sigreload([tmp_path, "--port", port, "--ws-port", port], tmp_path)
    assert status == 2 and lines == [f"sigreload: port {port} is given twice: each server needs its own"]


def test_a_port_held_by_an_outgoing_connection_asks_no_one_to_stop(tmp_path):
    with held(free_port()) as server, held(free_port(), listen=False) as client_end:
        client_end.connect(server.getsockname())  # its own end: port, a connection's, no server's
        port = client_end.getsockname()[1]
        status, lines = run_sigreload([tmp_path, "--port", port, "--ws-port", free_port()], tmp_path)
    assert status == 1 and len(lines) == 1, lines
    assert f"port {port} is held by a connection's end, not a server" in lines[0]
    assert "stop that process" not in lines[0]


def test_busy_default_ports_move_to_the_next_free_ones_and_reloads_follow(procs, tmp_path):
    """As Vite does: the default ports (8000, 5678), when busy, give way to the next free ones, said
    in one line each; the watcher and `sigreload reload` find the broadcaster on its port."""
    holders = [held(8000), held(5678)]  # None: someone else holds it, which is busy too
    try:
        write(tmp_path / "index.html", "<h1>v1</h1>")
        stack = procs(module("sigreload"), cwd=tmp_path)
        ws = int(stack.wait_seen(r"port 5678 is (?:in use|held).*: the broadcaster listens on (\d+) instead "
                                 r"\(a pasted snippet must name it\); --ws-port chooses", 15).group(1))
        http = int(stack.wait_seen(r"port 8000 is .*: the HTTP server listens on (\d+) instead; --port chooses",
                                   15).group(1))
        assert ws != 5678 and http != 8000
        stack.wait_seen(rf"ready on ws://127\.0\.0\.1:{ws} ", 15)
        stack.wait_seen(rf"at http://127\.0\.0\.1:{http}/", 15)
        stack.wait_seen("watching", 15)
        with client(ws) as conn:
            recv(conn)
            write(tmp_path / "index.html", "<h1>v2</h1>")
            assert '"reload"' in recv(conn)
            status, lines = run_sigreload(["reload"], tmp_path)  # no --ws-port: it finds the one started here
            assert status == 0, lines
            assert '"reload"' in recv(conn)
    finally:
        for sock in filter(None, holders):
            sock.close()


def test_reload_on_any_port_never_signals_a_decoy_named_like_the_broadcaster(procs, tmp_path):
    """`sigreload reload` without --ws-port looks on every port: a process of the
    user's that is merely named reload_server.py (a blog's own server) and listens
    somewhere is no broadcaster: it made no message folder."""
    write(tmp_path / "reload_server.py", "import http.server, sys\n"
          "server = http.server.HTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)\n"
          "print('listening', flush=True)\nserver.serve_forever()\n")
    decoy = procs([sys.executable, "reload_server.py"], cwd=tmp_path)
    decoy.wait_for("listening")
    shown = cli("sigreload", "reload")
    assert f"PID {decoy.pid}" not in shown.stdout and running(psutil.Process(decoy.pid)), shown  # SIGUSR1 kills it
def test_a_port_held_by_a_running_sigreloads_child_names_that_sigreload(procs, site, tmp_path):
    """Issue 36: the line named the broadcaster child's PID, not the sigreload the user started."""
    http, ws = free_port(), free_port()
    first = procs(module("sigreload") + [site, "--port", http, "--ws-port", ws])
    first.wait_stack()
    first.wait_seen("ready on")
    for flag, busy, args in (("--ws-port", ws, ["--port", free_port(), "--ws-port", ws]),
                             ("--port", http, ["--port", http, "--ws-port", free_port()])):
        done = cli("sigreload", tmp_path, *args)
        assert done.returncode == 1
        assert (done.stdout + done.stderr).splitlines() == [
            f"sigreload: port {busy} is in use by sigreload (PID {first.pid}); stop that process or pass {flag}"]


def test_ctrl_c_while_the_processes_start_stops_them_without_a_traceback(procs, tmp_path):
    """Issue 34: the terminal's SIGINT reached the children while they imported
    (KeyboardInterrupt tracebacks); only sigreload gets it, and stops them."""
    write(tmp_path / "index.html", "<h1>v1</h1>")
    stack = procs(module("sigreload") + [tmp_path, "--port", free_port(), "--ws-port", free_port()])
    until(lambda: len(psutil.Process(stack.pid).children()) == 3, 15, "the three processes never started")
    children = psutil.Process(stack.pid).children()
    os.killpg(stack.pid, signal.SIGINT)  # the terminal signals its foreground group
    assert stack.exit_code(10) == 0
    psutil.wait_procs(children, timeout=5 * SCALE)
    assert not any(map(running, children))
    assert "Traceback" not in stack.output() and "KeyboardInterrupt" not in stack.output()


def test_sigkill_while_the_processes_start_leaves_none_of_them(procs, tmp_path):
    """The reviewer r34a2: sigreload killed with -9 while its children still imported
    left all three running (each in a session of its own, parent now 1, took itself
    for setsid'd and followed no one). The pipe it was given says its spawner is gone."""
    write(tmp_path / "index.html", "<h1>v1</h1>")
    stack = procs(module("sigreload") + [tmp_path, "--port", free_port(), "--ws-port", free_port()])
    until(lambda: len(psutil.Process(stack.pid).children()) == 3, 15, "the three processes never started")
    children = psutil.Process(stack.pid).children()
    stack.popen.kill()  # at once: they are still importing
    gone, alive = psutil.wait_procs(children, timeout=15 * SCALE)
    for proc in alive:
        proc.kill()
    assert not alive, [p.cmdline() for p in alive]


@pytest.mark.parametrize("server, option", [("http_server", "--port"), ("broadcaster", "--ws-port")])
def test_a_default_port_taken_before_its_server_binds_moves_on_in_one_line(procs, tmp_path, server, option):
    """Issue 34: another user may bind a default port between sigreload's look and its
    server's bind: that server's port moves on, said once (no second line, no exit)."""
    write(tmp_path / "index.html", "<h1>v1</h1>")
    stack = procs(module("sigreload"), cwd=tmp_path)
    argv = []
    until(lambda: argv.extend(next((p.cmdline() for p in psutil.Process(stack.pid).children()
                                    if f"sigreload.{server}" in p.cmdline()), [])) or argv, 15, "no server started")
    port = int(argv[argv.index(option if server == "http_server" else "--port") + 1])
    sock = held(port)  # the server is still importing: it binds in a while
    try:
        assert sock is not None, f"the server bound port {port} before the test could"
        moved = int(stack.wait_seen(rf"port {port} is in use by PID {os.getpid()}: .* listens on (\d+) instead.*; "
                                    rf"{option} chooses", 15).group(1))
        stack.wait_seen(rf"ready on ws://127\.0\.0\.1:{moved} " if option == "--ws-port"
                        else rf"at http://127\.0\.0\.1:{moved}/", 15)
        stack.wait_seen("watching", 15)
        assert stack.popen.poll() is None
        said = stack.output()
        assert said.count(f"port {port} ") == 1 and "exited with status" not in said, said
    finally:
        if sock is not None:
            sock.close()
