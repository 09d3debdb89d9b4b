"""Watching files: LiveServer.jl's ``WatchedFile`` and ``SimpleWatcher``,
over a tree of stat signatures, paced on a CPU budget, with the kernel's
change notifications as hints."""

from sigreload.watching.file_watching import SimpleWatcher
from sigreload.watching.signatures import WatchedFile

__all__ = ["SimpleWatcher", "WatchedFile"]
