"""A build's output folder, compared before and after a build: which files
it added, removed or changed (by content), so that only the pages that use
them reload and changed stylesheets swap (``watcher.Notifier.rebuild``)."""

from __future__ import annotations

import hashlib
import os
import re

OUTPUT_FILES_MAX = 20_000  # an output larger than this (files or bytes) is not compared: every page reloads
OUTPUT_BYTES_MAX = 512 << 20

HTML_COMMENT = re.compile(rb"<!--.*?-->", re.S)


def digest_of(path: str) -> bytes:
    """A file's content digest; for a page, its HTML comments aside (mkdocs stamps
    its build time into the home page: no change a reader sees)."""
    digest = hashlib.blake2b()
    with open(path, "rb") as f:
        if path.endswith((".html", ".htm")):
            digest.update(HTML_COMMENT.sub(b"", f.read()))
        else:
            while block := f.read(1 << 20):
                digest.update(block)
    return digest.digest()


class Output:
    """The build's output folder, compared before and after a build: what the
    build changed (its pages, its stylesheets) decides what the pages do.
    Files are compared by content (builders rewrite what did not change),
    pages without their HTML comments; a file's digest is kept while its
    size, mtime and inode stay."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.digests: dict[str, tuple[tuple[int, int, int], bytes]] = {}  # path -> (stat key, digest)

    def snapshot(self) -> dict[str, bytes] | None:
        """{path: digest} of every file, or None when it is too large to compare."""
        found: dict[str, bytes] = {}
        total = 0
        for top, _, files in os.walk(self.folder):
            for name in files:
                path = os.path.join(top, name)
                try:
                    st = os.stat(path)
                    key = (st.st_size, st.st_mtime_ns, st.st_ino)
                    known = self.digests.get(path)
                    if known is None or known[0] != key:
                        known = (key, digest_of(path))
                        self.digests[path] = known
                except OSError:
                    continue  # gone meanwhile
                found[path] = known[1]
                total += key[0]
                if len(found) > OUTPUT_FILES_MAX or total > OUTPUT_BYTES_MAX:
                    return None
        self.digests = {p: d for p, d in self.digests.items() if p in found}
        return found

    @staticmethod
    def changed(before: dict[str, bytes] | None, after: dict[str, bytes] | None) -> list[str] | None:
        """The files a build added, removed or changed; None when unknown."""
        if before is None or after is None:
            return None
        return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def ignored(root: str, output: str | None) -> tuple[str, ...]:
    """A path glob ignoring the build's output folder when it lies inside ROOT."""
    if not output:
        return ()
    rel = os.path.relpath(os.path.abspath(output), root).replace(os.sep, "/")
    return () if rel.startswith("..") else (rel,)
