"""The watcher (``sigreload-watch``, ``python -m sigreload.watcher``): polls a
folder and signals the broadcaster when files change.

One settled burst of changes sends one signal: SIGUSR2 when every change is
a written stylesheet, SIGUSR1 otherwise, after a message saying what changed.
The watching itself is ``sigreload.watching.SimpleWatcher`` (after
LiveServer.jl); a build runs first with ``--exec`` (``building``), and with
``--app`` the signal waits for your app server's restart (``app_server``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from sigreload import app_lookout, app_server, build_output, building, command_line, consoles, options, process_life
from sigreload.config import edited
from sigreload.contract import answering, app_down, changes, discovery, reserve, watcher_ids
from sigreload.watching.file_watching import SimpleWatcher
from sigreload.watching.signatures import DEFAULT_IGNORE, own_output, transient
from sigreload.watching.used_files import UsedFiles

STYLESHEETS = (".css",)
START_LOOK = 0.5  # seconds the watcher looks for its broadcaster at start, before it says it is watching
RECHECK = 0.2  # seconds before a change the app may have written is looked at again (answering.app_wrote)

log = logging.getLogger("sigreload.watch")


def pick_signal(paths: list[str], present: set[str]) -> signal.Signals:
    """SIGUSR2 when every change is a stylesheet still present, else SIGUSR1."""
    return signal.SIGUSR2 if all(p.endswith(STYLESHEETS) and p in present for p in paths) else signal.SIGUSR1


def url_path(path: str, root: str) -> str:
    """The URL path a file under ``root`` is served at: /sub/page.html."""
    return "/" + os.path.relpath(path, root).replace(os.sep, "/")


class Notifier:
    """The watcher's callback: what a settled burst of changes becomes.

    Straight away a message and a signal to the broadcaster (``tell``); with
    a ``builder``, a build first (a failed one shows its output in the pages;
    after a good one, what it changed in --output is told as an edit would
    be: stylesheets swap, the pages that use a changed file reload, and every
    page when that is unknown); with an ``app`` URL, a wait for its restart.
    ``scan()`` is the watcher's full pass (what a build wrote). Keyword-only."""

    def __init__(self, *, root: str, locator: discovery.Locator, scan: Callable[[], list[str]] = list,
                 builder: building.Builder | None = None, app: str | None = None, output: str | None = None) -> None:
        self.root, self.locator, self.builder, self.output = root, locator, builder, output
        self.root_id = watcher_ids.root_id(root)
        self.app = app_server.Waiter(url=app, send=self.after_restart, root=root, pages=lambda: app_lookout.pages_open(
            locator.server, locator.port)) if app else None
        self.scan = scan  # what changed since it last looked (the watcher's full pass)
        self.ids: list[str] = []  # the folders it said it watches (for the pages' consoles)
        self.failed: dict[str, Any] | None = None  # the last build's error, until a good build
        self.fatal: str | None = None  # why this process must stop (said by main)
        self.app_output: set[str] = set()  # files the app wrote while answering (said once)
        self.poster = reserve.Poster()  # change messages, through a reserve on a full disk
        locator.found.append(self.met)

    def say_watching(self) -> None:
        """Tell the broadcaster's pages which folders are watched (again after a
        build: it may have made its output folder anew)."""
        output = os.path.abspath(self.output) if self.output else None
        self.ids = watcher_ids.watched(self.root, output, self.ids)
        watcher_ids.write(self.locator.folder(), self.ids)

    def met(self) -> None:
        """A broadcaster's folder is known (at start, or a new broadcaster): say
        what is watched, and show a failed build's error (the first build's too)."""
        self.say_watching()
        if folder := self.locator.folder():
            self.poster.keep(folder)  # while there is room
        if self.failed:
            self.tell([], signal.SIGUSR1, self.failed)

    def __call__(self, paths: list[str]) -> None:
        paths = [p for p in paths if not transient(p, paths) and not own_output(p)]  # no edit: a temporary, our log
        if not paths:
            return
        for path in edited(paths):  # read at start only: a silent edit misled (r32n4)
            log.info("%s changed: sigreload reads it when it starts; restart it to apply", self.describe([path]))
        if self.builder:
            self.rebuild(paths, self.builder)
            return
        if self.app:
            paths = self.edits(paths)
            if not paths or not (paths := self.rendered(paths)):
                return
        code = [p for p in paths if app_server.restarts(p)]
        if self.app and (code or self.app.pending):  # its reloader restarts it: wait
            log.info("%s changed: waiting for the app server to restart", self.describe(paths))
            self.app.submit(paths, app_server.saved_at(code) if code else None)
            return
        self.app.reads.later(paths, self.tell, self.locator.folder()) if self.app else self.tell(paths)

    def rendered(self, paths: list[str]) -> list[str]:
        """``paths`` without the templates that no page rendered (the middleware says, Django's; or the app's reads)."""
        from sigreload.middleware import rendered

        skipped = rendered.unrendered(self.locator.folder(), paths) or (self.app and self.app.reads.unread(paths) or [])
        if skipped:
            log.info("%s changed: no page rendered it (no reload)", self.describe(skipped))
        return [p for p in paths if p not in skipped]

    def edits(self, paths: list[str]) -> list[str]:
        """``paths`` without the files the app wrote while it answered requests
        (its data, uploads, caches: by the proxy's windows; never code,
        templates, stylesheets or scripts), said once per file."""
        folder = self.locator.folder()
        kept = []
        for path in paths:
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                kept.append(path)  # removed: an edit
                continue
            code = app_server.restarts(path) or answering.page_source(path)
            wrote = False if code else answering.app_wrote(folder, mtime)
            if wrote is None:  # while a request is open long: does it end soon after? look again
                again = threading.Timer(RECHECK, self, ([path],))
                again.daemon = True
                again.start()
            elif not wrote:
                kept.append(path)
            elif path not in self.app_output:
                self.app_output.add(path)
                log.info("%s: written by the app while it answered, not an edit (no reload)", self.describe([path]))
        return kept

    def rebuild(self, paths: list[str], builder: building.Builder) -> None:
        """Build until no edit arrived during the build (what the build wrote itself
        is no trigger), then reload the pages, or show them why not."""
        builder.products.edited(paths)
        changed = paths
        before = builder.compared.snapshot() if builder.compared else None
        while True:
            log.info("%s changed: building", self.describe(changed))
            result = builder.run()
            if result.stopped:  # the watcher is stopping: nothing to tell
                return
            edits = builder.products.written(self.scan())
            self.say_watching()
            if not edits:
                break
            changed = edits
        message: dict[str, Any] = dict(builder.message(result))
        was_failed, self.failed = self.failed, message if "error" in message else None
        made = build_output.Output.changed(before, builder.compared.snapshot()) if builder.compared else None
        if self.failed or was_failed or made is None or "notice" in message or not self.output:
            self.tell(changed, signal.SIGUSR1, message)  # every page: the error, or what changed is unknown
        elif not made:
            log.info("%s changed: the build's output is the same: nothing to reload", self.describe(changed))
        else:  # as an edit of the output: only the pages that use what changed, stylesheets swapped
            output = os.path.abspath(self.output)
            message = {"paths": [url_path(p, output) for p in made], "root": watcher_ids.root_id(output)}
            self.tell(made, pick_signal(made, {p for p in made if os.path.exists(p)}), message, output)

    def after_restart(self, paths: list[str], what: str) -> None:
        log.info("app server %s", what)
        notice = app_server.notice(what)  # every page says so (no reload: to what?) until the app is back
        app_down.write(self.locator.folder(), what if notice else None)
        if notice is None and paths:
            return self.tell(paths)
        message = {"paths": [], "notice": notice, "app": "down"} if notice else {"app": "back"}  # ("app": logged)
        self.tell([], signal.SIGUSR2 if notice else signal.SIGUSR1, {"root": self.root_id, **message})  # back: all

    def describe(self, paths: list[str], root: str | None = None) -> str:
        names = [consoles.escaped(os.path.relpath(p, root or self.root)) for p in paths]
        return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    def tell(self, paths: list[str], signum: signal.Signals | None = None,
             message: dict[str, Any] | None = None, root: str | None = None) -> None:
        """Leave the broadcaster a message (what changed), then signal it."""
        if signum is None or message is None:
            signum = pick_signal(paths, {p for p in paths if os.path.exists(p)})
            message = {"paths": [url_path(p, self.root) for p in paths], "root": self.root_id}
        server = self.locator.locate()
        if server is None:
            return
        try:
            folder = self.locator.folder()
            if folder is None:
                raise FileNotFoundError("the broadcaster holds no message folder")
            if "error" in message:
                changes.write(folder, message)  # before the signal: the broadcaster reads it then
            else:
                self.poster.post(folder, message)  # ... a full folder said once, with its reserve
        except OSError as exc:
            why = exc.strerror or str(exc)
            if "error" in message:  # a reload would hide the failed build: stop, loudly
                self.fatal = (f"cannot leave the failed build's output for the broadcaster ({why}): "
                              "stopped, or pages would reload as if it had worked")
                os.kill(os.getpid(), signal.SIGTERM)  # main() exits with this line
                return
            if self.poster.full is None:  # no folder at all (a full one is said once by the poster)
                log.warning("cannot leave a message for the broadcaster (%s): every page reloads", why)
        if discovery.signal_server(server, signum):
            kind = ("build error" if message.get("error") else "app down notice" if message.get("notice")
                    and message.get("paths") == [] and signum == signal.SIGUSR2
                    else "css" if signum == signal.SIGUSR2 else "reload")
            what = f"{self.describe(paths, root)} changed: " if paths else ""
            log.info("%s%s sent to broadcaster PID %d", what, kind, server.pid)


def make_parser() -> argparse.ArgumentParser:
    """The watcher's options."""
    parser = command_line.parser("Watch ROOT and signal the broadcaster on port WS_PORT when files change "
                                 "(SIGUSR2 when only stylesheets changed, SIGUSR1 otherwise).")
    return options.add(parser, "watch")


def first_build(builder: building.Builder, notifier: Notifier, watcher: SimpleWatcher) -> None:
    """The build at start: its output exists before the first page is served,
    and all it writes is the build's."""
    result = builder.run()
    if result.stopped:
        return
    builder.products.written(watcher.scan(), first=True)
    notifier.say_watching()
    if result.ok:
        builder.notice(result)
    else:  # its pages show the error now, or once a broadcaster is found (Notifier.met)
        notifier.failed = builder.message(result)
        if notifier.locator.folder_for is not None:
            notifier.tell([], signal.SIGUSR1, notifier.failed)


def stop_build(stop: threading.Event, builder: building.Builder) -> None:
    """In a thread: once ``stop`` is set, stop the build running then (its whole group)."""
    stop.wait()
    builder.stop()


def main(argv: list[str] | None = None) -> None:
    """Watch ROOT and signal the broadcaster when files change."""
    command_line.require_signals()
    args = make_parser().parse_args(argv)
    command_line.setup_logging(args.verbose)
    root = os.path.abspath(args.root)
    command_line.folder_or_exit(args.root, "sigreload-watch")
    if args.output and not args.build:
        sys.exit("sigreload-watch: --output goes with --exec (the build that writes it)")
    if args.app:
        app_server.app_or_exit(args.app, "sigreload-watch: --app")
    stop = process_life.stop_event()
    ignore = DEFAULT_IGNORE + tuple(args.ignore) + build_output.ignored(root, args.output)
    builder = building.Builder(argv=shlex.split(args.build), root=root, cwd=args.exec_dir, output=args.output,
                               orphaned=process_life.orphaned) if args.build else None
    locator = discovery.Locator(args.ws_port, pid=args.pid)
    # An unexpected error in the watching thread (its traceback is logged) stops this
    # process, non-zero: SIGTERM only sets ``stop``, and its wake-up ends wait().
    watcher = SimpleWatcher(interval=args.interval, ignore=ignore, hints=not args.poll, uses=UsedFiles(locator, root),
                            on_error=lambda _: os.kill(os.getpid(), signal.SIGTERM))
    notifier = Notifier(root=root, locator=locator, scan=watcher.scan, builder=builder, app=args.app,
                        output=args.output)
    watcher.set_callback(notifier)  # each needs the other: the callback comes second
    tree = watcher.watch_tree(root)
    notifier.locator.wait_for(START_LOOK)  # started with it (r, sigreload): it is listening in a moment
    notifier.say_watching()
    if builder:  # stopping stops the build's whole group, the first build's too (main is in it then)
        threading.Thread(target=stop_build, args=(stop, builder), name="build", daemon=True).start()
        first_build(builder, notifier, watcher)  # a build notices our parent's death too (Builder.look)
    if stop.is_set() or process_life.orphaned():
        sys.exit(0)
    watcher.start()
    threading.Thread(target=notifier.locator.follow, args=(stop,), name="broadcaster", daemon=True).start()
    count = sum(map(len, tree.files.values()))
    how = "notifications as hints" if watcher.hinting else f"polling ({watcher.pace()})"
    log.info("watching %s: %d files, %s; a full pass costs %.0f ms", root, count, how, 1000 * tree.cost)
    if notifier.app:
        notifier.app.reads.proxied = args.proxied  # sigreload's proxy waits for Django's reloader itself
        log.info("app server %s: after a *.py edit, pages reload once it restarted and answers", args.app)
    process_life.wait(stop)
    watcher.stop()
    if builder:
        builder.stop()  # returns once the build's group is gone: nothing of it outlives us
    if notifier.fatal:
        sys.exit(f"sigreload-watch: {notifier.fatal}")
    if watcher.error is not None:
        sys.exit(f"sigreload-watch: stopped by an unexpected error ({type(watcher.error).__name__}), "
                 "its traceback above; please report it")


if __name__ == "__main__":
    main()
