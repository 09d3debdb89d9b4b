"""The HTTP server (``sigreload-http``, ``python -m sigreload.http_server``): the
file server on ROOT, or the proxy in front of your app server (``--proxy``).

This module is the process: its options, its one ready line, its exit. What
it serves is ``sigreload.serving``.
"""

import argparse
import errno
import logging
import os
import sys
import threading
import time
from typing import Any

from sigreload import command_line, listening, options, process_life

log = logging.getLogger("sigreload.http")


def make_parser() -> argparse.ArgumentParser:
    """The HTTP server's options."""
    parser = command_line.parser("Serve ROOT over HTTP (or, with --proxy, your app server) "
                                 "until SIGINT, SIGTERM or SIGHUP.")
    command_line.add_port_flag(parser)
    return options.add(parser, "http")


def tls_context(args: argparse.Namespace) -> Any:
    """With --https (or --cert and --key): the TLS context, its certificate said
    in one line (a made one: where it is kept, its fingerprint); exits with one
    line when it cannot be loaded or made. None without."""
    if not (args.https or args.cert or args.key):
        return None
    import ssl

    from sigreload import certificates

    if bool(args.cert) != bool(args.key):
        sys.exit("sigreload-http: --cert and --key go together (mkcert's two files)")
    made: str | None = None  # why a certificate was made now
    try:
        if args.cert:
            cert, key = args.cert, args.key
        else:
            names = [args.host] + [a.strip("[]") for a in command_line.lan_addresses() if "(" not in a] * args.lan
            for name in args.allow_host:  # ".example.com": the name and its subdomains
                names += [name.lstrip("."), "*" + name] if name.startswith(".") else [name]
            cert, key, made = certificates.kept([n for n in names if n])
        context = certificates.server_context(cert, key)
        with open(cert, "rb") as f:
            print_ = certificates.fingerprint(f.read())
    except (OSError, ssl.SSLError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        which = f"the certificate {args.cert}" if args.cert else "a certificate made for this machine"
        sys.exit(f"sigreload-http: cannot use {which} ({why})")
    if args.cert:
        log.info("HTTPS with %s (SHA-256 fingerprint %s)", args.cert, print_)
        if certificates.readable_by_others(args.key):
            log.warning("the key %s may be read by other users of this machine: chmod 600 it", args.key)
    else:
        how = ("made and kept in" if made == certificates.FIRST else "made anew in" if made else "kept in")
        log.info("HTTPS with a self-signed certificate %s %s%s (SHA-256 fingerprint %s): your browser asks once; "
                 "or pass your own with --cert and --key (mkcert)", how, os.path.dirname(cert),
                 f": {made}" if made and made != certificates.FIRST else "", print_)
    return context


def bind(args: argparse.Namespace, host: str) -> Any:
    """The file server (a ThreadingHTTPServer) or the proxy (its AsyncServer,
    alike where it matters here), bound; exits with one line when it cannot listen."""
    tls = tls_context(args)
    try:
        if args.proxy:
            from sigreload import editor
            from sigreload.serving import proxy

            opener = editor.Opener(os.path.abspath(args.source or args.root), args.editor) if args.inject else None
            return proxy.make_server(app=args.proxy, host=host, port=args.port, ws_port=args.inject, lan=args.lan,
                                     idle_timeout=args.idle_timeout, allowed_hosts=tuple(args.allow_host), tls=tls,
                                     opener=opener)
        from sigreload.serving import file_server

        return file_server.make_server(root=os.path.abspath(args.root), host=host, port=args.port, lan=args.lan,
                                       spa=args.spa, ws_port=args.inject, idle_timeout=args.idle_timeout,
                                       allowed_hosts=tuple(args.allow_host), tls=tls, editor_command=args.editor,
                                       source=args.source and os.path.abspath(args.source))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            from sigreload.contract import discovery

            partly = exc.filename if exc.filename != listening.hosts(host)[0] else None
            sys.exit(f"sigreload-http: {discovery.in_use(args.port, args.port_flag, partly)}")
        sys.exit(f"sigreload-http: cannot listen on {host}:{args.port}: {exc.strerror}")


def say_ready(args: argparse.Namespace, server: Any) -> str:
    """The one ready line (and LAN mode's warning); the URL a browser opens."""
    bound_host, bound_port = server.socket.getsockname()[:2]
    shown = "127.0.0.1" if args.lan else (f"[{bound_host}]" if ":" in bound_host else bound_host)
    scheme = "https" if args.https or args.cert else "http"
    if args.lan:
        urls = [f"{scheme}://{a}:{bound_port}/" for a in command_line.lan_addresses()]
        log.warning("LAN mode: any device on your network can read %s: %s", args.proxy or args.root, ", ".join(urls))
        if "(" not in urls[0] and (qr := command_line.qr_code(urls[0])):  # "(no network address)": no code
            log.info("scan it on your phone to open %s:\n%s", urls[0], qr)
    elif bound_host in ("0.0.0.0", "::"):  # --host 0.0.0.0 reaches as far as --lan: said as loudly (r32a4)
        log.warning("listening on every address: any device on your network can read %s (--lan says at which "
                    "addresses, with a QR code)", args.proxy or os.path.abspath(args.root))
    if args.proxy:
        how = "live reload: the snippet is inserted into its HTML pages" if args.inject else "no snippet inserted"
        log.info("proxying %s at %s://%s:%d/ (pid %d); %s", args.proxy, scheme, shown, bound_port, os.getpid(), how)
    else:
        how = ("live reload: the snippet is inserted into HTML pages" if args.inject else
               "pages get live reload where they include the snippet (--inject WS_PORT inserts it)")
        log.info("serving %s at %s://%s:%d/ (pid %d); %s", os.path.abspath(args.root), scheme, shown, bound_port,
                 os.getpid(), how)
    return f"{scheme}://{shown}:{bound_port}/"


def last_words(server: Any, proxy: str | None) -> None:
    """Stopping, while the broadcaster stops too: the pages' sockets are relayed
    until it closed them (at most relay.LAST_WORDS), so they hear its goodbye
    ("The watcher stopped") instead of being cut off first."""
    from sigreload.serving import relay

    if not proxy:
        relay.RELAYS.drain()
        return
    end = time.monotonic() + relay.LAST_WORDS
    while server.proxy.relaying and time.monotonic() < end:
        time.sleep(0.02)  # the proxy's loop runs in its own thread: a short look, for a second at most


def main(argv: list[str] | None = None) -> None:
    """Serve ROOT over HTTP (or, with --proxy, your app server) until SIGINT, SIGTERM or SIGHUP."""
    command_line.require_signals()
    args = make_parser().parse_args(argv)
    command_line.setup_logging(args.verbose)
    if args.proxy:
        from sigreload import app_server

        app_server.app_or_exit(args.proxy, "sigreload-http: --proxy", origin_only=True)
    else:
        command_line.folder_or_exit(args.root, "sigreload-http")
    stop = process_life.stop_event()
    server = bind(args, "0.0.0.0" if args.lan else args.host)
    # No polling for a shutdown request: the process ends with its main thread.
    # Serving before the ready line: nothing of start-up happens after it.
    threading.Thread(target=server.serve_forever, args=(None,), name="http", daemon=True).start()
    server.started.wait(5)
    url = say_ready(args, server)
    if args.open:  # in a thread: a console browser (lynx) would hold it until it quits
        import webbrowser

        threading.Thread(target=webbrowser.open, args=(url,), name="open", daemon=True).start()
    process_life.wait(stop)
    last_words(server, args.proxy)
    server.server_close()


if __name__ == "__main__":
    main()
