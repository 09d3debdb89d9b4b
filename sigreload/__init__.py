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
process does that in its ``main()``.
"""

__version__ = "0.1.0"
