"""sigreload: serve a folder, watch it, and live-reload every page showing it.

``sigreload`` starts the three processes (HTTP server, broadcaster, watcher)
as children and stops them together; ``sigreload-reload`` / ``sigreload-css``
signal a running broadcaster. The helpers here are shared by every process:
none of them holds state of another process.
"""

import argparse
import importlib.util
import logging
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path


WS_PORT = 5678
HTTP_PORT = 8000
HOST = "127.0.0.1"
TRIGGERS = ("SIGUSR1", "SIGUSR2")
BROADCASTER_NAMES = ("reload_server.py", "sigreload-broadcast")
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
PARENT = os.getppid()  # at start-up: the process we follow (see orphaned)
LIFELINE_ENV = "SIGRELOAD_LIFELINE"

log = logging.getLogger("sigreload")


def require_signals():
    """Exit with one line where the platform has no SIGUSR1 (Windows)."""
    if not hasattr(signal, "SIGUSR1"):
        sys.exit("sigreload: this platform has no SIGUSR1 (Windows?); "
                 "sigreload runs on Linux and macOS (and in WSL)")


def setup_logging(verbose=False):
    """Configure logging once, for a process's main()."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(name)s: %(message)s", stream=sys.stdout)
    logging.getLogger("websockets").setLevel(logging.DEBUG if verbose else logging.WARNING)
    # The terminal may go away (stdout closed): never loop on tracebacks.
    logging.raiseExceptions = False


def _inherited_lifeline():
    """The read end of a pipe whose write end the process that spawned us holds
    (``spawn``): it reads EOF the moment that process is gone. None without one."""
    try:
        fd = int(os.environ.pop(LIFELINE_ENV, ""))  # popped: not our children's
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.set_inheritable(fd, False)
            return fd
    except (ValueError, OSError):
        pass
    return None


LIFELINE = _inherited_lifeline()
PARENT_GONE = getattr(signal, "SIGRTMIN", None)  # what the kernel sends us when PARENT exits
_wakeup = None  # read end of the signal wakeup pipe (stop_event)
_told = False  # whether the kernel sends PARENT_GONE (Linux: prctl)


def orphaned():
    """Whether the process that started us is gone: our lifeline reads EOF, or,
    without one, our parent changed (getppid).

    rfilerunner's ``r`` does not forward SIGTERM and exits with os._exit on
    SIGINT; its children notice and shut down cleanly. A process started
    orphaned on purpose (nohup, init: parent 1) follows no one.
    """
    if LIFELINE is not None:
        return bool(select.select([LIFELINE], [], [], 0)[0])
    return PARENT != 1 and os.getppid() != PARENT


def _tell_when_parent_exits(handler):
    """Linux: have the kernel send PARENT_GONE (handled by ``handler``) when our
    parent exits (prctl PR_SET_PDEATHSIG), so following it needs no polling;
    returns whether it will. The signal also comes when only the thread that
    started us ends, so ``handler`` must check ``orphaned()``."""
    global _told
    if _told or LIFELINE is not None or PARENT == 1 or not sys.platform.startswith("linux"):
        return _told
    signal.signal(PARENT_GONE, handler)  # before asking: its default action kills
    try:
        import ctypes

        _told = ctypes.CDLL(None, use_errno=True).prctl(1, int(PARENT_GONE), 0, 0, 0) == 0
    except (OSError, AttributeError):  # no libc prctl: polled
        pass
    return _told


def lifeline(interval=0.5):
    """Send ourselves SIGTERM when the process that started us is gone (for
    asyncio processes; plain ones follow it in ``wait``). No wake-ups at idle:
    a thread blocks on the lifeline, or the kernel signals the parent's exit;
    elsewhere (macOS without a lifeline) a thread polls every ``interval``."""
    def stop_if_orphaned(*_):
        if orphaned():
            os.kill(os.getpid(), signal.SIGTERM)

    if _tell_when_parent_exits(stop_if_orphaned):
        stop_if_orphaned()  # it may have gone before we asked
        return

    def follow():
        if LIFELINE is not None:
            select.select([LIFELINE], [], [])
        while not orphaned():
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=follow, name="lifeline", daemon=True).start()


def stop_event():
    """An Event set by SIGINT, SIGTERM or SIGHUP (``wait`` also ends when our parent dies).

    For plain (threaded) processes: the handlers only set the Event. A
    SIGUSR1 or SIGUSR2 sent here by mistake is ignored, not fatal.
    """
    stop = threading.Event()
    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), lambda *_: stop.set())
    triggers = {getattr(signal, name) for name in TRIGGERS}
    for signum in triggers:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, triggers)
    # Whichever thread the kernel picks for a signal, its byte wakes wait().
    global _wakeup
    _wakeup, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    _tell_when_parent_exits(lambda *_: None)  # its byte wakes wait(), which looks
    return stop


def snippet_dir():
    """The folder holding reload.js and the demo page (repo or installed)."""
    here = Path(__file__).with_name("snippet")
    if here.is_dir():
        return here
    return Path(importlib.util.find_spec("sigreload_snippet").submodule_search_locations[0])


def wait(stop, done=None, tick=0.5):
    """Block until ``stop`` is set, ``done()`` is true (checked after each signal)
    or the process that started us is gone (then set ``stop``). The main thread
    sleeps in select() on the signal wakeup pipe and the lifeline: no wake-ups
    at idle (without a lifeline or the parent's exit signal, one per ``tick``).

    A signal the kernel delivers to another thread (watchdog's, the HTTP
    server's) runs its Python handler only when the main thread wakes: a
    bare ``stop.wait()`` could sleep through SIGINT forever.
    """
    fds = [fd for fd in (_wakeup, LIFELINE) if fd is not None]
    quiet = _wakeup is not None and (LIFELINE is not None or _told)
    while not stop.is_set() and not (done and done()):
        if orphaned():
            stop.set()
            break
        ready = select.select(fds, [], [], None if quiet else tick)[0]
        if _wakeup in ready:
            os.read(_wakeup, 512)  # the handlers run now, in this thread


def lan_addresses():
    """This machine's non-loopback addresses, as a URL would show them."""
    import psutil

    found = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            ip = a.address.split("%")[0]
            if a.family == socket.AF_INET and not ip.startswith("127."):
                found.append(ip)
            elif a.family == socket.AF_INET6 and ip != "::1" and not ip.startswith("fe80"):
                found.append(f"[{ip}]")
    return found or ["(no network address)"]


def runtime_dir(port):
    """This user's private folder for messages to the broadcaster on ``port``.

    Created 0700; refused (OSError) when another user owns it or can write to
    it: a planted message could only make pages skip a reload, never more.
    """
    temp = os.environ.get("XDG_RUNTIME_DIR") or os.environ.get("TMPDIR") or "/tmp"
    base = Path(temp) / f"sigreload-{os.getuid()}"
    folder = base / str(port)
    for f in (base, folder):
        f.mkdir(mode=0o700, exist_ok=True)
        st = f.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise OSError(f"{f} is not private to this user")
    return folder


def root_id(root):
    """An id of a served/watched folder: its device and inode (the path is never shown)."""
    st = os.stat(root)
    return f"{st.st_dev:x}-{st.st_ino:x}"


def post(port, message):
    """Leave ``message`` (JSON) for the broadcaster; send the signal after this.

    One file per message, written atomically: two quick changes never lose
    each other's paths.
    """
    import json  # here: most processes never need it

    folder = runtime_dir(port)
    name = f"{time.time_ns():020d}-{os.getpid()}"
    tmp = folder / f".{name}.tmp"
    tmp.write_text(json.dumps(message))
    os.replace(tmp, folder / f"{name}.json")


def collect(port):
    """Every message left for the broadcaster on ``port``, oldest first; consumed."""
    import json

    try:
        files = sorted(runtime_dir(port).glob("*.json"))
    except OSError:
        return []
    messages = []
    for f in files:
        try:
            messages.append(json.loads(f.read_text()))
            f.unlink()
        except (OSError, ValueError):
            messages.append({})  # unreadable: treat as "reload everything"
    return messages


def module_path(name):
    """Path of one of sigreload's modules, without importing it."""
    return importlib.util.find_spec(name).origin


def spawn(argv, **kwargs):
    """Popen ``argv`` with SIGUSR1/SIGUSR2 blocked from its first instruction.

    SIGUSR1's default action terminates: between exec and the broadcaster's
    first line a signal would kill it. A blocked signal stays pending until
    the broadcaster has its handlers and unblocks it.

    It also gets a lifeline: the read end of a pipe whose write end only we
    hold, so it sees EOF the moment we are gone, however we die (SIGKILL too).
    """
    triggers = {getattr(signal, name) for name in TRIGGERS}
    read, write = os.pipe()
    kwargs["env"] = {**(kwargs.get("env") or os.environ), LIFELINE_ENV: str(read)}
    kwargs["pass_fds"] = (read, *kwargs.get("pass_fds", ()))
    old = signal.pthread_sigmask(signal.SIG_BLOCK, triggers)
    try:
        proc = subprocess.Popen(argv, **kwargs)
    except BaseException:
        os.close(write)
        raise
    finally:
        os.close(read)
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    proc.lifeline = os.fdopen(write, "wb")  # closed when proc (or this process) goes
    return proc


def runs_broadcaster(cmdline):
    """True when a command line RUNS the broadcaster (not merely names it)."""
    args = list(cmdline)
    if args and os.path.basename(args[0]).startswith("python"):
        args = [a for a in args[1:] if a not in ("-u", "-B", "-E", "-s", "-S")]
        if args[:2] == ["-m", "reload_server"]:
            return True
    return bool(args) and os.path.basename(args[0]) in BROADCASTER_NAMES


def listening(conn, port):
    """True when psutil connection ``conn`` is a listening socket on ``port``."""
    import psutil

    return conn.status == psutil.CONN_LISTEN and bool(conn.laddr) and conn.laddr.port == port


def listens_on(proc, port):
    """True when ``proc`` has a listening TCP socket on ``port``."""
    import psutil  # here, not at the top: the HTTP server and supervisor never need it

    try:
        return any(listening(c, port) for c in proc.net_connections(kind="tcp"))
    except (psutil.Error, OSError):
        return False


def port_owner(port):
    """PID of whatever listens on ``port``, when psutil can tell; else None."""
    import psutil

    try:
        return next((c.pid for c in psutil.net_connections(kind="tcp") if listening(c, port) and c.pid), None)
    except (psutil.Error, OSError):
        return None


def find_server(port=WS_PORT):
    """The broadcaster listening on ``port``, as a psutil.Process, or None.

    Same user, a command line that runs the broadcaster, a listening socket
    on ``port``: all three, or it is not ours. Two candidates is an error.
    """
    import psutil

    found = []
    for proc in psutil.process_iter(["uids", "cmdline"]):
        info = proc.info
        if not info["uids"] or info["uids"].real != os.getuid():
            continue
        if proc.pid != os.getpid() and runs_broadcaster(info["cmdline"] or ()):
            if listens_on(proc, port):
                found.append(proc)
    if len(found) > 1:
        pids = ", ".join(str(p.pid) for p in found)
        raise LookupError(f"two broadcasters listen on port {port} (PIDs {pids})")
    return found[0] if found else None


def signal_server(proc, signum):
    """Signal ``proc``; False when it is gone (psutil refuses a reused PID)."""
    import psutil

    try:
        proc.send_signal(signum)
        return True
    except psutil.NoSuchProcess:
        return False


def trigger(signame, argv=None):
    """CLI: find the broadcaster and send it one signal; exit 1 when none."""
    require_signals()
    parser = argparse.ArgumentParser(description=f"Send {signame} to the broadcaster.")
    parser.add_argument("--ws-port", type=int, default=WS_PORT)
    args = parser.parse_args(argv)
    try:
        proc = find_server(args.ws_port)
    except LookupError as exc:
        sys.exit(f"sigreload: {exc}; signal the right one by hand")
    if proc is None or not signal_server(proc, getattr(signal, signame)):
        sys.exit(f"sigreload: no broadcaster listens on port {args.ws_port}; "
                 "start one with `r` or `sigreload-broadcast`")
    print(f"sigreload: sent {signame} to broadcaster PID {proc.pid}")


def reload_main(argv=None):
    trigger("SIGUSR1", argv)


def css_main(argv=None):
    trigger("SIGUSR2", argv)


INIT_RFILE = """\
# Live reload for this folder (https://pypi.org/project/sigreload/): run `r`.
# Settings from the environment: PORT (8000), WS_PORT (5678), LAN=1 (opt-in).
all: |
  # serve this folder, watch it, live-reload its pages
  exec sigreload . --port "${PORT:-8000}" --ws-port "${WS_PORT:-5678}" ${LAN:+--lan}

reload: |
  # reload every connected page
  exec sigreload reload --ws-port "${WS_PORT:-5678}"

css: |
  # refresh stylesheets only
  exec sigreload css --ws-port "${WS_PORT:-5678}"
"""

INIT_PAGE = """\
<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>New page</title>
</head>
<body>
  <h1>It works</h1>
  <p>Edit index.html and save: this page reloads by itself.</p>
  <script src="http://127.0.0.1:5678/reload.js"></script>
</body>
</html>
"""


def init_main(argv=None):
    """CLI: write rfile.yml (and a starter index.html if there is no page) here."""
    parser = argparse.ArgumentParser(description=init_main.__doc__)
    parser.add_argument("--force", action="store_true", help="overwrite rfile.yml if it exists")
    args = parser.parse_args(argv)
    here = Path.cwd()
    for name in ("rfile", "rfile.yaml"):
        if (here / name).exists() and not args.force:
            sys.exit(f"sigreload-init: {name} exists here; rfilerunner would not know which to use")
    if (here / "rfile.yml").exists() and not args.force:
        sys.exit("sigreload-init: rfile.yml exists; pass --force to overwrite it")
    (here / "rfile.yml").write_text(INIT_RFILE)
    print("sigreload-init: wrote rfile.yml")
    if not any(here.glob("*.html")):
        (here / "index.html").write_text(INIT_PAGE)
        print("sigreload-init: wrote index.html (the folder had no page)")
    print("sigreload-init: run `r` here, then open http://127.0.0.1:8000/")


def children_argv(args, broadcaster_pid=None):
    """The three processes' command lines for the parsed ``args``.

    The watcher gets the broadcaster's PID: it signals that process only,
    never another project's broadcaster that holds the port.
    """
    py = [sys.executable, "-u"]
    lan = ["--lan"] if args.lan else ["--host", args.host]
    ignore = [f"--ignore={glob}" for glob in args.ignore] + (["--poll"] if args.poll else [])
    ignore += ["--pid", str(broadcaster_pid)] if broadcaster_pid else []
    ignore += ["--exec", args.build, "--output", args.output] if args.build else []
    serve = ["--proxy", args.proxy] if args.proxy else [args.output or args.root]
    serve += [] if args.no_inject else ["--inject", str(args.ws_port)]
    ignore += ["--app", args.proxy] if args.proxy else []
    return {
        "http": py + [module_path("http_server"), *serve, "--port", str(args.port), *lan],
        "broadcast": py + [module_path("reload_server"), "--port", str(args.ws_port), *lan],
        "watch": py + [module_path("watcher"), args.root, "--ws-port", str(args.ws_port),
                       "--interval", str(args.interval), *ignore],
    }


def supervise(children, stop):
    """Wait until ``stop`` is set or a child exits; then stop every child."""
    status = 0
    signal.signal(signal.SIGCHLD, lambda *_: None)  # its byte wakes wait(): no polling
    wait(stop, lambda: any(p.poll() is not None for p in children.values()))
    exited = [(name, p.returncode) for name, p in children.items() if p.returncode is not None]
    if exited and not stop.is_set():
        log.error("%s exited with status %s; stopping the others", *exited[0])
        status = exited[0][1] or 1
    for proc in children.values():
        if proc.poll() is None:
            proc.terminate()
    for proc in children.values():
        try:
            proc.wait(timeout=1.5)
        except subprocess.TimeoutExpired:
            proc.kill()
    return status


def main(argv=None):
    """CLI: serve ROOT, watch it and live-reload the pages (all three processes)."""
    require_signals()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["reload"], ["css"]):  # a folder named so: pass ./reload
        return trigger("SIGUSR1" if argv[0] == "reload" else "SIGUSR2", argv[1:])
    if argv[:1] == ["init"]:
        return init_main(argv[1:])
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("root", nargs="?", default=".",
                        help="folder to serve and watch (default: .)")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=HTTP_PORT)
    parser.add_argument("--ws-port", type=int, default=WS_PORT)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--ignore", action="append", default=[], metavar="GLOB")
    parser.add_argument("--poll", action="store_true", help="watcher: never use kernel notifications")
    parser.add_argument("--exec", metavar="CMD", dest="build",
                        help="build ROOT with CMD after changes; reload after a good build")
    parser.add_argument("--output", metavar="DIR", help="with --exec: serve DIR (the build's output)")
    parser.add_argument("--proxy", metavar="URL",
                        help="serve your app server at URL (e.g. http://127.0.0.1:5000) through a proxy "
                             "that inserts the snippet; ROOT is its sources: after a *.py edit, pages "
                             "reload once the app restarted and answers")
    parser.add_argument("--no-inject", action="store_true",
                        help="do not insert the snippet into HTML pages (include it yourself)")
    parser.add_argument("--lan", action="store_true",
                        help="listen on every address (opt-in; prints a warning)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        sys.exit(f"sigreload: {args.root}: no such folder")
    if args.proxy:
        import app_server

        app_server.app_or_exit(args.proxy, "sigreload: --proxy")
        if args.build:
            sys.exit("sigreload: --proxy and --exec do not go together (the app serves the pages)")
    if args.build and not args.output:
        sys.exit("sigreload: --exec needs --output DIR (the folder to serve)")
    if args.output:
        os.makedirs(args.output, exist_ok=True)  # the first build fills it
    setup_logging()
    stop = stop_event()
    broadcast = spawn(children_argv(args)["broadcast"])
    others = children_argv(args, broadcast.pid)
    children = {"broadcast": broadcast, "http": spawn(others["http"]), "watch": spawn(others["watch"])}
    sys.exit(supervise(children, stop))


if __name__ == "__main__":
    main()
