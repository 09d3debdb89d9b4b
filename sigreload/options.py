"""Every option, declared once: its name, type, default, help, and which
commands take it.

From this table come each command's parser (:func:`add`), the argv that
``sigreload`` hands its children (:func:`argv`), the configuration file's keys
and ``sigreload config`` (``sigreload.config`` reads the all-in-one parser).
Adding an option is one entry here and the code that uses it.

The commands: ``sigreload`` (all-in-one), ``http`` (sigreload-http),
``broadcast`` (sigreload-broadcast), ``watch`` (sigreload-watch), ``signal``
(sigreload-reload, sigreload-css).
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sigreload.command_line import FILE_PAGES_HELP, HOST, HTTP_PORT, IDLE_TIMEOUT, INTERVAL, POLL_HELP, WS_PORT

ALL = ("sigreload", "http", "broadcast", "watch")


def port(text: str) -> int:
    """A TCP port, 0 (any free) to 65535: argparse's type for every port option."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"not a port (0 to 65535): {number}")
    return number


def command(text: str) -> str:
    """A command line (split as a shell would): argparse's type for ``--editor``
    (``code "`` was a traceback in the HTTP server, r32a5)."""
    try:
        shlex.split(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a command ({exc}): {text}") from None
    return text


LEAST_SECONDS = 0.01  # shorter: --idle-timeout failed every request, without a word (r32a4)
MOST_SECONDS = 86400.0  # a day; longer: the watcher's and sockets' timers overflowed (1e10: a traceback)


def seconds(text: str) -> float:
    """A time above zero, in seconds: argparse's type for every time option
    (``--interval`` 0 would spin; ``--idle-timeout`` 0 would close every connection at once)."""
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not number > 0:  # NaN too
        raise argparse.ArgumentTypeError(f"not above 0 seconds: {text}")
    if not LEAST_SECONDS <= number <= MOST_SECONDS:
        raise argparse.ArgumentTypeError(f"not from {LEAST_SECONDS} to {MOST_SECONDS:.0f} seconds: {text}")
    return number


@dataclass(frozen=True)
class Option:
    """One option. ``kind`` bool is a switch; ``repeat`` appends; ``const`` is
    the value of the flag given alone (``--livereload``); ``flags`` names a
    command's own spelling (the broadcaster's ``--port`` is ``ws-port``);
    ``defaults`` a command's own default; ``group`` is its heading in ``sigreload --help``; ``passed``: sigreload
    hands it to the children that take it (False: it derives their flags). ``feature`` (a switch's): the
    broadcaster's feature flag it sets (``broadcasting.Features``, the pages' hello), and the flag's value
    when the switch is given (``--no-console``: ``("console", False)``); see :func:`features`."""

    name: str
    help: str | Mapping[str, str]
    takes: tuple[str, ...]
    kind: Callable[[str], Any] = str
    default: Any = None
    repeat: bool = False
    metavar: str | None = None
    const: Any = None
    short: str | None = None
    flags: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    dest: str | None = None
    group: str | None = None
    passed: bool = True
    feature: tuple[str, bool] | None = None

    def flag(self, command: str) -> str:
        """The flag ``command`` takes this option as."""
        return self.flags.get(command, f"--{self.name}")

    def key(self) -> str:
        """Its attribute on the parsed arguments."""
        return self.dest or self.name.replace("-", "_")


HTTP, WS, WATCH = "HTTP server", "broadcaster", "watcher"

OPTIONS = (
    Option("root", {"sigreload": "folder to serve and watch (default: .)", "http": "folder to serve (default: .)",
                    "watch": "folder to watch (default: .)"}, ("sigreload", "http", "watch"), default=".",
           passed=False),
    Option("host", "address to listen on (default: %(default)s)", ("sigreload", "http", "broadcast"),
           default=HOST, passed=False),
    Option("lan", {"sigreload": "listen on every address (opt-in; prints a warning)",
                   "http": "listen on every address (opt-in; prints a warning)",
                   "broadcast": "listen on every address and accept pages of this machine's addresses too (opt-in)"},
           ("sigreload", "http", "broadcast"), kind=bool, passed=False),
    Option("verbose", "log in detail (the HTTP server: every request; the broadcaster: every client and "
                      "message; the watcher: every pass that finds a change)", ALL, kind=bool, short="-v"),
    Option("no-http", "your own server serves ROOT: run only the broadcaster and the watcher", ("sigreload",),
           kind=bool, group=HTTP),
    Option("port", {"sigreload": "HTTP port (default: %(default)s; a busy default moves to the next free one, a port "
                                 "set here or in a file is kept)",
                    "http": "HTTP port (default: %(default)s; 0: any free)"}, ("sigreload", "http"), kind=port,
           default=HTTP_PORT, group=HTTP, passed=False),
    Option("open", "open the page in your browser once it is served", ("sigreload", "http"), kind=bool,
           group=HTTP),
    Option("allow-host", "also answer requests for the host NAME (a forwarder's: Codespaces, Gitpod, a tunnel; "
                         ".example.com: its subdomains too); repeatable", ("sigreload", "http", "broadcast"),
           repeat=True, metavar="NAME", group=HTTP),
    Option("https", "serve over HTTPS (pages, their socket, the proxy): with --cert and --key, or a self-signed "
                    "certificate made on first use and kept in ~/.cache/sigreload", ("sigreload", "http"),
           kind=bool, group=HTTP),
    Option("cert", "with --https: your certificate (PEM; mkcert's)", ("sigreload", "http"), metavar="FILE",
           group=HTTP, passed=False),
    Option("key", "with --https: its private key (PEM)", ("sigreload", "http"), metavar="FILE", group=HTTP,
           passed=False),
    Option("editor", "open a file at a line when a page's error toast names it: CMD with {file}, {line} and "
                     "{column} replaced, e.g. \"code -g {file}:{line}:{column}\" (default: $VISUAL or $EDITOR "
                     "when it is code, subl, idea and the like)", ("sigreload", "http"), kind=command, metavar="CMD",
           group=HTTP),
    Option("source", argparse.SUPPRESS, ("http",), metavar="DIR"),  # the watched folder (--output, --proxy)
    Option("spa", "single-page app: unknown paths without an extension serve /index.html", ("sigreload", "http"),
           kind=bool, group=HTTP),
    Option("no-inject", "do not insert the snippet into HTML pages (include it yourself)", ("sigreload",),
           kind=bool, group=HTTP),
    Option("inject", "insert the snippet (from the broadcaster on WS_PORT) into HTML responses", ("http",),
           kind=port, metavar="WS_PORT"),
    Option("proxy", {"sigreload": "serve your app server at URL (e.g. http://127.0.0.1:5000) through a proxy "
                                  "that inserts the snippet; ROOT is its sources: after a *.py edit, pages "
                                  "reload once the app restarted and answers",
                     "http": "serve your app server at URL (on this machine) instead of ROOT, as a reverse "
                             "proxy"}, ("sigreload", "http"), metavar="URL", group=HTTP, passed=False),
    Option("idle-timeout", "the file server closes a connection that sends nothing for this long (an idle "
                           "keep-alive, a half-sent request; default: %(default)s)", ("http",), kind=seconds,
           default=IDLE_TIMEOUT, metavar="SECONDS"),
    Option("ws-port", {"sigreload": "WebSocket port the pages connect to (default: %(default)s; a busy default moves "
                                    "to the next free one, a port set here or in a file is kept)",
                       "broadcast": "WebSocket port the pages connect to (default: %(default)s; 0: any free)",
                       "watch": "the broadcaster's port (default: %(default)s)",
                       "signal": f"the broadcaster's port (default: this user's one broadcaster, on any port; "
                                 f"with several, the one on {WS_PORT}, or the one started here)"},
           ("sigreload", "broadcast", "watch", "signal"), kind=port, default=WS_PORT,
           flags={"broadcast": "--port"}, defaults={"signal": None},
           group=WS, passed=False),
    Option("allow-origin", "also accept pages from ORIGIN, e.g. http://192.168.1.5:8000 (repeatable)",
           ("sigreload", "broadcast"), repeat=True, metavar="ORIGIN", group=WS),
    Option("allow-file-pages", FILE_PAGES_HELP, ("sigreload", "broadcast"), kind=bool, group=WS),
    Option("ping-interval", "keepalive: a client silent for twice this is dropped (s)", ("broadcast",),
           kind=seconds, default=10.0),
    Option("livereload", "also speak the LiveReload protocol on PORT (default: 35729, the browser extensions' "
                         "port) and serve /livereload.js there", ("sigreload", "broadcast"), kind=port,
           const=35729, metavar="PORT", group=WS),
    Option("no-console", "do not print the pages' errors (uncaught, unhandled rejections, console.error) in "
                         "this terminal", ("sigreload", "broadcast"), kind=bool, feature=("console", False),
           group=WS),
    Option("morph", "apply a page's HTML edits in place (idiomorph) instead of reloading it: typed input, "
                    "focus, scroll and JavaScript state stay", ("sigreload", "broadcast"), kind=bool,
           feature=("morph", True), group=WS),
    Option("no-overlay", "do not show a page's uncaught errors and unhandled rejections as a toast on the page "
                         "(they still print in this terminal)", ("sigreload", "broadcast"), kind=bool,
           feature=("overlay", False), group=WS),
    Option("follow", "a saved page that no tab shows opens in the tab you focused last; after a reload, the "
                     "first element that changed is scrolled into view and outlined", ("sigreload", "broadcast"),
           kind=bool, feature=("follow", True), group=WS),
    Option("sources", argparse.SUPPRESS, ("broadcast",), kind=bool,
           feature=("navigate", False)),  # ROOT is an app's sources: --follow opens nothing
    Option("interval", "seconds between two looks at recently edited files (default: %(default)s)",
           ("sigreload", "watch"), kind=seconds, default=INTERVAL, group=WATCH),
    Option("poll", POLL_HELP, ("sigreload", "watch"), kind=bool, group=WATCH),
    Option("pid", "signal only this broadcaster (sigreload passes its own)", ("watch",), kind=int),
    Option("ignore", "also ignore files or folders matching GLOB (repeatable)", ("sigreload", "watch"),
           repeat=True, metavar="GLOB", group=WATCH),
    Option("exec", "build ROOT with CMD (run in ROOT) after changes; pages reload after a good build",
           ("sigreload", "watch"), metavar="CMD", dest="build", group=WATCH, passed=False),
    Option("proxied", argparse.SUPPRESS, ("watch",), kind=bool),  # --app: sigreload's proxy is in front of it
    Option("exec-dir", argparse.SUPPRESS, ("watch",), metavar="DIR"),  # where a file's --exec runs (its folder)
    Option("output", "with --exec: the build's output folder (served; never a trigger)", ("sigreload", "watch"),
           metavar="DIR", group=WATCH, passed=False),
    Option("app", {"sigreload": "with --no-http: your app server at URL serves the pages (sigreload's middleware "
                                "or a pasted snippet inserts it); after a *.py edit, pages reload once it answers",
                   "watch": "your app server (e.g. http://127.0.0.1:5000): after a *.py edit, reload once it "
                            "restarted and answers"}, ("sigreload", "watch"), metavar="URL", group=WATCH, passed=False),
)


def add(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """Add every option ``command`` takes to ``parser`` (sigreload's under its process's heading)."""
    groups: dict[str | None, Any] = {None: parser}
    for option in OPTIONS:
        if command not in option.takes:
            continue
        heading = option.group if command == "sigreload" else None
        if heading not in groups:
            groups[heading] = parser.add_argument_group(heading)
        help_text = option.help if isinstance(option.help, str) else option.help[command]
        if option.name == "root":
            groups[heading].add_argument("root", nargs="?", default=option.default, help=help_text)
            continue
        flags = [option.short] if option.short else []
        kwargs: dict[str, Any] = {"help": help_text, "dest": option.key()}
        if option.kind is bool and command == "sigreload" and not option.name.startswith("no-"):
            kwargs.update(action=argparse.BooleanOptionalAction, default=False)  # --no-morph: a file's true off
        elif option.kind is bool:
            kwargs["action"] = "store_true"
        else:
            default = option.defaults.get(command, option.default)
            kwargs.update(type=option.kind, metavar=option.metavar, default=default)
            if option.repeat:
                kwargs.update(action="append", default=[])
            if option.const is not None:
                kwargs.update(nargs="?", const=option.const)
        action = groups[heading].add_argument(*flags, option.flag(command), **kwargs)
        action.help = help_text  # Python < 3.12's BooleanOptionalAction appends "(default: False)"
        if option.kind is bool and command == "sigreload" and option.name.startswith("no-"):
            groups[heading].add_argument(f"--{option.name[3:]}", action="store_false", dest=option.key(),
                                         help=argparse.SUPPRESS)  # --http: a file's no-http = true off
    return parser


def argv(args: argparse.Namespace, command: str) -> list[str]:
    """The flags that pass ``args`` (sigreload's) on to the child ``command``:
    every passed option both take, when it is not at its default."""
    out = []
    for option in OPTIONS:
        if not (option.passed and command in option.takes and "sigreload" in option.takes):
            continue
        value = getattr(args, option.key())
        if value is None or value is False or value == [] or value == option.default:
            continue
        flag = option.flag(command)
        if option.kind is bool:
            out.append(flag)
        else:
            out += [f"{flag}={item}" for item in (value if option.repeat else [value])]
    return out


def features(args: argparse.Namespace) -> dict[str, bool]:
    """The broadcaster's feature flags for its parsed ``args``: one per option declared
    with a ``feature``, so a new one is its declaration and the code that uses it."""
    return {option.feature[0]: bool(getattr(args, option.key())) == option.feature[1]
            for option in OPTIONS if option.feature and "broadcast" in option.takes}
