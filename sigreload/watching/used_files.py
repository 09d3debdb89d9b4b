"""What open pages use, as files under ROOT: the watcher looks at these first.

Our HTTP server leaves the files it served, and the broadcaster the URL
paths that the snippets said their pages loaded, in the broadcaster's
message folder (the watcher's ``Locator`` knows it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sigreload.contract import used_paths
from sigreload.contract.discovery import Locator


class UsedFiles:
    """Called every tick: the files open pages use, or None while nothing
    changed (a glob and a stat)."""

    def __init__(self, locator: Locator, root: str) -> None:
        self.locator, self.root = locator, root
        self.folder: Path | None = None
        self.stamp: list[Any] | None = None

    def __call__(self) -> list[str] | None:
        folder = self.locator.folder()
        if folder != self.folder:
            self.folder, self.stamp = folder, None
        if used_paths.stamp(self.folder) == self.stamp:
            return None
        self.stamp, lists = used_paths.stamp(self.folder), used_paths.read(self.folder)
        files = [p for p in lists.get("http", ()) if p.startswith(self.root + os.sep)]
        pages = (self.file_at(url) for url in lists.get("pages", ()))
        return list(dict.fromkeys(files + [f for f in pages if f]))

    def file_at(self, url: str) -> str | None:
        """The file under ROOT that URL path ``url`` names (an index for a folder), or None."""
        path = unquote(url.split("?")[0])
        path += "index.html" if path.endswith("/") else ""
        path = os.path.normpath(os.path.join(self.root, path.lstrip("/")))
        return path if path.startswith(self.root + os.sep) else None
