"""The broadcaster (``sigreload-broadcast``, ``python -m sigreload.broadcaster``):
SIGUSR1 reloads every connected page, SIGUSR2 refreshes their stylesheets.

This module is the process: its options, its signals, its exit. The sockets
and the messages are ``sigreload.broadcasting``, imported once the reload
signals are held (it takes tens of milliseconds).
"""

import argparse
import errno
import signal
import sys

from sigreload import command_line, listening, process_life

TRIGGERS = {signal.SIGUSR1, signal.SIGUSR2} if hasattr(signal, "SIGUSR1") else set()


def make_parser() -> argparse.ArgumentParser:
    """The broadcaster's options."""
    parser = command_line.parser("Run the broadcaster until SIGINT, SIGTERM or SIGHUP: SIGUSR1 reloads "
                                 "every connected page, SIGUSR2 refreshes their stylesheets.")
    parser.add_argument("--host", default=command_line.HOST, help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=command_line.WS_PORT,
                        help="WebSocket port the pages connect to (default: %(default)s; 0: any free)")
    parser.add_argument("--lan", action="store_true",
                        help="listen on every address and accept any page origin (opt-in)")
    parser.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                        help="also accept pages from ORIGIN, e.g. http://192.168.1.5:8000 (repeatable)")
    parser.add_argument("--allow-file-pages", action="store_true", help=command_line.FILE_PAGES_HELP)
    parser.add_argument("--ping-interval", type=float, default=10.0,
                        help="keepalive: a client silent for twice this is dropped (s)")
    command_line.add_livereload(parser)
    command_line.add_no_console(parser)
    command_line.add_morph(parser)
    command_line.add_no_overlay(parser)
    command_line.add_follow(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every client and message")
    command_line.add_port_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run the broadcaster until SIGINT, SIGTERM or SIGHUP."""
    command_line.require_signals()
    # SIGUSR1's default action terminates: hold the triggers before anything
    # slow. They stay pending until the handlers exist (broadcasting.run).
    signal.pthread_sigmask(signal.SIG_BLOCK, TRIGGERS)
    args = make_parser().parse_args(argv)
    command_line.setup_logging(args.verbose)
    from sigreload import broadcasting

    origins: broadcasting.Origins = broadcasting.accepting(args.allow_origin, args.allow_file_pages)
    if args.lan:
        args.host, origins = "", None  # every interface, IPv4 and IPv6; any page
    hosts = listening.hosts(args.host)
    process_life.lifeline()
    try:
        broadcasting.serve_until_stopped(hosts, args.port, origins, args.ping_interval, args.livereload,
                                         not args.no_console, args.morph, not args.no_overlay, args.follow)
    except OSError as exc:
        port, flag = (exc.port, "--livereload=") if hasattr(exc, "port") else (args.port, args.port_flag)
        if exc.errno != errno.EADDRINUSE:
            sys.exit(f"sigreload-broadcast: cannot listen on {args.host}:{port}: {exc.strerror}")
        from sigreload.contract import discovery

        partly = exc.filename if exc.filename != hosts[0] else None
        sys.exit(f"sigreload-broadcast: {discovery.in_use(port, flag, partly)}")

if __name__ == "__main__":
    main()
