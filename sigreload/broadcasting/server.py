"""The broadcaster's servers: bind, build the shell, serve until told to stop.

``run(options)`` binds the WebSocket port (and LiveReload's, with
``--livereload``), makes the message folder, installs the signal handlers,
serves, and prints the ready line; SIGINT, SIGTERM or SIGHUP close every
connection with 1001.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from sigreload import command_line, consoles, listening, livereload, process_life, secret
from sigreload.broadcasting import admission
from sigreload.broadcasting.core import Features
from sigreload.broadcasting.gate import HANDSHAKES_AT_ONCE, Gate, GatedConnection, connections
from sigreload.broadcasting.handler import make_handler
from sigreload.broadcasting.shell import Broadcaster
from sigreload.contract import messages
from sigreload.serving import limits

MAX_FRAME = 4096  # clients have little to say: cap what they can send
ACCEPTS_AT_ONCE = 16  # connections asyncio accepts in one pass of its loop (its backlog argument)
BACKLOG = 1024  # connections the kernel holds until they are accepted
HANDSHAKE_DEADLINE = 10.0  # seconds from connecting to an open socket (websockets' open_timeout), queue included
MOST_CONNECTIONS = 10_000  # in all (fewer below the open-files limit); limits.PER_ADDRESS from one LAN device

log = logging.getLogger("sigreload.broadcast")
Respond = Callable[[ServerConnection, Request], Response | None]


class LiveReloadPortError(OSError):
    """LiveReload's port (``port``) cannot be listened on: ``broadcaster.main`` names it, and its flag."""

    def __init__(self, cause: OSError, *, port: int) -> None:
        super().__init__(cause.errno, cause.strerror, cause.filename)
        self.port = port


@dataclass(frozen=True, kw_only=True)
class Options:
    """What one broadcaster is run with (``broadcaster.main`` makes it from the command line)."""

    hosts: list[str]  # addresses to listen on ("": every interface)
    port: int  # the WebSocket port (0: any free one)
    origins: admission.Origins = tuple(admission.LOOPBACK_ORIGINS)  # page origins accepted (``admission.accepting``)
    allowed_hosts: tuple[str, ...] = ()  # Host names answered besides loopback names and addresses (--allow-host)
    ping_interval: float = 10.0  # seconds between pings (and to wait for a pong)
    livereload_port: int | None = None  # --livereload: LiveReload's protocol on this port too
    features: Features = Features()  # what pages are told they may do


async def run(options: Options) -> None:
    """Serve the pages until SIGINT, SIGTERM or SIGHUP (each closes every connection with 1001)."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def stopping() -> None:
        if not stop.done():
            stop.set_result(None)

    for name in process_life.STOP_SIGNALS:
        loop.add_signal_handler(getattr(signal, name), stopping)
    crowd = limits.Crowd(limits.most_connections(MOST_CONNECTIONS))

    def full() -> None:  # a full file table (another process's files, or ours): the longest idle go
        for victim in crowd.longest_idle(ACCEPTS_AT_ONCE):
            assert isinstance(victim, GatedConnection)
            victim.transport.abort()

    limits.quiet_accept_errors(loop, full)  # and one line a second, not a traceback per accept
    sockets = listening.bind(options.hosts, options.port, BACKLOG)
    port = sockets[0].getsockname()[1]
    lr_sockets: list[socket.socket] = []
    if options.livereload_port is not None:
        try:
            lr_sockets = listening.bind(options.hosts, options.livereload_port, BACKLOG)
        except OSError as exc:
            raise LiveReloadPortError(exc, port=options.livereload_port) from None
    mailbox = make_mailbox(port)
    broadcaster = Broadcaster(features=options.features, folder=mailbox.folder if mailbox else None, port=port,
                              key=secret.folder_key(here()),
                              console=consoles.Consoles() if options.features.console else None)
    loop.add_signal_handler(signal.SIGUSR1, broadcaster.signal, "reload")
    loop.add_signal_handler(signal.SIGUSR2, broadcaster.signal, "css")
    # A storm fills asyncio's wakeup socket: the bytes already there stand for the
    # same signals (they merge anyway), so a full buffer is no reason to print.
    signal.set_wakeup_fd(signal.set_wakeup_fd(-1), warn_on_full_buffer=False)
    servers = await listen(make_handler(broadcaster), sockets, options, crowd)
    if lr_sockets:
        prove = functools.partial(secret.proof, broadcaster.key, port)  # LiveReload's plugin asks as a tab does
        servers += await listen(livereload.make_handler(broadcaster.join, broadcaster.leave, prove), lr_sockets,
                                options, crowd, livereload.respond)
    # Handlers installed, port bound: signals held since our first line arrive now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1, signal.SIGUSR2})
    gc.collect()
    gc.freeze()  # what start-up made lives as long as the process: never looked at again
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 1 << 30)  # the oldest generation: once joins and leaves settle (Core.busy)
    ready(options, port, lr_sockets[0].getsockname()[1] if lr_sockets else None)
    try:
        await stop
        broadcaster.goodbye()
        for server in servers:
            server.close()  # closes every connection with 1001 (going away)
        for server in servers:
            await server.wait_closed()
    finally:
        if mailbox:
            mailbox.close()


def here() -> str:
    """The folder whose key proves this sigreload to its tabs (``secret.folder_key``):
    the one ``sigreload`` serves (it says which in ``secret.FOLDER_ENV``: ``sigreload
    site`` and ``cd site; sigreload`` are the same sigreload), else the one run from."""
    try:
        return os.environ.get(secret.FOLDER_ENV) or os.getcwd()
    except OSError:  # run from a folder since removed
        return "/"


def make_mailbox(port: int) -> messages.Mailbox | None:
    """The folder the watcher leaves its messages in, for ``port``; None (said once) when none can be made."""
    if refused := messages.runtime_refused():
        log.warning("%s; messages go to a private folder in %s", refused, messages.base())
    try:
        return messages.Mailbox(port)
    except OSError as exc:
        log.warning("cannot make a message folder in %s (%s): pages reload on every change, "
                    "and no build error reaches them", messages.base(), exc.strerror)
        return None


def ready(options: Options, port: int, livereload_port: int | None) -> None:
    """The ready line (one; people and tests wait for it), after the LAN warning."""
    hosts, pid = options.hosts, os.getpid()
    if "0.0.0.0" in hosts:
        log.warning("LAN mode: any device on your network can connect: %s",
                    ", ".join(f"ws://{a}:{port}" for a in command_line.lan_addresses()))
    also = "".join(f"; also on {listening.shown(h)}" for h in hosts[1:])
    if livereload_port is not None:
        also += f"; LiveReload protocol on port {livereload_port} (/livereload.js)"
    log.info("ready on ws://%s:%d (pid %d): kill -USR1 %d reloads every page, kill -USR2 %d refreshes "
             "stylesheets%s", listening.shown(hosts[0]), port, pid, pid, pid, also)


async def listen(handler: Callable[[ServerConnection], Awaitable[None]], sockets: list[socket.socket],
                 options: Options, crowd: limits.Crowd, respond: Respond | None = None) -> list[Server]:
    """A WebSocket server per bound socket (``listening.bind``) of one port, its handshakes
    HANDSHAKES_AT_ONCE at a time (a Gate), its connections among ``crowd`` (the process's)."""
    gate = Gate(HANDSHAKES_AT_ONCE, crowd)
    process_request = admission.host_checked(admission.origin_required(respond or admission.snippet_response),
                                             options.allowed_hosts)
    servers = [await serve(handler, sock=sock, process_request=process_request, create_connection=connections(gate),
                           backlog=ACCEPTS_AT_ONCE, origins=options.origins, compression=None, max_size=MAX_FRAME,
                           max_queue=4, ping_interval=options.ping_interval, ping_timeout=options.ping_interval,
                           close_timeout=0.5, open_timeout=HANDSHAKE_DEADLINE)
               for sock in sockets]
    for sock in sockets:  # asyncio accepts ``backlog`` connections in one pass; the kernel holds more
        sock.listen(BACKLOG)
    return servers


def serve_until_stopped(options: Options) -> None:
    """Serve the pages until SIGINT, SIGTERM or SIGHUP; raises OSError when it cannot listen."""
    asyncio.run(run(options))
