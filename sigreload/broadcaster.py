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

from sigreload import command_line, listening, options, process_life

TRIGGERS = {signal.SIGUSR1, signal.SIGUSR2} if hasattr(signal, "SIGUSR1") else set()


def make_parser() -> argparse.ArgumentParser:
    """The broadcaster's options."""
    parser = command_line.parser("Run the broadcaster until SIGINT, SIGTERM or SIGHUP: SIGUSR1 reloads "
                                 "every connected page, SIGUSR2 refreshes their stylesheets.")
    command_line.add_port_flag(parser)
    return options.add(parser, "broadcast")


def main(argv: list[str] | None = None) -> None:
    """Run the broadcaster until SIGINT, SIGTERM or SIGHUP."""
    command_line.require_signals()
    # SIGUSR1's default action terminates: hold the triggers before anything
    # slow. They stay pending until the handlers exist (broadcasting.run).
    signal.pthread_sigmask(signal.SIG_BLOCK, TRIGGERS)
    args = make_parser().parse_args(argv)
    command_line.setup_logging(args.verbose)
    from sigreload import broadcasting

    # --lan widens who connects, never what is checked: pages of the addresses printed, of the
    # --allow-host names and of --allow-origin; never "null" unless asked (--allow-file-pages)
    wide = args.lan or args.host in listening.WILDCARDS
    served = command_line.lan_addresses() if wide else [listening.shown(h) for h in listening.hosts(args.host)]
    host = "" if args.lan else args.host  # --lan: every interface, IPv4 and IPv6
    hosts = listening.hosts(host)
    features = broadcasting.Features(**options.features(args))  # each from its option's declaration
    setup = broadcasting.Options(
        hosts=hosts, port=args.ws_port, ping_interval=args.ping_interval, livereload_port=args.livereload,
        origins=broadcasting.accepting(args.allow_origin, args.allow_file_pages, served + args.allow_host),
        allowed_hosts=allowed_hosts(args.allow_host, args.allow_origin), features=features)
    process_life.lifeline()
    try:
        broadcasting.serve_until_stopped(setup)
    except OSError as exc:
        if isinstance(exc, broadcasting.LiveReloadPortError):
            port, flag = exc.port, "--livereload="
        else:
            port, flag = args.ws_port, args.port_flag
        if exc.errno != errno.EADDRINUSE:
            sys.exit(f"sigreload-broadcast: cannot listen on {host}:{port}: {exc.strerror}")
        from sigreload.contract import discovery

        partly = exc.filename if exc.filename != hosts[0] else None
        sys.exit(f"sigreload-broadcast: {discovery.in_use(port, flag, partly)}")

def allowed_hosts(names: list[str], origins: list[str]) -> tuple[str, ...]:
    """The Host names answered besides loopback ones and addresses: --allow-host's, and
    those of --allow-origin (a page of such an origin may name its own host in the snippet's src)."""
    from urllib.parse import urlsplit

    return (*names, *(host for origin in origins if (host := urlsplit(origin).hostname)))


if __name__ == "__main__":
    main()
