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
from pathlib import Path

from sigreload import command_line, config, options, process_life, starter
from sigreload.contract import discovery

SUBCOMMANDS = {"reload": discovery.reload_main, "css": discovery.css_main, "init": starter.main,
               "config": lambda argv: show_config(argv)}

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


def children_argv(args: argparse.Namespace, broadcaster_pid: int | None = None) -> dict[str, list[str]]:
    """The three processes' command lines for the parsed ``args``.

    The watcher gets the broadcaster's PID: it signals that process only,
    never another project's broadcaster that holds the port.
    """
    under_r = bool(os.environ.get("SIGRELOAD_UNDER_R"))  # set by rfile.yml: name its settings
    http_flag, ws_flag = ("PORT=", "WS_PORT=") if under_r else ("--port", "--ws-port")
    common = ["--lan"] if args.lan else ["--host", args.host]
    serve = ["--proxy", args.proxy] if args.proxy else [args.output or args.root]
    serve += [] if args.no_inject else ["--inject", str(args.ws_port)]
    serve += [f"--{name}={os.path.abspath(path)}" for name, path in (("cert", args.cert), ("key", args.key)) if path]
    watch = ["--pid", str(broadcaster_pid)] if broadcaster_pid else []
    watch += ["--exec", args.build, "--output", args.output] if args.build else []
    watch += ["--app", args.proxy] if args.proxy else []
    run = process_life.module_argv
    return {
        "http": run("sigreload.http_server") + [*serve, "--port", str(args.port), f"--port-flag={http_flag}",
                                                *common, *options.argv(args, "http")],
        "broadcast": run("sigreload.broadcaster") + ["--port", str(args.ws_port), f"--port-flag={ws_flag}",
                                                     *common, *options.argv(args, "broadcast")],
        "watch": run("sigreload.watcher") + [args.root, "--ws-port", str(args.ws_port), *watch,
                                             *options.argv(args, "watch")],
    }


def parse(argv: list[str]) -> argparse.Namespace:
    """sigreload's options: the configuration file's values, then the command line's over them."""
    parser = make_parser()
    parser.set_defaults(**config.or_exit("sigreload", parser, Path.cwd()).values)
    return parser.parse_args(argv)


def show_config(argv: list[str]) -> None:
    """sigreload config [OPTIONS]: every effective setting, with where it came from, as TOML."""
    parser = make_parser()
    parser.prog = "sigreload config"
    found = config.or_exit("sigreload", parser, Path.cwd())
    parser.set_defaults(**found.values)
    args = parser.parse_args(argv)
    on_command_line = config.given(parser, argv)
    print(f"# sigreload's settings here; file: {found.path or 'none (sigreload.toml or pyproject.toml)'}")
    for key, action in config.keys(parser).items():
        print(config.line(key, getattr(args, action.dest), config.source(action, found, on_command_line)))


def main(argv: list[str] | None = None) -> None:
    """sigreload: serve ROOT, watch it and live-reload the pages (all three processes)."""
    command_line.require_signals()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in SUBCOMMANDS and not os.path.isdir(argv[0]):
        return SUBCOMMANDS[argv[0]](argv[1:])
    args = parse(argv)
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
