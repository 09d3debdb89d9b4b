"""Which Django templates the pages rendered, for the watcher: an edit of a
template that no page rendered changes no page, so nothing reloads (at
once, where the proxy waits for Django's reloader to look: up to a second).

The middleware knows from inside the app: Django's ``Template._render``
(every template, ``{% extends %}`` parents and ``{% include %}``-d ones
too) is wrapped once, as django-debug-toolbar's templates panel does, and
notes each template file rendered while a page (a navigation) is answered.
Two lists go into the broadcaster's message folder (``used_paths.RENDERED``):
``used-app.paths``, the files rendered (newest last, bounded), and
``used-app-dirs.paths``, Django's template folders (what
``django.template.autoreload`` watches). ``unrendered`` (the watcher's
side) reads them.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sigreload.contract import used_paths

RENDERED, DIRS = used_paths.RENDERED  # the two lists' sources
current: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("sigreload_rendered", default=None)


def install() -> None:
    """Wrap Django's Template._render to note each template file rendered
    while ``current`` holds a set (idempotent; a wrapper added later, the
    debug toolbar's, calls this one)."""
    from django.template.base import Template

    original = Template._render
    if getattr(original, "sigreload", False):
        return

    def _render(self: Any, context: Any) -> Any:
        seen = current.get()
        name = getattr(self.origin, "name", None)
        if seen is not None and isinstance(name, str) and os.path.isabs(name):
            seen.add(name)
        return original(self, context)

    _render.sigreload = True  # type: ignore[attr-defined]
    Template._render = _render


class Recorder:
    """The lists of one app process, written into the folder ``where()`` names."""

    def __init__(self, where: Callable[[], Path | None]) -> None:
        from django.template.autoreload import get_template_directories

        install()
        self.rendered = used_paths.Writer(where, RENDERED)
        self.dirs = used_paths.Writer(where, DIRS)
        self.dirs.replace(str(d) for d in sorted(get_template_directories()))
        self.watched = tuple(os.path.join(d, "") for d in self.dirs.paths)

    def page(self, seen: set[str]) -> None:
        """A page was answered: ``seen``, the template files it rendered, those
        in the template folders Django watches (the project's, not Django's
        own form widgets: 19 of a 7-field form's 20)."""
        self.dirs.replace(self.dirs.paths)  # written anew for a new broadcaster (restarted while the app ran)
        for name in sorted(seen):
            if name.startswith(self.watched):
                self.rendered.add(name)


def unrendered(folder: Path | None, paths: list[str]) -> list[str]:
    """Those of ``paths`` that are files in Django's template folders that no
    page rendered, when the middleware said what pages rendered (else none)."""
    rendered = used_paths.listed(folder, RENDERED) if folder else None
    dirs = used_paths.listed(folder, DIRS) if folder else None
    if not rendered or not dirs:
        return []
    seen = {os.path.realpath(p) for p in rendered}
    roots = [os.path.join(os.path.realpath(d), "") for d in dirs]
    return [p for p in paths if os.path.realpath(p).startswith(tuple(roots)) and os.path.realpath(p) not in seen]
