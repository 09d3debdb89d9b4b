"""What crosses a process boundary: the wire, and the message folder.

``wire``: every name on the network (URL paths, query flags, the cookie,
headers, the page markup the snippet looks for), as the servers, the
broadcaster and the snippet's WIRE table spell them.

``discovery``: the broadcaster is found with psutil (by its command line and
port) and told by a signal (SIGUSR1: reload, SIGUSR2: stylesheets). A signal
carries no data: what goes with it is left first in the broadcaster's
message folder (``messages``: a private folder per broadcaster run, found
from the broadcaster's open MARK file). Each file in it is a channel: one
module each, with a ``CHANNEL`` (``messages.Channel``: its file name,
format, writer, reader, and when it is removed), a ``write`` for the writer
process and a ``read`` for the reader (a ``Writer`` class where the writer
keeps state between writes). Every file is written atomically (a temporary
``.<name>.<pid>.<thread>.tmp`` renamed); all go with the folder when the
broadcaster stops.

====================== ===================== ========================== ==========================
file                   module                writer                     reader
====================== ===================== ========================== ==========================
broadcaster.pid        messages (MARK)       the broadcaster (its PID)  discovery (folder_of)
<time_ns>-<pid>.json   changes               the watcher, then a signal the broadcaster (consumes)
.reserve               reserve               the watcher (a full disk)  (renamed into a .json)
watcher.ids            watcher_ids           the watcher                the broadcaster
app-answering.windows  answering             the proxy                  the watcher
app-down.why           app_down              the watcher (--app)        the proxy
used-http.paths        used_paths            the HTTP server            the watcher
used-pages.paths       used_paths            the broadcaster            the watcher
used-app.paths         used_paths            a Django app's middleware  the watcher (--app)
used-app-dirs.paths    used_paths            a Django app's middleware  the watcher (--app)
====================== ===================== ========================== ==========================

- ``changes``: what changed (JSON: ``paths`` and the folder's ``root`` id,
  or a failed build's ``error``); the broadcaster reads and removes every
  one on each signal. None (a bare ``kill -USR1``): every page reloads.
- ``reserve``: spaces the watcher keeps so that a change message still
  fits on a full disk (written over in place, renamed into a ``.json``).
- ``watcher_ids``: the ids of the folders the watcher watches and its PID
  (JSON), so the pages know whether a watcher runs for them.
- ``answering``: when the app was computing answers (JSON windows, the
  proxy's view): a file the app writes meanwhile is not an edit.
- ``app_down``: why the app will not answer until a fix (text; its mtime:
  since when); the watcher removes it when the app may answer again.
- ``used_paths``: what open pages use (paths, one a line), for the watcher
  to look at first.
"""
