"""The LiveReload protocol (version 7), for the clients that already exist:
sites whose templates include ``livereload.js`` (Jekyll, Hugo, Zola,
python-livereload, guard) and the LiveReload browser extensions, which
inject ``http://127.0.0.1:35729/livereload.js``. With ``--livereload`` the
broadcaster also listens on that port: ``GET /livereload.js`` is the real
client (livereload-js, shipped pinned in ``snippet/`` with its licence) and
``/livereload`` its socket, where each of our events becomes ``reload``
commands: a stylesheet or an image is swapped in place by the client, any
other path reloads the page. A failed build is not sent (the protocol's
only way to show it is a blocking ``alert``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from sigreload.contract import wire
from sigreload.serving import snippet

PORT = 35729  # the extensions' fixed port
PATH = wire.LIVERELOAD_SOCKET_PATH
CLIENT = "livereload.js"  # livereload-js 4.0.2, dist/livereload.min.js (MIT: snippet/LICENSE.livereload-js)
PROTOCOL_7 = "http://livereload.com/protocols/official-7"
HANDSHAKE_TIMEOUT = 5.0  # the client closes when the server's hello takes longer
LIVE = (".css", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".avif", ".ico")  # swapped in place
COMMANDS_MAX = 32  # reload commands for one event: more paths reload the page instead
EVERY_STYLESHEET = "sigreload-every-stylesheet.css"  # a .css path that matches no link: all are reloaded

log = logging.getLogger("sigreload.broadcast")

# A plugin of the client, served after it: a page reload first fetches the page
# anew (cache: "reload"), so that the browser's revalidation finds the newest copy
# in its cache; a server that answers If-Modified-Since in whole seconds (the
# stdlib's http.server) sent 304 for a page saved twice in one second, and the
# first save stayed. Stylesheets and images are the client's own to swap.
# And a page reloads only for the sigreload it came from (secret.py): the
# plugin's nonce goes out in the client's "info", the broadcaster answers with
# a proof as a reload command of its own (PROOF_PATH: protocol 7 has no other
# way), and each connection's reloads wait for it. Another user's server on the
# port once sigreload stopped reloaded the tab into their script (r36a4).
PROOF_PATH = "sigreload-proof:"
FRESH_PAGE = """
;(() => {
  const lr = window.LiveReload;
  if (!lr || !lr.addPlugin) return;
  class SigreloadFreshPage {
    constructor(win, host) {
      this.window = win; this.proven = false; this.trusted = null;
      this.nonce = [...win.crypto.getRandomValues(new Uint8Array(16))]
        .map((b) => b.toString(16).padStart(2, "0")).join("");
      const handlers = host && host._connector && host._connector.handlers;
      if (handlers && typeof handlers.connected === "function") {
        const connected = handlers.connected;
        handlers.connected = (...args) => { this.proven = false; return connected(...args); };
      }
    }
    analyze() { return { nonce: this.nonce }; }
    reload(path, options) {
      const proof = /^sigreload-proof:([0-9a-f]{16,128})$/.exec(path);
      if (proof) {
        this.trusted = this.trusted || proof[1];
        this.proven = this.trusted === proof[1];
        return true;
      }
      if (options.liveCSS && /\\.css(?:\\.map)?$/i.test(path)) return false;
      if (options.liveImg && /\\.(jpe?g|gif|png|svg|webp|avif|ico)$/i.test(path)) return false;
      if (!this.proven) {
        console.info("sigreload: a LiveReload server that is not the sigreload this page came from "
          + "asked for a reload: ignored");
        return true;
      }
      const win = this.window;
      win.fetch(win.location.href, { cache: "reload" }).catch(() => {}).then(() => win.location.reload());
      return true;
    }
  }
  SigreloadFreshPage.identifier = "sigreload-fresh-page";
  SigreloadFreshPage.version = "1.1";
  lr.addPlugin(SigreloadFreshPage);
})();
"""


def respond(connection: ServerConnection, request: Request) -> Response | None:
    """process_request on the LiveReload port: the client at /livereload.js,
    the handshake at /livereload, 404 for anything else."""
    path = request.path.split("?")[0]
    if path == PATH:
        return None
    if path != wire.LIVERELOAD_CLIENT_PATH:
        return connection.respond(404, "Nothing at this address\n")
    response = connection.respond(200, (snippet.folder() / CLIENT).read_text() + FRESH_PAGE)
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "text/javascript; charset=utf-8"
    return response


def commands(kind: str, paths: list[str] | None) -> list[str]:
    """The LiveReload commands for one of our events: ``kind`` ("reload" or
    "css") with the URL paths that changed (None: unknown, every page)."""
    if paths is None:
        paths = [EVERY_STYLESHEET if kind == "css" else "/"]
    page = [p for p in paths if not p.lower().endswith(LIVE)]
    chosen = page[:1] if page or len(paths) > COMMANDS_MAX else paths  # one page path reloads the page
    chosen = chosen or ["/"]
    return [json.dumps({"command": "reload", "path": p, "liveCSS": True, "liveImg": True}) for p in chosen]


def is_hello(message: object) -> bool:
    """Whether a client's first message is LiveReload's hello offering protocol 7
    (its ``protocols`` a list: a string or a number there is no offer)."""
    if not isinstance(message, dict) or message.get("command") != "hello":
        return False
    protocols = message.get("protocols")
    return isinstance(protocols, list) and PROTOCOL_7 in protocols


def make_handler(join: Callable[[ServerConnection, Literal["livereload"]], None],
                 leave: Callable[[ServerConnection], None],
                 prove: Callable[[object], str | None]) -> Callable[[ServerConnection], Awaitable[None]]:
    async def handler(connection: ServerConnection) -> None:
        """The hello answered (protocol 7, or the socket is closed); the client is
        ``join``ed from then until it leaves; its "info" with our plugin's nonce
        is answered with ``prove(nonce)`` (FRESH_PAGE); what else it says is ignored."""
        try:
            if not is_hello(json.loads(await connection.recv())):
                await connection.close(1002, "LiveReload protocol 7 only")
                return
            await connection.send(json.dumps({"command": "hello", "protocols": [PROTOCOL_7],
                                               "serverName": "sigreload"}))
            join(connection, "livereload")
            log.debug("LiveReload client joined from %s", connection.remote_address)
            async for said in connection:  # "info", "url": only our plugin's nonce is acted on
                proof = prove(nonce(said))
                if proof is not None:
                    await connection.send(json.dumps({"command": "reload", "path": PROOF_PATH + proof,
                                                      "liveCSS": False, "liveImg": False}))
        except (ConnectionClosed, ValueError):
            pass
        finally:
            leave(connection)  # idempotent: one that never said hello too

    return handler


def nonce(said: str | bytes) -> object:
    """The nonce of sigreload's plugin in a client's "info" message (None: none)."""
    try:
        message = json.loads(said)
        return message["plugins"]["sigreload-fresh-page"]["nonce"] if message.get("command") == "info" else None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
