"""Process life: start children, follow the parent, stop on a signal.

``spawn`` starts a child with the reload signals held and a lifeline (a pipe that reads
EOF the moment its parent is gone, however it died); ``stop_event`` and ``wait`` are a
plain process's main loop; ``lifeline`` is an asyncio process's; ``supervise`` stops
every child together."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from sigreload import interpreter, platforms

TRIGGERS = ("SIGUSR1", "SIGUSR2")
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
LIFELINE_ENV = "SIGRELOAD_LIFELINE"
STOP_GRACE = 1.5  # seconds the children have to stop before they are killed

log = logging.getLogger("sigreload")
# Taken on import, before any handler of ours: nohup leaves SIGHUP ignored.
_HANGUP_IGNORED = signal.getsignal(signal.SIGHUP) == signal.SIG_IGN


def _inherited_lifeline(parent: int) -> int | None:
    """The read end of a pipe whose write end the process that spawned us holds
    (``spawn``): it reads EOF the moment that process is gone. None without one.

    The variable says "FD:PID:INODE"; it counts only when FD is that very
    pipe (its inode): a process between (`r`, a shell) passes the variable
    on, never the pipe, and the number may then be any file of ours (our own
    wake-up pipe, say). Not "when PID is our parent": a spawner killed before
    we looked has left us to PID 1, and its pipe is what says so.
    """
    fd, spawner, inode = (os.environ.pop(LIFELINE_ENV, "").split(":") + ["", ""])[:3]  # popped: not our children's
    try:
        info = os.fstat(int(fd))
        ours = info.st_ino == int(inode) if inode else int(spawner) == parent
        if ours and stat.S_ISFIFO(info.st_mode):
            os.set_inheritable(int(fd), False)
            return int(fd)
    except (ValueError, OSError):
        pass
    return None


class _Lineage:
    """Who started this process, taken once by the first function that needs it
    (never on import): its PID, the lifeline it left us, and whether we were
    started to outlive it (``detached``: nohup, SIGHUP ignored, or setsid, a
    session of our own; a lifeline is always followed)."""

    def __init__(self) -> None:
        self.parent = os.getppid()
        self.lifeline = _inherited_lifeline(self.parent)
        self.detached = self.lifeline is None and (_HANGUP_IGNORED or os.getsid(0) == os.getpid())
        self.said = False  # whether we said that we outlive the parent


_lineage: _Lineage | None = None
_wakeup = None  # read end of the signal wakeup pipe (stop_event)
_told = False  # whether the kernel sends SIGRTMIN when our parent exits (Linux: prctl)


def lineage() -> _Lineage:
    """This process's lineage (taken on the first call)."""
    global _lineage
    if _lineage is None:
        _lineage = _Lineage()
    return _lineage


def orphaned() -> bool:
    """Whether the process that started us is gone: our lifeline reads EOF, or,
    without one, our parent changed (getppid).

    rfilerunner's ``r`` does not forward SIGTERM and exits with os._exit on
    SIGINT; its children notice and shut down cleanly. A process started
    orphaned (parent 1) or to outlive its shell (``nohup``, ``setsid``)
    follows no one: when its parent goes it says so, once, and keeps running.
    """
    line = lineage()
    if line.lifeline is not None:
        return bool(select.select([line.lifeline], [], [], 0)[0])
    gone = line.parent != 1 and os.getppid() != line.parent
    if gone and line.detached:
        if not line.said:
            line.said = True
            log.info("the process that started me (PID %d) is gone; I keep running, as nohup or setsid "
                     "asked (stop me with kill %d)", line.parent, os.getpid())
        return False
    return gone


def _tell_when_parent_exits(handler: Callable[[int, Any], None]) -> bool:
    """Linux: have the kernel send SIGRTMIN (handled by ``handler``) when our
    parent exits (prctl PR_SET_PDEATHSIG), so following it needs no polling;
    returns whether it will. The signal also comes when only the thread that
    started us ends, so ``handler`` must check ``orphaned()``."""
    global _told
    line = lineage()
    followed = line.lifeline is not None or line.parent == 1  # by the lifeline, or nobody to follow
    parent_gone = platforms.parent_death_signal()  # SIGRTMIN on Linux; None: no such thing here
    if _told or followed or parent_gone is None:
        return _told
    signal.signal(parent_gone, handler)  # before asking: its default action kills
    try:
        import ctypes

        _told = ctypes.CDLL(None, use_errno=True).prctl(1, int(parent_gone), 0, 0, 0) == 0
    except (OSError, AttributeError):  # no libc prctl: polled
        pass
    return _told


def lifeline(interval: float = 0.5) -> None:
    """Send ourselves SIGTERM when the process that started us is gone (for
    asyncio processes; plain ones follow it in ``wait``). No wake-ups at idle:
    a thread blocks on the lifeline, or the kernel signals the parent's exit;
    elsewhere (macOS without a lifeline) a thread polls every ``interval``."""
    def stop_if_orphaned(*_: object) -> None:
        if orphaned():
            os.kill(os.getpid(), signal.SIGTERM)

    if _tell_when_parent_exits(stop_if_orphaned):
        stop_if_orphaned()  # it may have gone before we asked
        return

    if lineage().detached:
        return  # nobody to follow; elsewhere than Linux its parent's exit goes unsaid

    def follow() -> None:
        fd = lineage().lifeline
        if fd is not None:
            select.select([fd], [], [])
        while not orphaned():
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=follow, name="lifeline", daemon=True).start()


def stop_event() -> threading.Event:
    """An Event set by SIGINT, SIGTERM or SIGHUP (``wait`` also ends when our parent dies).

    For plain (threaded) processes: the handlers only set the Event. A
    SIGUSR1 or SIGUSR2 sent here by mistake is ignored, not fatal.
    """
    lineage()  # before the pipe below is made
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


def wait(stop: threading.Event, done: Callable[[], bool] | None = None, tick: float = 0.5) -> None:
    """Block until ``stop`` is set, ``done()`` is true (checked after each signal)
    or the process that started us is gone (then set ``stop``). The main thread
    sleeps in select() on the signal wakeup pipe and the lifeline: no wake-ups
    at idle (without a lifeline or the parent's exit signal, one per ``tick``).

    A signal the kernel delivers to another thread (watchdog's, the HTTP
    server's) runs its Python handler only when the main thread wakes: a
    bare ``stop.wait()`` could sleep through SIGINT forever.
    """
    line = lineage()
    fds = [fd for fd in (_wakeup, line.lifeline) if fd is not None]
    quiet = _wakeup is not None and (line.lifeline is not None or _told or line.detached)
    while not stop.is_set() and not (done and done()):
        if orphaned():
            stop.set()
            break
        ready = select.select(fds, [], [], None if quiet else tick)[0]
        if _wakeup in ready:
            os.read(_wakeup, 512)  # the handlers run now, in this thread


def module_argv(module: str) -> list[str]:
    """The command line that runs ``module`` (e.g. ``sigreload.watcher``) in a
    new interpreter, by module name: nothing in the current folder can take
    its place (``interpreter.module_argv``: ``-P``, or a bootstrap on 3.10)."""
    return interpreter.module_argv(module)


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for a child that runs one of our modules: when this sigreload
    was found in the folder ``-P`` leaves off sys.path (a clone, run as
    ``python -m sigreload`` or ``python reload_server.py`` there without
    installing), that folder goes on PYTHONPATH, so the child runs this very
    code; elsewhere the child finds the same installed package by itself."""
    home = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    first = sys.path[0] if sys.path and not getattr(sys.flags, "safe_path", False) else None
    if first is None or os.path.realpath(first or os.getcwd()) != os.path.realpath(home):
        return dict(env)
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [home, env.get("PYTHONPATH")]))}


def spawn(argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """Popen ``argv`` with SIGUSR1/SIGUSR2 blocked from its first instruction.

    SIGUSR1's default action terminates: between exec and the broadcaster's
    first line a signal would kill it. A blocked signal stays pending until
    the broadcaster has its handlers and unblocks it.

    It also gets a lifeline: the read end of a pipe whose write end only we
    hold, so it sees EOF the moment we are gone, however we die (SIGKILL too).
    """
    triggers = {getattr(signal, name) for name in TRIGGERS}
    read, write = os.pipe()
    kwargs["env"] = {**child_env(kwargs.get("env") or os.environ),
                     LIFELINE_ENV: f"{read}:{os.getpid()}:{os.fstat(read).st_ino}"}
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
    proc.lifeline = os.fdopen(write, "wb")  # type: ignore[attr-defined]  # closed when proc (or we) go
    return proc


def supervise(children: Mapping[str, subprocess.Popen[Any]], stop: threading.Event,
              quiet: Collection[int] = ()) -> int:
    """Wait until ``stop`` is set or a child exits; then stop every child.
    Returns the exit status for us: 0, or the status of the child that ended
    first, said in one line; when that status is one of ``quiet``, nothing is
    said and the others keep running: the caller decides (``end_all``)."""
    status = 0
    signal.signal(signal.SIGCHLD, lambda *_: None)  # its byte wakes wait(): no polling
    wait(stop, lambda: any(p.poll() is not None for p in children.values()))
    exited = [(name, p.returncode) for name, p in children.items() if p.returncode is not None]
    if exited and not stop.is_set():
        if exited[0][1] in quiet:
            return int(exited[0][1])
        log.error("%s exited with status %s; stopping the others", *exited[0])
        status = exited[0][1] or 1
    end_all(children)
    return status


def end_all(children: Mapping[str, subprocess.Popen[Any]]) -> None:
    """Stop every child (SIGTERM, SIGKILL after STOP_GRACE), and what runs below them."""
    below = descendants(children.values())  # a build's group (its own session): stopped by the watcher
    for proc in children.values():
        if proc.poll() is None:
            proc.terminate()
    end = time.monotonic() + STOP_GRACE  # one deadline for all: they stop side by side
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    kill(below)  # ... unless the watcher was killed first: then here, so nothing outlives us


def descendants(children: Iterable[subprocess.Popen[Any]]) -> list[Any]:
    """Every process below ``children`` now, as psutil.Process objects (a kill
    refuses a reused PID)."""
    import psutil

    found = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            found += psutil.Process(child.pid).children(recursive=True)
    return found


def kill(procs: Iterable[Any]) -> None:
    """SIGKILL each psutil.Process of ``procs`` that still runs."""
    import psutil

    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
