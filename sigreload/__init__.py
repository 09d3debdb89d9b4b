"""sigreload: live reload for web pages, the Unix way.

A change travels through the package in this order:

- ``watching``: a file's signature, the tree, the pacing and the kernel's
  hints; ``SimpleWatcher`` (after LiveServer.jl) looks and calls back;
- ``watcher``: the watcher process; it runs a build first (``building``) or
  waits for your app server's restart (``app_server``);
- ``contract``: what the watcher leaves for the broadcaster (``messages``)
  and how it finds and signals it (``discovery``);
- ``broadcaster``: the broadcaster process, ``broadcasting`` its sockets;
- ``serving``: the pages' side: the file server, the proxy, the snippet
  inserted into them; ``http_server`` is their process; ``snippet/`` the
  page's script (``reload.js``).

``cli`` starts the three processes together (``process_life``);
``command_line`` is what every command shares.

Importing any module here starts nothing and changes no process state: each
process does that in its ``main()``. One exception, for sigreload's own
processes (``python -m sigreload...``): the current folder leaves sys.path
before anything else is imported, so a user's ``email.py`` or ``argparse.py``
there never runs inside them (``-P`` does that from Python 3.11, for the
children; this, on 3.10 too, and for ``python -m sigreload`` typed by hand).
"""

import os
import sys

__version__ = "0.1.0"


def _run_module() -> str:
    """The module this interpreter was started to run (``-m NAME``), or ""."""
    args = list(getattr(sys, "orig_argv", ()))[1:]
    while args and args[0].startswith("-") and not args[0].startswith(("-m", "-c")):
        args = args[2:] if args[0] in ("-X", "-W") else args[1:]
    if not args or not args[0].startswith("-m"):
        return ""
    return args[0][2:] or (args[1] if len(args) > 1 else "")


def _leave_the_current_folder() -> None:
    """Take the current folder off sys.path when it is there only because this
    process runs ``python -m sigreload...`` (a clone of sigreload run where it
    lies keeps it: that is where sigreload comes from)."""
    if not sys.path or getattr(sys.flags, "safe_path", False) or _run_module().partition(".")[0] != __name__:
        return
    try:
        here = os.path.realpath(os.curdir)
    except FileNotFoundError:  # deleted: nothing to import from it (the command says so in one line)
        return
    first = os.path.realpath(sys.path[0] or os.curdir)
    if first == here and first != os.path.dirname(os.path.dirname(os.path.realpath(__file__))):
        del sys.path[0]


_leave_the_current_folder()
