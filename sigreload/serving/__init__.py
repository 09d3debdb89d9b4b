"""Serving pages with the snippet: the file server, the proxy in front of an
app server, what both share (``common``) and the insertion itself (``injection``)."""
