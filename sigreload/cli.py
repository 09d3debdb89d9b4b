"""sigreload: serve a folder, watch it, and live-reload every page showing it.

The all-in-one command: it starts the three processes (HTTP server,
broadcaster, watcher) as children with the options each takes, and stops
them together. ``sigreload reload``, ``css`` and ``init`` run the commands of
the same names (``sigreload-reload``, ...).
"""

import argparse
import logging
import os
import sys

from sigreload import command_line, process_life, starter
from sigreload.contract import discovery

SUBCOMMANDS = {"reload": discovery.reload_main, "css": discovery.css_main, "init": starter.main}

log = logging.getLogger("sigreload")


def make_parser() -> argparse.ArgumentParser:
    """sigreload's options: each process's own, grouped by the process that takes it."""
    parser = command_line.parser(
        "Serve ROOT, watch it and live-reload every page showing it "
        "(an HTTP server, the broadcaster and the watcher, stopped together by Ctrl-C).")
    parser.epilog = ("commands: `sigreload reload` reloads every page, `sigreload css` refreshes "
                     "their stylesheets, `sigreload init` writes an rfile.yml for `r` "
                     "(unless a folder of that name is here: then it is served)")
    parser.add_argument("root", nargs="?", default=".", help="folder to serve and watch (default: .)")
    parser.add_argument("--host", default=command_line.HOST,
                        help="address both servers listen on (default: %(default)s)")
    parser.add_argument("--lan", action="store_true",
                        help="listen on every address (opt-in; prints a warning)")
    parser.add_argument("-v", "--verbose", action="store_true", help="every process logs in detail")
    http = parser.add_argument_group("HTTP server")
    http.add_argument("--no-http", action="store_true",
                      help="your own server serves ROOT: run only the broadcaster and the watcher")
    http.add_argument("--port", type=int, default=command_line.HTTP_PORT,
                      help="HTTP port (default: %(default)s)")
    http.add_argument("--open", action="store_true", help="open the page in your browser once it is served")
    command_line.add_allow_host(http)
    command_line.add_https(http)
    command_line.add_editor(http)
    http.add_argument("--spa", action="store_true",
                      help="single-page app: unknown paths without an extension serve /index.html")
    http.add_argument("--no-inject", action="store_true",
                      help="do not insert the snippet into HTML pages (include it yourself)")
    http.add_argument("--proxy", metavar="URL",
                      help="serve your app server at URL (e.g. http://127.0.0.1:5000) through a proxy "
                           "that inserts the snippet; ROOT is its sources: after a *.py edit, pages "
                           "reload once the app restarted and answers")
    ws = parser.add_argument_group("broadcaster")
    ws.add_argument("--ws-port", type=int, default=command_line.WS_PORT,
                    help="WebSocket port the pages connect to (default: %(default)s)")
    ws.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                    help="also accept pages from ORIGIN, e.g. http://192.168.1.5:8000 (repeatable)")
    ws.add_argument("--allow-file-pages", action="store_true", help=command_line.FILE_PAGES_HELP)
    command_line.add_livereload(ws)
    command_line.add_no_console(ws)
    command_line.add_morph(ws)
    command_line.add_no_overlay(ws)
    command_line.add_follow(ws)
    watch = parser.add_argument_group("watcher")
    watch.add_argument("--interval", type=float, default=command_line.INTERVAL,
                       help="seconds between two looks at recently edited files (default: %(default)s)")
    watch.add_argument("--poll", action="store_true",
                       help=command_line.POLL_HELP)
    watch.add_argument("--ignore", action="append", default=[], metavar="GLOB",
                       help="also ignore files or folders matching GLOB (repeatable)")
    watch.add_argument("--exec", metavar="CMD", dest="build",
                       help="build ROOT with CMD after changes; reload after a good build")
    watch.add_argument("--output", metavar="DIR", help="with --exec: serve DIR (the build's output)")
    return parser


def children_argv(args: argparse.Namespace, broadcaster_pid: int | None = None) -> dict[str, list[str]]:
    """The three processes' command lines for the parsed ``args``.

    The watcher gets the broadcaster's PID: it signals that process only,
    never another project's broadcaster that holds the port.
    """
    under_r = bool(os.environ.get("SIGRELOAD_UNDER_R"))  # set by rfile.yml: name its settings
    http_flag, ws_flag = ("PORT=", "WS_PORT=") if under_r else ("--port", "--ws-port")
    common = (["--lan"] if args.lan else ["--host", args.host]) + (["-v"] if args.verbose else [])
    serve = ["--proxy", args.proxy] if args.proxy else [args.output or args.root]
    serve += [] if args.no_inject else ["--inject", str(args.ws_port)]
    serve += ["--spa"] * args.spa + ["--open"] * args.open + [f"--allow-host={name}" for name in args.allow_host]
    serve += ["--https"] * args.https + ([f"--editor={args.editor}"] if args.editor else [])
    serve += [f"--source={os.path.abspath(args.root)}"] if args.proxy or args.output else []
    serve += [f"--{name}={os.path.abspath(path)}" for name, path in (("cert", args.cert), ("key", args.key)) if path]
    origins = [f"--allow-origin={origin}" for origin in args.allow_origin]
    origins += ["--allow-file-pages"] * args.allow_file_pages
    origins += [f"--livereload={args.livereload}"] if args.livereload is not None else []
    origins += ["--no-console"] * args.no_console + ["--morph"] * args.morph
    origins += ["--no-overlay"] * args.no_overlay + ["--follow"] * args.follow
    watch = [f"--ignore={glob}" for glob in args.ignore] + ["--poll"] * args.poll
    watch += ["--pid", str(broadcaster_pid)] if broadcaster_pid else []
    watch += ["--exec", args.build, "--output", args.output] if args.build else []
    watch += ["--app", args.proxy] if args.proxy else []
    watch += ["-v"] if args.verbose else []
    run = process_life.module_argv
    return {
        "http": run("sigreload.http_server") + [*serve, "--port", str(args.port), f"--port-flag={http_flag}",
                                                *common],
        "broadcast": run("sigreload.broadcaster") + ["--port", str(args.ws_port), f"--port-flag={ws_flag}",
                                                     *origins, *common],
        "watch": run("sigreload.watcher") + [args.root, "--ws-port", str(args.ws_port),
                                             "--interval", str(args.interval), *watch],
    }


def main(argv: list[str] | None = None) -> None:
    """sigreload: serve ROOT, watch it and live-reload the pages (all three processes)."""
    command_line.require_signals()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in SUBCOMMANDS and not os.path.isdir(argv[0]):
        return SUBCOMMANDS[argv[0]](argv[1:])
    args = make_parser().parse_args(argv)
    command_line.folder_or_exit(args.root, "sigreload")
    if args.proxy:
        from sigreload import app_server

        app_server.app_or_exit(args.proxy, "sigreload: --proxy")
        if args.build:
            sys.exit("sigreload: --proxy and --exec do not go together (the app serves the pages)")
    if args.no_http and args.proxy:
        sys.exit("sigreload: --no-http and --proxy do not go together (the proxy is the HTTP server)")
    if args.build and not args.output:
        sys.exit("sigreload: --exec needs --output DIR (the folder to serve)")
    if args.output and not args.build:
        sys.exit("sigreload: --output goes with --exec CMD (the build that writes it)")
    if args.output:
        os.makedirs(args.output, exist_ok=True)  # the first build fills it
    command_line.setup_logging()
    if args.root in SUBCOMMANDS:
        log.info("serving the folder ./%s here (the command is sigreload-%s)", args.root, args.root)
    stop = process_life.stop_event()
    broadcast = process_life.spawn(children_argv(args)["broadcast"])
    others = children_argv(args, broadcast.pid)
    children = {"broadcast": broadcast, "watch": process_life.spawn(others["watch"])}
    if not args.no_http:
        children["http"] = process_life.spawn(others["http"])
    sys.exit(process_life.supervise(children, stop))


if __name__ == "__main__":
    main()
