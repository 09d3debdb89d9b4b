"""The watcher: polls a folder and signals the broadcaster when files change.

One settled burst of changes sends one signal: SIGUSR2 when every change is
a written stylesheet, SIGUSR1 otherwise. The watching itself is
``file_watching.SimpleWatcher`` (after LiveServer.jl) over ``file_tree``.
"""

import logging
import os
import shlex
import signal
import sys
from urllib.parse import unquote

import app_server
import building
import command_line
import discovery
import messages
import process_life
from file_watching import INTERVAL, SimpleWatcher
from signatures import DEFAULT_IGNORE, has_entries

STYLESHEETS = (".css",)

log = logging.getLogger("sigreload.watch")


def pick_signal(paths, present):
    """SIGUSR2 when every change is a stylesheet still present, else SIGUSR1."""
    css = all(p.endswith(STYLESHEETS) and p in present for p in paths)
    return signal.SIGUSR2 if css else signal.SIGUSR1


class Notifier:
    """The CLI's callback: tells the broadcaster what changed, says so in one line.

    With ``build`` (argv) it runs the build first: a good build reloads every
    page, a failed one reloads nothing and sends its output to the pages.
    """

    def __init__(self, root, port, pid=None, build=None, app=None, output=None):
        self.root, self.port, self.pid, self.build, self.output = root, port, pid, build, output
        self.root_id = messages.root_id(root)
        self.server = None
        self.missing_said = self.empty_said = False
        self.app = app_server.Waiter(app, self.after_restart) if app else None
        self.products = building.Products()
        self.scan = list  # what changed since it last looked (the watcher's full pass, once watching)
        self.ids = []  # the folders it said it watches (for the pages' consoles)

    def say_watching(self):
        """Tell the broadcaster's pages which folders are watched (again after a
        build: it may have made its output folder anew)."""
        self.ids = messages.watching(self.port, self.root, self.output and os.path.abspath(self.output), self.ids)

    def __call__(self, paths):
        if self.build:
            return self.rebuild(paths)
        code = [p for p in paths if app_server.restarts(p)]
        if self.app and (code or self.app.pending):  # its reloader restarts it: wait
            log.info("%s changed: waiting for the app server to restart", self.describe(paths))
            return self.app.submit(paths, app_server.saved_at(code) if code else None)
        self.tell(paths)

    def rebuild(self, paths):
        """Build until no edit arrived during the build (what the build wrote itself
        is no trigger), then reload the pages, or show them why not."""
        self.products.edited(paths)
        while paths:
            log.info("%s changed: building", self.describe(paths))
            result = self.run_build()
            edits = self.products.written(self.scan())
            self.say_watching()
            changed, paths = paths, edits
        message = {"error": result.report()} if not result.ok else {}
        notice = self.notice(result) if result.ok else None
        self.tell(changed, signal.SIGUSR1, {**message, "notice": notice} if notice else message)

    def notice(self, result):
        """What a good build should still tell you (terminal and pages): its error
        lines, or an output folder left empty."""
        if result.errors:
            log.warning("build succeeded, but its output has %d error line(s):\n%s",
                        len(result.errors), "\n".join(result.errors))
            return "The build succeeded, but reported errors:\n\n" + result.report()
        empty = self.output and not has_entries(self.output)
        if empty and not self.empty_said:
            log.warning("build succeeded, but %s is empty: is --output the folder the build writes?",
                        ascii(self.output)[1:-1])
        self.empty_said = empty
        return f"The build succeeded, but its output folder {self.output} is empty." if empty else None

    def after_restart(self, paths, what):
        log.info("app server %s", what)
        self.tell(paths)

    def describe(self, paths):
        names = [ascii(os.path.relpath(p, self.root))[1:-1] for p in paths]
        return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    def tell(self, paths, signum=None, message=None):
        """Leave the broadcaster a message (what changed), then signal it."""
        if signum is None:
            signum = pick_signal(paths, {p for p in paths if os.path.exists(p)})
            message = {"paths": [url_path(p, self.root) for p in paths], "root": self.root_id}
        server = self.locate()
        if server is None:
            return
        try:
            messages.post(self.port, message)  # before the signal: the broadcaster reads it then
        except OSError as exc:
            log.warning("cannot leave a message for the broadcaster (%s): every page reloads", exc)
        if discovery.signal_server(server, signum):
            kind = "build error" if message.get("error") else "css" if signum == signal.SIGUSR2 else "reload"
            log.info("%s changed: %s sent to broadcaster PID %d", self.describe(paths), kind, server.pid)

    def run_build(self):
        """Run the build once; its outcome (``building.Result``), said in the terminal."""
        result = building.run(self.build, self.root)
        if result.ok:
            log.info("build succeeded in %.1fs", result.seconds)
        else:
            log.error("build failed (exit %d):\n%s", result.status, result.output.rstrip())
        return result

    def locate(self):
        """The broadcaster, re-found when the one we knew is gone (PID-reuse safe)."""
        # The very process we found (is_running compares create times: no reused PID).
        if self.server and self.server.is_running():
            return self.server
        try:
            self.server = self.given() if self.pid else discovery.find_server(self.port)
        except LookupError as exc:
            log.error("%s; not signalling either", exc)
            return None
        if self.server is None and not self.missing_said:
            which = f"broadcaster PID {self.pid} does not listen" if self.pid else "no broadcaster listens"
            log.warning("%s on port %d; will look again at the next change", which, self.port)
        self.missing_said = self.server is None
        return self.server

    def given(self):
        """The broadcaster named by --pid, if it runs the broadcaster and listens."""
        import psutil

        try:
            proc = psutil.Process(self.pid)
            runs = discovery.runs_broadcaster(proc.cmdline()) and proc.uids().real == os.getuid()
        except psutil.Error:
            return None
        return proc if runs and discovery.listens_on(proc, self.port) else None


class UsedFiles:
    """What open pages use, under ROOT, as our HTTP server (files it served) and
    the snippets (URL paths their pages loaded) left it in the message folder.
    Called every tick: None while nothing changed (a glob and a stat)."""

    def __init__(self, port, root):
        self.files, self.root, self.stamp = messages.used_files(port), root, None

    def __call__(self):
        if messages.used_stamp(self.files) == self.stamp:
            return None
        self.stamp, lists = messages.used(self.files)
        files = [p for p in lists.get("http", ()) if p.startswith(self.root + os.sep)]
        return list(dict.fromkeys(files + [f for f in map(self.file_at, lists.get("pages", ())) if f]))

    def file_at(self, url):
        """The file under ROOT that URL path ``url`` names (an index for a folder), or None."""
        path = unquote(url.split("?")[0])
        path += "index.html" if path.endswith("/") else ""
        path = os.path.normpath(os.path.join(self.root, path.lstrip("/")))
        return path if path.startswith(self.root + os.sep) else None


def url_path(path, root):
    """The URL path a file under ``root`` is served at: /sub/page.html."""
    return "/" + os.path.relpath(path, root).replace(os.sep, "/")


def output_glob(root, output):
    """A path glob ignoring the build's output folder when it lies inside ROOT."""
    if not output:
        return ()
    rel = os.path.relpath(os.path.abspath(output), root).replace(os.sep, "/")
    return () if rel.startswith("..") else (rel,)


def main(argv=None):
    """Watch ROOT and signal the broadcaster on port WS_PORT when files change
    (SIGUSR2 when only stylesheets changed, SIGUSR1 otherwise)."""
    command_line.require_signals()
    parser = command_line.parser(main.__doc__)
    parser.add_argument("root", nargs="?", default=".", help="folder to watch (default: .)")
    parser.add_argument("--ws-port", type=int, default=command_line.WS_PORT,
                        help="the broadcaster's port (default: %(default)s)")
    parser.add_argument("--interval", type=float, default=INTERVAL,
                        help="seconds between two looks at recently edited files (default: %(default)s)")
    parser.add_argument("--poll", action="store_true", help=command_line.POLL_HELP)
    parser.add_argument("--pid", type=int, help="signal only this broadcaster (sigreload passes its own)")
    parser.add_argument("--exec", metavar="CMD", dest="build",
                        help="build command run (in ROOT) after changes; pages reload after a good build")
    parser.add_argument("--output", metavar="DIR", help="the build's output folder: never a trigger")
    parser.add_argument("--ignore", action="append", default=[], metavar="GLOB",
                        help="also ignore files or folders matching GLOB (repeatable)")
    parser.add_argument("--app", metavar="URL",
                        help="your app server (e.g. http://127.0.0.1:5000): after a *.py edit, "
                             "reload once it restarted and answers")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every pass that finds a change")
    args = parser.parse_args(argv)
    command_line.setup_logging(args.verbose)
    root = os.path.abspath(args.root)
    command_line.folder_or_exit(args.root, "sigreload-watch")
    if args.output and not args.build:
        sys.exit("sigreload-watch: --output goes with --exec (the build that writes it)")
    if args.app:
        app_server.app_or_exit(args.app, "sigreload-watch: --app")
    stop = process_life.stop_event()
    ignore = DEFAULT_IGNORE + tuple(args.ignore) + output_glob(root, args.output)
    build = shlex.split(args.build) if args.build else None
    notifier = Notifier(root, args.ws_port, args.pid, build, args.app, args.output)
    watcher = SimpleWatcher(notifier, args.interval, ignore, hints=not args.poll)
    watcher.uses = UsedFiles(args.ws_port, root)
    tree = watcher.watch_tree(root)
    notifier.scan = watcher.scan
    notifier.say_watching()
    if build:  # the output exists before the first page is served; all it writes is the build's
        result = notifier.run_build()
        notifier.products.written(watcher.scan(), first=True)
        notifier.say_watching()
        if result.ok:
            notifier.notice(result)
    watcher.start()
    count = sum(map(len, tree.files.values()))
    how = "notifications as hints" if watcher.hinting else f"polling ({watcher.pace()})"
    log.info("watching %s: %d files, %s; a full pass costs %.0f ms", root, count, how, 1000 * tree.cost)
    if args.app:
        log.info("app server %s: after a *.py edit, pages reload once it restarted and answers", args.app)
    process_life.wait(stop)
    watcher.stop()


if __name__ == "__main__":
    main()
