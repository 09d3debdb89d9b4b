"""The broadcaster's sockets: signals become WebSocket messages to every page.

Clients that connect to ``/`` (the original pasted snippet, which reloads on
ANY message) only ever receive the text ``reload`` and nothing on connect.
The sigreload snippet connects to ``/sigreload`` and receives JSON: a hello
with this run's boot id and generation, then ``reload`` and ``css`` events
(their shapes: ``contract.wire``). ``GET /reload.js`` on the same port serves
the snippet. The process around this (its options, its signals held from the
first instruction) is ``sigreload.broadcaster``.

The rooms, by job:

- ``core``: the policy, pure (what signals and messages become for each
  client; merging, generations, targeting, what a page that was away
  missed, --follow), fed times by hand in its tests;
- ``shell``: the asyncio shell around it (the message folder, the one
  timer, sending; whether a watcher runs);
- ``handler``: one client's socket, and what a snippet may say;
- ``admission``: who gets in, and as what (origins, plain HTTP answers);
- ``gate``: how many handshakes are read at once, who is let go for whom;
- ``server``: binding, signals, serving until stopped (``Options``, ``run``).
"""

from sigreload.broadcasting.admission import LOOPBACK_ORIGINS, accepting
from sigreload.broadcasting.core import Features, merge
from sigreload.broadcasting.handler import MAX_USING, parsed, reported
from sigreload.broadcasting.server import LiveReloadPortError, Options, run, serve_until_stopped

__all__ = ["LOOPBACK_ORIGINS", "MAX_USING", "Features", "LiveReloadPortError", "Options", "accepting", "merge",
           "parsed", "reported", "run", "serve_until_stopped"]
