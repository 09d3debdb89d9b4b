"""The Host and Origin rules of every port sigreload serves (the file server,
the proxy, the broadcaster): which Host header names this machine (DNS
rebinding: a site's name that resolves to 127.0.0.1 or a LAN address is
refused), and whether a page's Origin is the server it asks."""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

HOST_REFUSED = b"Host not allowed (use a loopback address, or let this name in with --allow-host NAME)\n"

# A Host header is a name or an address, and a port: nothing else (RFC 9110 7.2:
# uri-host [":" port]). Userinfo ("evil.example@127.0.0.1"), lists ("a, b"),
# spaces, paths: 400, never passed on (an app would read another name than we checked).
HOST_SYNTAX = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9.])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
HOST_MALFORMED = b"A Host header is a name or an address, and a port\n"
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@functools.lru_cache(maxsize=256)  # asked on every request, of a few names
def host_name(host_header: str | None) -> str | None:
    """The name or address a Host header names (lower case, no port, IPv6
    without brackets, no trailing dot), or None when the header is anything
    but a name or an address and a port."""
    if not host_header or not HOST_SYNTAX.fullmatch(host_header):
        return None
    try:
        parts = urlsplit("//" + host_header)
        parts.port  # noqa: B018  # raises ValueError when out of range
    except ValueError:
        return None
    return (parts.hostname or "").rstrip(".") or None


def loopback_host(host_header: str | None) -> bool:
    """True for localhost, *.localhost and loopback addresses (any port)."""
    host = host_name(host_header) or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_allowed(host_header: str | None, lan: bool, allowed: Iterable[str]) -> bool:
    """Whether a request for ``host_header`` is served: a loopback name, an IP
    address (a DNS rebinding needs a name; ``--host 192.168.1.5`` and --lan are
    reached by their addresses), or a name in ``allowed`` (--allow-host;
    ".example.com" also allows its subdomains, as Vite's server.allowedHosts).
    ``lan`` changes nothing: --lan widens who connects, never what is checked."""
    host = host_name(host_header)
    if host is None:
        return False
    if loopback_host(host_header):
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return any(host == name.lstrip(".").lower() or (name.startswith(".") and host.endswith(name.lower()))
                   for name in allowed)


def host_refusal(hosts: Iterable[str], allowed: Iterable[str]) -> tuple[int, bytes] | None:
    """What a request with the Host headers ``hosts`` gets instead of its
    answer, or None when it is answered: 400 unless there is one Host and it
    is a name or an address and a port; 403 unless ``host_allowed``. The rule
    of every port sigreload serves (the file server, the proxy, the broadcaster)."""
    given = list(hosts)
    host = given[0] if len(given) == 1 else None  # two Host headers: which one would the next reader take?
    if host_allowed(host, True, allowed):
        return None
    return (400, HOST_MALFORMED) if host_name(host) is None else (403, HOST_REFUSED)


def same_origin(origin: str | None, host: str | None, scheme: str) -> bool:
    """Whether a page at ``origin`` asks for its own server's socket: the same
    host and port as the request's Host header, and the scheme it came by
    (``scheme``): https on TLS; on plain http, http or https (a forwarder's TLS
    front may end before us: whoever serves https at this host and port is that
    front). A foreign site's page, or an http page of an https server, may not."""
    name = host_name(host)
    if not origin or name is None or origin == "null":
        return False
    try:
        asked, ours = urlsplit(origin), urlsplit(f"{scheme}://{host}")
        schemes = ("https",) if scheme == "https" else ("http", "https")
        return (asked.scheme in schemes and not asked.username and not asked.path and asked.hostname == name
                and (asked.port or DEFAULT_PORTS[asked.scheme]) == (ours.port or DEFAULT_PORTS[asked.scheme]))
    except (ValueError, KeyError):
        return False
