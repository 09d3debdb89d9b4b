"""Hardening: bad input, faults, load and exposure. Real processes and sockets.

Figures a person would want (storm counts, latencies, memory) are printed:
run with ``-s`` to see them.
"""

import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conftest import SCALE, cli, client, drain, free_port, module, recv, run_async, running, until, write


def reloads(ws, quiet=0.6):
    return [m for m in drain(ws, quiet) if '"hello"' not in m]


# -- editors' saves ---------------------------------------------------------------

def vim_save(path, text):
    backup = path.with_name(path.name + "~")
    (path.parent / "4913").write_text("")  # vim probes the folder first
    (path.parent / "4913").unlink()
    os.rename(path, backup)  # the file is briefly missing
    path.write_text(text)
    backup.unlink()


def jetbrains_save(path, text):
    tmp = path.with_name(path.name + "___jb_tmp___")
    old = path.with_name(path.name + "___jb_old___")
    tmp.write_text(text)
    os.rename(path, old)
    os.rename(tmp, path)
    old.unlink()


def cp_p_save(path, text):
    """Same size, and the old (or an older) mtime, as cp -p or rsync leave it."""
    st = os.stat(path)
    text = text[: st.st_size].ljust(st.st_size, "x")
    with open(path, "r+") as f:
        f.write(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))


@pytest.mark.parametrize("save", [vim_save, jetbrains_save, cp_p_save, write], ids=lambda f: f.__name__)
def test_each_editor_save_gives_one_or_two_reloads(watched, save):
    _, _, port, site = watched
    with client(port) as ws:
        recv(ws)
        save(site / "index.html", "<h1>saved</h1>")
        assert 1 <= len(reloads(ws)) <= 2


def test_temp_and_backup_files_alone_never_reload(watched):
    _, _, port, site = watched
    with client(port) as ws:
        recv(ws)
        for name in ["4913", ".index.html.swp", "index.html~", "a___jb_tmp___", "#x#", "x.tmp"]:
            (site / name).write_text("temp")
            (site / name).unlink()
        assert reloads(ws) == []


def test_create_then_delete_within_one_poll_gives_no_reload(procs, broadcaster, site):
    _, port = broadcaster
    w = procs(module("watcher") + [site, "--ws-port", port, "--poll"])
    w.wait_for("watching")
    with client(port) as ws:
        recv(ws)
        (site / "flash.html").write_text("gone soon")
        (site / "flash.html").unlink()
        assert reloads(ws) == []


# -- trees ------------------------------------------------------------------------

def as_plain_user():
    """Root reads everything: drop the capabilities that let it (util-linux setpriv)."""
    if os.getuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot make a folder unreadable")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def test_unreadable_folder_warns_once_and_the_rest_still_reloads(procs, broadcaster, site):
    _, port = broadcaster
    (site / "locked").mkdir()
    (site / "locked" / "secret.html").write_text("x")
    (site / "locked").chmod(0)
    try:
        w = procs(as_plain_user() + module("watcher") + [site, "--ws-port", port, "--poll", "--interval", "0.02"])
        w.wait_for("cannot read")
        with client(port) as ws:
            recv(ws)
            for i in range(3):  # many passes later...
                write(site / "index.html", f"<p>{i}</p>")
                assert '"reload"' in recv(ws)
        assert sum("cannot read" in line for line in w.seen) == 1
    finally:
        (site / "locked").chmod(0o755)


def test_loops_dangling_links_odd_names_fifos_and_deep_paths(procs, broadcaster, site):
    _, port = broadcaster
    os.symlink(site, site / "loop")
    os.symlink(site / "nowhere", site / "dangling")
    os.mkfifo(site / "fifo")
    socket.socket(socket.AF_UNIX).bind(str(site / "sock"))
    for name in [b"\xff\xfe.html", b"new\nline.html", b"-dash.html"]:
        (site / os.fsdecode(name)).write_text("odd")
    deep = site.joinpath(*["d"] * 200)
    deep.mkdir(parents=True)
    (deep / "deep.html").write_text("deep")
    w = procs(module("watcher") + [site, "--ws-port", port])
    w.wait_for("watching")
    with client(port) as ws:
        recv(ws)
        write(deep / "deep.html", "deeper")
        assert '"reload"' in recv(ws)
        write(site / os.fsdecode(b"new\nline.html"), "odd too")
        assert '"reload"' in recv(ws)
    w.wait_for(r"new\\nline\.html changed")  # escaped in the log, one line
    assert psutil.Process(w.pid).cpu_percent(interval=0.5) < 50


def test_root_deleted_and_rebuilt_reloads_once_after_the_rebuild(watched, tmp_path):
    _, w, port, site = watched
    backup = tmp_path / "backup"
    shutil.copytree(site, backup)
    with client(port) as ws:
        recv(ws)
        shutil.rmtree(site)
        assert reloads(ws) == []  # not while the folder is gone
        site.mkdir()
        assert reloads(ws) == []  # nor while it is empty
        shutil.copytree(backup, site, dirs_exist_ok=True)
        (site / "index.html").write_text("<h1>rebuilt</h1>")
        assert len(reloads(ws)) == 1
        write(site / "style.css", "h1 { color: red }")  # and watching resumed
        assert '"css"' in recv(ws)


# -- the port ---------------------------------------------------------------------

def raw(port, data, read=True):
    with socket.create_connection(("127.0.0.1", port), timeout=5 * SCALE) as s:
        s.sendall(data)
        return s.recv(65536) if read else b""


def rss(pid):
    return psutil.Process(pid).memory_info().rss / 2**20


def test_junk_on_the_port_is_refused_and_reloads_go_on(broadcaster):
    proc, port = broadcaster
    with client(port, "/") as healthy:
        for junk in (b"\x00\xffjunk\r\n\r\n", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n"):
            assert raw(port, junk)[:10] in (b"HTTP/1.1 4", b"")  # refused (400, 414), or closed
        offer = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                 b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
        answer = raw(port, offer)
        assert answer.startswith(b"HTTP/1.1 101") and b"permessage-deflate" not in answer
        with client(port, "/") as big:
            with pytest.raises(ConnectionClosed) as closed:
                big.send(b"x" * 10_000_000)
                recv(big)
            assert closed.value.rcvd.code == 1009
        with client(port, "/") as bad:
            bad.send(b"\xff\xfe", text=True)  # invalid UTF-8 in a text frame
            with pytest.raises(ConnectionClosed) as closed:
                recv(bad)
            assert closed.value.rcvd.code == 1007
        before = rss(proc.pid)
        with client(port, "/") as chatty:
            for _ in range(100_000):
                chatty.send("x")
        os.kill(proc.pid, signal.SIGUSR1)
        assert recv(healthy) == "reload"
        print(f"\n100,000 tiny messages: broadcaster RSS {before:.1f} -> {rss(proc.pid):.1f} MB")
        assert rss(proc.pid) < before + 20
    assert proc.popen.poll() is None


# -- signals ----------------------------------------------------------------------

def test_signal_storms_are_bounded_and_the_last_is_never_lost(broadcaster):
    proc, port = broadcaster
    with client(port) as ws:
        recv(ws)
        end = time.monotonic() + 1
        for i in range(1000):  # 1,000 in one second
            os.kill(proc.pid, signal.SIGUSR1)
            time.sleep(max(0, end - (1000 - i - 1) / 1000 - time.monotonic()))  # pacing IS the test
        last_signal = time.monotonic()
        paced = drain(ws)
        arrived = time.monotonic()
        for _ in range(10_000):  # as fast as possible
            os.kill(proc.pid, signal.SIGUSR1)
        burst = drain(ws)
        os.kill(proc.pid, signal.SIGUSR1)
        single = drain(ws)
    print(f"\nstorms: 1,000 in 1 s -> {len(paced)} messages; 10,000 at once -> {len(burst)}; "
          f"then 1 -> {len(single)}")
    assert 1 <= len(paced) <= 1 / 0.05 + 5
    assert 1 <= len(burst) <= 50
    assert len(single) == 1
    assert arrived > last_signal
    gens = [json.loads(m)["generation"] for m in paced + burst + single]
    assert gens == sorted(gens) and len(set(gens)) == len(gens)


def test_sigusr1_by_mistake_to_the_watcher_is_harmless(watched):
    _, w, port, site = watched
    os.kill(w.pid, signal.SIGUSR1)
    os.kill(w.pid, signal.SIGUSR2)
    with client(port) as ws:
        recv(ws)
        write(site / "index.html", "still here")
        assert '"reload"' in recv(ws)
    assert w.popen.poll() is None


# -- faults -----------------------------------------------------------------------

@pytest.mark.portable_too
def test_watcher_signals_a_restarted_broadcaster_never_the_old_pid(procs, site):
    port = free_port()
    first = procs(module("broadcaster") + ["--port", port])
    first.wait_for("ready on")
    w = procs(module("watcher") + [site, "--ws-port", port])
    w.wait_for("watching")
    with client(port) as ws:
        recv(ws)
        write(site / "index.html", "1")
        assert '"reload"' in recv(ws)
    w.wait_for(f"broadcaster PID {first.pid}")
    first.popen.kill()
    first.popen.wait()
    second = procs(module("broadcaster") + ["--port", port])
    second.wait_for("ready on")
    with client(port) as ws:
        recv(ws)
        write(site / "index.html", "2")
        assert '"reload"' in recv(ws)
    w.wait_for(f"broadcaster PID {second.pid}")


@pytest.mark.portable_too
def test_a_second_copy_fails_with_port_in_use_and_never_signals_the_first(procs, site, tmp_path):
    http, ws_port = free_port(), free_port()
    first = procs(module("sigreload") + [site, "--port", http, "--ws-port", ws_port])
    first.wait_stack()
    first.wait_seen("ready on")
    other = tmp_path / "other"
    shutil.copytree(site, other)
    with client(ws_port) as ws:
        recv(ws)
        second = procs(module("sigreload") + [other, "--port", http, "--ws-port", ws_port])
        for i in range(20):  # edits while the second copy starts and fails
            (other / "index.html").write_text(f"second {i}")
        assert second.exit_code() != 0
        second.wait_seen(rf"port ({ws_port}|{http}) is in use")  # read by a thread: maybe after the exit
        assert reloads(ws) == []


FROZEN = """
import asyncio, sys
from websockets.asyncio.client import connect
async def main():
    async with connect(sys.argv[1]) as ws:
        print("connected", flush=True)
        await asyncio.sleep(3600)
asyncio.run(main())
"""


def test_a_frozen_client_delays_nobody_and_is_dropped(procs, tmp_path):
    b = procs(module("broadcaster") + ["--port", "0", "--ping-interval", "0.5", "-v"])
    port = int(b.wait_for(r"ready on ws://127\.0\.0\.1:(\d+)").group(1))
    script = tmp_path / "frozen.py"
    script.write_text(FROZEN)
    frozen = procs([sys.executable, "-u", script, f"ws://127.0.0.1:{port}/"])
    frozen.wait_for("connected")
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        async def healthy():
            from websockets.asyncio.client import connect

            clients = [await connect(f"ws://127.0.0.1:{port}/") for _ in range(10)]
            for _ in range(5):
                os.kill(b.pid, signal.SIGUSR1)
                # asyncio.wait_for, not asyncio.timeout: Python 3.10 has none
                got = await asyncio.wait_for(asyncio.gather(*(c.recv() for c in clients)), 2 * SCALE)
                assert got == ["reload"] * 10
                await asyncio.sleep(0.06)  # past the merge window: every signal is its own message
            for c in clients:
                await c.close()

        run_async(healthy())
        b.wait_for("client left", seconds=5)  # keepalive dropped the frozen one
    finally:
        os.kill(frozen.pid, signal.SIGCONT)


def limit_fds(n):
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def test_half_open_connections_vanishing_clients_and_fd_exhaustion(procs):
    b = procs(module("broadcaster") + ["--port", "0"], preexec_fn=limit_fds(128))  # 30 clients fit, 200 do not
    port = int(b.wait_for(r"ready on ws://127\.0\.0\.1:(\d+)").group(1))
    half_open = []
    for _ in range(200):  # never finish the handshake; past the fd limit
        try:
            half_open.append(socket.create_connection(("127.0.0.1", port), timeout=1))
        except OSError:
            break
    for s in half_open:
        s.close()

    async def vanishing():
        from websockets.asyncio.client import connect

        clients = [await connect(f"ws://127.0.0.1:{port}/") for _ in range(30)]
        os.kill(b.pid, signal.SIGUSR1)
        for c in clients:  # vanish mid-broadcast: reset, no close frame
            c.transport.abort()

    until(lambda: not refused("127.0.0.1", port), 5, "the broadcaster accepts again")
    run_async(vanishing())
    with client(port, "/") as ws:
        os.kill(b.pid, signal.SIGUSR1)
        assert recv(ws) == "reload"
    assert b.popen.poll() is None


def test_closed_stdout_gives_no_traceback_loop_and_no_spinning(site):
    port = free_port()
    started = []
    try:
        for argv in (module("broadcaster") + ["--port", port, "-v"],
                     module("watcher") + [site, "--ws-port", port, "-v"]):
            p = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, start_new_session=True)
            started.append(p)
            p.stdout.readline()  # its first line: it is up
            p.stdout.close()  # the terminal went away
        with client(port) as ws:
            recv(ws)
            for i in range(5):
                write(site / "index.html", str(i))
                assert '"reload"' in recv(ws)
        for p in started:
            assert p.poll() is None
            assert psutil.Process(p.pid).cpu_percent(interval=0.5) < 10
    finally:
        for p in started:
            p.kill()
            p.wait()


def wakeups(family):
    """Voluntary context switches of every thread of ``family`` so far: each is a wake-up
    after a wait (involuntary ones are the scheduler's, on a loaded machine: not ours)."""
    return sum(psutil.Process(t.id).num_ctx_switches().voluntary for p in family for t in p.threads())


@pytest.mark.parametrize("name, ready", [
    ("sigreload", ("serving", "ready on", "watching")), ("http_server", ("serving",)),
    ("broadcaster", ("ready on",)), ("watcher", ("watching",))])
@pytest.mark.portable_too
def test_each_process_follows_a_killed_parent_without_polling(procs, site, name, ready, platform_paths):
    """Started by a shell (no lifeline), each exits when that shell is killed, and
    sleeps meanwhile: the kernel tells it (Linux), nothing polls. Without
    PR_SET_PDEATHSIG (macOS) it looks at its parent twice a second."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the parent's exit signal is Linux's (elsewhere it is polled)")
    http, ws = free_port(), free_port()
    args = {"sigreload": [site, "--port", http, "--ws-port", ws], "http_server": [site, "--port", http],
            "broadcaster": ["--port", ws], "watcher": [site, "--ws-port", ws]}[name]
    command = " ".join(f"'{a}'" for a in module(name) + args)
    shell = procs(["sh", "-c", f"unset SIGRELOAD_LIFELINE; {command} & wait"])
    for line in ready:  # all of it up: start-up is no idle time
        shell.wait_seen(line)
    child = psutil.Process(shell.pid).children()[0]
    family = [child] + child.children(recursive=True)
    woke = wakeups(family)
    time.sleep(1)  # the behaviour under test is sleeping: a second of it
    woken = wakeups(family) - woke
    if platform_paths == "linux":  # elsewhere it looks at its parent twice a second: only the exit is tested
        assert woken <= 2 * len(family), f"{woken} wake-ups in an idle second"
    os.kill(shell.pid, signal.SIGKILL)
    until(lambda: not any(map(running, family)), 10, f"{name} outlived its parent")  # (3 s failed under load)


# -- load -------------------------------------------------------------------------

def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def test_500_clients_all_get_every_signal(broadcaster):
    proc, port = broadcaster

    async def load():
        from websockets.asyncio.client import connect

        clients = [await connect(f"ws://127.0.0.1:{port}/") for _ in range(500)]
        latencies = []
        for _ in range(20):
            start = time.monotonic()
            os.kill(proc.pid, signal.SIGUSR1)

            async def one(c):
                assert await c.recv() == "reload"
                return time.monotonic() - start

            latencies += await asyncio.wait_for(asyncio.gather(*(one(c) for c in clients)), 5 * SCALE)
            await asyncio.sleep(0.06)  # past the merge window: 20 separate messages
        for c in clients:
            await c.close()
        return latencies

    latencies = run_async(load())
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    print(f"\n500 clients x 20 signals: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    assert len(latencies) == 500 * 20
    assert p99 < 500 * SCALE


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 with websockets 16: RSS rises 28 -> 80 MB on the "
                    "first 10,000 cycles and then stays at 68-86 MB over 30,000 more (no leak: the allocator's "
                    "high-water mark), which a 10 MB bound cannot tell apart; 3.11+ runs it")
def test_10000_connect_disconnect_cycles_return_to_baseline(broadcaster):
    proc, port = broadcaster
    p = psutil.Process(proc.pid)

    async def cycles(n, parallel=50):
        from websockets.asyncio.client import connect

        async def worker(count):
            for _ in range(count):
                async with connect(f"ws://127.0.0.1:{port}/"):
                    pass

        await asyncio.gather(*(worker(n // parallel) for _ in range(parallel)))

    run_async(cycles(500))  # warm up allocator and caches
    fds, mem = p.num_fds(), p.memory_info().rss / 2**20
    run_async(cycles(10_000))
    until(lambda: p.num_fds() <= fds, 5, f"fds back to {fds}")
    after = p.memory_info().rss / 2**20
    print(f"\n10,000 cycles: fds {fds} -> {p.num_fds()}, RSS {mem:.1f} -> {after:.1f} MB")
    assert after < mem + 10


SOAK = float(os.environ.get("SIGRELOAD_SOAK_SECONDS", "120"))


def test_idle_soak_gives_zero_reloads(procs, site, browser):
    ws_port = free_port()
    b = procs(module("broadcaster") + ["--port", ws_port])
    b.wait_for("ready on")
    w = procs(module("watcher") + [site, "--ws-port", ws_port])
    w.wait_for("watching")
    http = procs(module("http_server") + [site, "--port", "0", "--inject", ws_port])
    url = http.wait_for(r"at (http://\S+/)").group(1)
    context = browser.new_context()
    loads = []
    for _ in range(5):
        page = context.new_page()
        page.on("load", lambda _: loads.append(1))
        with page.expect_websocket():
            page.goto(url)
    page.wait_for_timeout(SOAK * 1000)  # idle IS the test: pages load files, nothing edits
    context.close()
    assert len(loads) == 5
    assert not any("changed" in line for line in w.seen), w.output()


# -- exposure ---------------------------------------------------------------------

def refused(host, port):
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((host, port)) != 0


def test_defaults_listen_on_loopback_only(broadcaster, http_server):
    _, ws_port = broadcaster
    _, url = http_server
    http_port = int(url.rsplit(":", 1)[1].strip("/"))
    for port in (ws_port, http_port):
        assert not refused("127.0.0.1", port)
        assert refused("127.0.0.2", port)


def test_lan_addresses_are_shown_as_urls_would_show_them():
    from sigreload import command_line

    for address in command_line.lan_addresses():
        assert not address.startswith("127.") and address != "[::1]"


@pytest.mark.parametrize("origin, allowed", [
    (None, True), ("null", False), ("http://localhost:8000", True), ("http://127.0.0.1:9", True),
    ("https://app.localhost", True), ("http://[::1]:8000", True), ("http://extra.test:8000", True),
    ("https://evil.example", False), ("http://127.0.0.1.evil.example", False), ("http://localhost.evil", False),
])
def test_only_trusted_page_origins_may_connect(procs, origin, allowed):
    b = procs(module("broadcaster") + ["--port", "0", "--allow-origin", "http://extra.test:8000"])
    port = int(b.wait_for(r"ready on ws://127\.0\.0\.1:(\d+)").group(1))
    headers = {"Origin": origin} if origin else {}
    if allowed:
        with client(port, "/", additional_headers=headers, origin=None):
            pass
    else:
        with pytest.raises(InvalidStatus) as refused_:
            client(port, "/", additional_headers=headers, origin=None).__enter__()
        assert refused_.value.response.status_code == 403


@pytest.mark.parametrize("command", ["broadcaster", "sigreload"])
def test_file_pages_and_sandboxed_frames_only_with_allow_file_pages(procs, site, command):
    """Origin: null is a file:// page, or a sandboxed frame of any web site: refused unless asked for."""
    argv = {"broadcaster": module("broadcaster") + ["--port", "0"],
            "sigreload": module("sigreload") + [site, "--port", "0", "--ws-port", free_port()]}[command]
    b = procs(argv + ["--allow-file-pages"])
    port = int(b.wait_for(r"ready on ws://127\.0\.0\.1:(\d+)").group(1))
    with client(port, "/sigreload", additional_headers={"Origin": "null"}, origin=None) as ws:
        assert json.loads(recv(ws))["type"] == "hello"


def test_http_log_escapes_control_characters(procs, site):
    http = procs(module("http_server") + [site, "--port", "0", "-v"])
    url = http.wait_for(r"at (http://\S+/)").group(1)
    port = int(url.rsplit(":", 1)[1].strip("/"))
    raw(port, b"GET /\x1b[31mred HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    line = http.wait_for(r"GET /")
    assert "\x1b" not in line.string and "\\x1b" in line.string


@pytest.mark.portable_too
def test_two_broadcasters_on_one_port_are_refused(procs):
    if not socket.has_ipv6 or refused_ipv6():
        pytest.skip("no IPv6 loopback")
    port = free_port()
    a = procs(module("broadcaster") + ["--port", port, "--host", "127.0.0.1"])
    a.wait_for("ready on")
    b = procs(module("broadcaster") + ["--port", port, "--host", "::1"])  # the same two loopbacks: refused
    assert b.exit_code() == 1 and f"port {port} is in use by PID {a.pid}" in b.output()
    c = procs(module("broadcaster") + ["--port", port, "--host", "127.0.0.2"])  # another address of its own
    c.wait_for("ready on")
    result = cli("sigreload", "reload", "--ws-port", port)
    assert result.returncode == 1
    assert "two broadcasters listen on port" in result.stderr


def refused_ipv6():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return False
    except OSError:
        return True
