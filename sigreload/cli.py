"""sigreload: serve a folder, watch it, and live-reload every page showing it.

The all-in-one command: it starts the three processes (HTTP server,
broadcaster, watcher) as children with the options each takes, and stops
them together. ``sigreload reload``, ``css`` and ``init`` run the commands of
the same names (``sigreload-reload``, ...).
"""

import argparse
import errno
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Collection

from sigreload import command_line, config, config_text, listening, options, process_life, secret, starter
from sigreload.contract import discovery

LIVERELOAD_PORT = 35729  # --livereload's default (the browser extensions' port)
# The servers whose default port moves: their process's name -> (said as, dest, index in flags())
MOVING = {"http": ("the HTTP server", "port", 0), "broadcast": ("the broadcaster", "ws_port", 1)}
MOST_MOVES = 3  # a default port taken between the look and the bind: moved on this often, then stopped
PORT_TRIES = 20  # a busy default port: the next free one among this many (as Vite does)
SUBCOMMANDS = {"reload": discovery.reload_main, "css": discovery.css_main, "init": starter.main,
               "config": lambda argv: config_text.show(make_parser(), argv)}  # config: even beside a
# folder of that name (cookiecutter-django's settings): it starts nothing, and says how to serve the folder

log = logging.getLogger("sigreload")


def make_parser() -> argparse.ArgumentParser:
    """sigreload's options: each process's own, grouped by the process that takes it."""
    parser = command_line.parser(
        "Serve ROOT, watch it and live-reload every page showing it "
        "(an HTTP server, the broadcaster and the watcher, stopped together by Ctrl-C).")
    parser.epilog = ("commands: `sigreload reload` reloads every page, `sigreload css` refreshes "
                     "their stylesheets, `sigreload init` writes an rfile.yml for `r` (--config: a "
                     "sigreload.toml), `sigreload config` prints every setting and where it comes from "
                     "(unless a folder of that name is here: then it is served). Settings are read from "
                     "sigreload.toml or pyproject.toml's [tool.sigreload], found from here upward; "
                     "the command line wins")
    return options.add(parser, "sigreload")


def children_argv(args: argparse.Namespace, broadcaster_pid: int | None = None,
                  moves: Collection[str] = ()) -> dict[str, list[str]]:
    """The three processes' command lines for the parsed ``args``.

    The watcher gets the broadcaster's PID: it signals that process only,
    never another project's broadcaster that holds the port. A port whose
    dest is in ``moves`` (a default one) is marked so: taken meanwhile, its
    server exits with ``discovery.PORT_MOVES`` and says nothing (``serve``).
    """
    under_r = bool(os.environ.get("SIGRELOAD_UNDER_R"))  # set by rfile.yml: name its settings
    http_flag, ws_flag = ("PORT=", "WS_PORT=") if under_r else ("--port", "--ws-port")
    http_flag = discovery.MOVES * ("port" in moves) + http_flag
    ws_flag = discovery.MOVES * ("ws_port" in moves) + ws_flag
    common = ["--lan"] if args.lan else ["--host", args.host]
    serve = ["--proxy", args.proxy] if args.proxy else [args.output or args.root]
    serve += [] if args.no_inject else ["--inject", str(args.ws_port)]
    serve += [f"--source={os.path.abspath(args.root)}"] if args.proxy or args.output else []
    serve += [f"--{name}={os.path.abspath(path)}" for name, path in (("cert", args.cert), ("key", args.key)) if path]
    watch = ["--pid", str(broadcaster_pid)] if broadcaster_pid else []
    watch += ["--exec", args.build, "--output", args.output] if args.build else []
    watch += ["--exec-dir", args.exec_dir] if args.build and getattr(args, "exec_dir", None) else []  # a file's
    watch += ["--app", args.proxy or args.app] if args.proxy or args.app else []
    watch += ["--proxied"] if args.proxy else []  # (it waits for Django's reloader itself)
    run = process_life.module_argv
    return {
        "http": run("sigreload.http_server") + [*serve, "--port", str(args.port), f"--port-flag={http_flag}",
                                                *common, *options.argv(args, "http")],
        "broadcast": run("sigreload.broadcaster") + ["--port", str(args.ws_port), f"--port-flag={ws_flag}",
                                                     *(["--sources"] if args.proxy or args.app else []),
                                                     *common, *options.argv(args, "broadcast")],
        "watch": run("sigreload.watcher") + [args.root, "--ws-port", str(args.ws_port), *watch,
                                             *options.argv(args, "watch")],
    }


def parse(argv: list[str]) -> tuple[argparse.Namespace, set[str]]:
    """sigreload's options: the configuration file's values, then the command line's over them;
    and the dests set by either (a port set there is strict, a default one moves)."""
    args, found, on_command_line = config.parse("sigreload", make_parser(), argv)
    explicit = set(found.values) | on_command_line
    if found.path:  # said, so a build command from a file never runs unannounced
        builds = f"; it builds with: {args.build}" if "build" in found.values and args.build else ""
        print(f"sigreload: settings from {found.path}{builds}", flush=True)
        if builds and "root" in on_command_line:  # another folder's build for this ROOT: said (r32n5)
            print(f"sigreload: ROOT {args.root} is the command line's; the build and its output are the file's",
                  flush=True)
    return args, explicit


def bare_livereload(argv: list[str]) -> list[str]:
    """``argv`` where a ``--livereload`` followed by a word that is no port
    (``sigreload --livereload .``) takes its default port, the word staying ROOT."""
    for at, arg in enumerate(argv[:-1]):
        if arg == "--":
            break
        word = argv[at + 1]
        if arg == "--livereload" and not word.startswith("-") and not word.isdigit():
            return [*argv[:at], f"--livereload={LIVERELOAD_PORT}", *argv[at + 1:]]
    return argv


def flags() -> tuple[str, str]:
    """What sets the HTTP and the broadcaster's ports: the options, or under ``r`` its settings."""
    return ("PORT=", "WS_PORT=") if os.environ.get("SIGRELOAD_UNDER_R") else ("--port", "--ws-port")


def claim_ports(args: argparse.Namespace, explicit: set[str]) -> None:
    """Before any process starts, each server's port in ``args``: a given one
    (``--port``, ``--ws-port``, ``--livereload``) free, or exit with one line;
    a default one free, or the next free one, said in one line. The same port
    given twice exits with status 2."""
    servers = [("the broadcaster", "ws_port", flags()[1])]
    servers += [] if args.no_http else [("the HTTP server", "port", flags()[0])]
    servers += [] if args.livereload is None else [("LiveReload", "livereload", "--livereload=")]
    given = [getattr(args, name) for _, name, _ in servers if name in explicit or name == "livereload"]
    twice = next((port for port in given if given.count(port) > 1 and port), None)
    if twice:
        print(f"sigreload: port {twice} is given twice: each server needs its own", file=sys.stderr)
        sys.exit(2)
    if args.ws_port == 0:  # the HTTP server and pasted snippets name the broadcaster's port
        zero = flags()[1] + ("0" if flags()[1].endswith("=") else " 0")
        print(f"sigreload: {zero} (any free port) leaves pages no way to find the broadcaster: give a port",
              file=sys.stderr)
        sys.exit(2)
    taken = set(given)
    movable = {name: name not in explicit and name != "livereload" for _, name, _ in servers}
    for what, name, flag in sorted(servers, key=lambda server: movable[server[1]]):  # given ones first: a busy
        host = "" if args.lan else args.host  # one is the only line, never after a default one's move
        setattr(args, name, claim(what, host, getattr(args, name), flag, movable[name], taken))


def claim(what: str, host: str, port: int, flag: str, movable: bool, taken: set[int]) -> int:
    """``port``, free on every address of ``host``; else, when ``movable``, the
    next free one (said); else exit with the one busy-port line."""
    why = ""
    for candidate in range(port, port + (PORT_TRIES if movable else 1)):
        if candidate in taken and movable:
            why = why or f"port {candidate} is another of sigreload's"
            continue
        exc = listening.probe(host, candidate)
        if exc is None:
            taken.add(candidate)
            if candidate != port:
                pasted = " (a pasted snippet must name it)" if what == "the broadcaster" else ""
                choose = f"set {flag}<port> to choose" if flag.endswith("=") else f"{flag} chooses"
                log.warning("%s: %s listens on %d instead%s; %s", why, what, candidate, pasted, choose)
            return candidate
        if exc.errno != errno.EADDRINUSE:
            sys.exit(f"sigreload: {what} cannot listen on {host or '*'}:{candidate}: {exc.strerror}")
        partly = exc.filename if exc.filename != listening.hosts(host)[0] else None
        line = discovery.in_use(candidate, flag, partly)
        if not movable:
            sys.exit(f"sigreload: {line}")
        why = why or line.split(";")[0]
    sys.exit(f"sigreload: {why}, and the {PORT_TRIES - 1} ports after it too: set one with {flag}")


def run(argv: list[str] | None = None) -> None:
    """sigreload: serve ROOT, watch it and live-reload the pages (all three processes)."""
    command_line.require_signals()
    if os.path.basename(sys.argv[0]) == "__main__.py":  # python -m sigreload: argparse says `usage: sigreload`
        sys.argv[0] = "sigreload"
    argv = bare_livereload(sys.argv[1:] if argv is None else list(argv))
    if argv[:1] and argv[0] in SUBCOMMANDS and (argv[0] == "config" or not os.path.isdir(argv[0])):
        return SUBCOMMANDS[argv[0]](argv[1:])
    args, explicit = parse(argv)
    command_line.folder_or_exit(args.root, "sigreload")
    if args.proxy:
        from sigreload import app_server

        app_server.app_or_exit(args.proxy, "sigreload: --proxy", origin_only=True)
        if args.build:
            sys.exit("sigreload: --proxy and --exec do not go together (the app serves the pages)")
    if args.app and not args.no_http:
        sys.exit("sigreload: --app goes with --no-http (your app serves the pages; --proxy URL puts ours in front)")
    if args.app:
        from sigreload import app_server

        app_server.app_or_exit(args.app, "sigreload: --app")
    if args.no_http and args.proxy:
        sys.exit("sigreload: --no-http and --proxy do not go together (the proxy is the HTTP server)")
    if args.build and not args.output:
        sys.exit("sigreload: --exec needs --output DIR (the folder to serve)")
    if args.output and not args.build:
        sys.exit("sigreload: --output goes with --exec CMD (the build that writes it)")
    if args.output:
        os.makedirs(args.output, exist_ok=True)  # the first build fills it
    command_line.setup_logging()
    if args.root in SUBCOMMANDS:  # said first: with sigreload running, the busy port follows (r32n3)
        log.info("serving the folder ./%s here (the command is sigreload-%s)", args.root, args.root)
    claim_ports(args, explicit)  # the one busy-port line comes before any process says it is ready
    stop = process_life.stop_event()
    sys.exit(serve(args, {name for name in ("port", "ws_port") if name not in explicit}, stop))


def serve(args: argparse.Namespace, moves: set[str], stop: threading.Event) -> int:
    """Start the three processes and supervise them until ``stop`` or one exits;
    our exit status. A server whose default port (its dest in ``moves``) was
    taken between ``claim_ports`` and its own bind exits with PORT_MOVES: that
    port moves to the next free one (said in one line) and the server starts
    again there (the broadcaster with the others: they name its port)."""
    children, left = start(args, moves), MOST_MOVES
    while True:
        status = process_life.supervise(children, stop, quiet={discovery.PORT_MOVES})
        moved = [name for name, proc in children.items() if proc.returncode == discovery.PORT_MOVES]
        if stop.is_set() or not moved:
            return status
        left -= 1
        if left < 0:  # another user takes each port as it comes free: stop walking, say so
            process_life.end_all(children)
            what, _, flag = MOVING[moved[0]]
            log.error("%s's port was taken %d times between sigreload's look and its bind (another user's "
                      "program?): set one with %s", what, MOST_MOVES + 1, flags()[flag])
            return 1
        for name in moved:
            what, dest, flag = MOVING[name]
            host, others = "" if args.lan else args.host, {args.port, args.ws_port, args.livereload}
            try:
                setattr(args, dest, claim(what, host, getattr(args, dest), flags()[flag], True,
                                          others - {getattr(args, dest)}))
            except SystemExit:  # no free port left: its one line, and the others stop with us
                process_life.end_all(children)
                raise
        if "broadcast" in moved:
            process_life.end_all(children)
            children = start(args, moves)
        else:
            argv = children_argv(args, children["broadcast"].pid, moves)["http"]
            children["http"] = process_life.spawn(argv, start_new_session=True)


def start(args: argparse.Namespace, moves: Collection[str] = ()) -> dict[str, subprocess.Popen[bytes]]:
    """The three processes for ``args``, each in a session of its own: the
    terminal's Ctrl-C reaches only us (never a child still importing, which
    would print a KeyboardInterrupt traceback); ``supervise`` stops them with
    SIGTERM, and each follows our lifeline should we die."""
    def spawn(argv: list[str]) -> subprocess.Popen[bytes]:
        return process_life.spawn(argv, start_new_session=True)

    broadcast = process_life.spawn(children_argv(args, moves=moves)["broadcast"], start_new_session=True,
                                   env={**os.environ, secret.FOLDER_ENV: os.path.realpath(args.root)})
    others = children_argv(args, broadcast.pid, moves)
    children = {"broadcast": broadcast, "watch": spawn(others["watch"])}
    if not args.no_http:
        children["http"] = spawn(others["http"])
    return children


def main(argv: list[str] | None = None) -> None:
    """sigreload: serve ROOT, watch it and live-reload the pages (all three
    processes). Ctrl-C before they start exits quietly (status 130); a closed
    stdout (``sigreload config | head -1``) too (status 141)."""
    try:
        with command_line.quiet_closed_stdout():
            run(argv)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
