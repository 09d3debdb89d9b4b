"""The configuration file: ``sigreload.toml`` (top-level keys) or the
``[tool.sigreload]`` table of ``pyproject.toml``, found from the current
folder upward, as ruff and black find theirs.

Keys are the all-in-one command's long option names without the dashes
(``port = 8001``, ``ws-port = 5690``, ``ignore = ["drafts", "*.tmp"]``,
``root = "site"``): the parser is the declaration, so every option it has is
a key, with the type its action takes. The command line wins over the file;
a repeatable option (``ignore``...) adds the command line's values to the file's.
What a file says is relative to its folder (ruff's and black's rule): ``root``
defaults to it; ``root``, ``output``, ``cert``, ``key`` and ``ignore`` path globs
start there; its ``exec`` runs there (the command line's: here, and in ROOT).
Nothing here prints or exits but :func:`or_exit`'s one line (exit 2); the file as text
(`sigreload config`, `sigreload init --config`) is :mod:`sigreload.config_text`.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sigreload.config_files import (
    ConfigError as ConfigError,  # re-exported: the error every reader catches
    configures,
    read,
)
from sigreload.options import LEAST_SECONDS, MOST_SECONDS, port, seconds

NAMES = ("sigreload.toml", "pyproject.toml")  # in one folder, the first wins
PATHS = {"root", "output", "cert", "key"}  # keys whose values are paths: relative to the file


@dataclass
class Settings:
    """What the file gave: its path (None: no file) and its values, by dest."""

    path: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> str | None:
        """The file's folder: what its relative paths start from, where its build runs."""
        return None if self.path is None else str(self.path.parent.resolve())


def find(start: Path, skipped: list[str] | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The nearest file from ``start`` upward that configures sigreload, and its table.

    A ``pyproject.toml`` without ``[tool.sigreload]`` does not count: the search goes
    on. So does a file that is not this user's, or that anyone may write (a shared
    folder above, /tmp): it is never read, and why goes into ``skipped``.
    """
    for folder in (start, *start.parents):
        for name in NAMES:
            path = folder / name
            if not path.is_file():
                continue
            table, why = read(path)
            if why:
                if skipped is not None and configures(path):  # a pyproject of no sigreload's: no word
                    skipped.append(f"{path}: {why}: skipped")
                continue
            if name == "pyproject.toml":
                tool = table.get("tool", {})
                ours = tool.get("sigreload") if isinstance(tool, dict) else None  # `tool = 5`: not ours
                if ours is None:
                    continue
                if not isinstance(ours, dict):
                    raise ConfigError(f"{path}: [tool.sigreload] must be a table")
                table = ours
            return path, table
    return None














def keys(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every key a file may set: the long option names without dashes (and the positionals)."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction) or action.help == argparse.SUPPRESS:
            continue
        longs = [opt for opt in action.option_strings if opt.startswith("--")]
        found[longs[0][2:] if longs else action.dest] = action
    return found


def settings(parser: argparse.ArgumentParser, start: Path) -> Settings:
    """The nearest file's values, checked against ``parser``, by dest (paths made absolute; ``~``
    expanded, as a shell does for a flag)."""
    skipped: list[str] = []
    found = find(start, skipped)
    for line in skipped:
        print(f"sigreload: {line}", file=sys.stderr)
    if found is None:
        return Settings()
    path, table = found
    known = keys(parser)
    values = {}
    for key, value in table.items():
        action = known.get(key)
        if key == "tool" and path.name == "sigreload.toml":  # [tool.sigreload] pasted from a pyproject.toml
            raise ConfigError(f"{path}: [tool.sigreload] belongs in pyproject.toml; sigreload.toml takes "
                              f"top-level keys (port = 8001, no table)")
        if action is None:
            near = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (keys: {', '.join(sorted(known))})"
            raise ConfigError(f"{path}: unknown key {key!r}{hint}")
        value = checked(key, action, value, path)
        values[action.dest] = str((path.parent / os.path.expanduser(value)).resolve()) if key in PATHS else value
        if key == "ignore":
            values[action.dest] = [anchored(glob, path.parent.resolve()) for glob in value]
    return Settings(path, values)


def anchored(glob: str, folder: Path) -> str:
    """A file's ``ignore`` path glob made absolute under its ``folder`` (for ``rooted``); a name
    glob, or one starting with a wildcard (``*/drafts``: any depth), as it is. As in .gitignore, a
    ``/`` at the start or in the middle anchors (``/d1``, ``a/b``, ``./d2``), a trailing one alone
    does not: ``d1/`` is a folder of that name anywhere, as ``--ignore d1/`` is."""
    path = glob.strip("/")
    if "/" not in glob.rstrip("/") or any(char in path.split("/")[0] for char in "*?["):
        return glob
    return os.path.normpath(folder / path)


def rooted(glob: str, root: str) -> str:
    """An ``ignore`` glob as the watcher matches it: an absolute one relative to ``root``."""
    if not os.path.isabs(glob):
        return glob
    path = os.path.relpath(glob, os.path.abspath(root)).replace(os.sep, "/")
    return path if "/" in path else f"/{path}"  # still anchored: a name alone matches at any depth


def parse(prog: str, parser: argparse.ArgumentParser, argv: list[str],
          full: argparse.ArgumentParser | None = None) -> tuple[argparse.Namespace, Settings, set[str]]:
    """``argv`` parsed by ``parser`` over the nearest file's values (checked against ``full``,
    sigreload's parser, for a subcommand's: one file for all); the settings, the dests the command
    line gives. Resolved by the file's rule: ignore globs relative to ROOT, ``exec_dir`` for its build."""
    found = or_exit(prog, full or parser, here(prog))
    own = {action.dest for action in parser._actions}
    root = {"root": found.folder} if found.folder and "root" in own else {}  # ROOT's default: the file's folder
    parser.set_defaults(**{**root, **{dest: value for dest, value in found.values.items() if dest in own}})
    args = parser.parse_args(argv)
    on_command_line = given(parser, argv)
    if "ignore" in own:  # the file's globs (first: append adds to its list) made absolute by anchored()
        from_file, cwd = len(found.values.get("ignore", [])), Path.cwd()
        args.ignore = [rooted(glob, args.root) for glob in args.ignore[:from_file]] + [
            rooted(anchored(glob, cwd), args.root) if glob.startswith(("./", "../")) else glob  # from here (r32n5)
            for glob in args.ignore[from_file:]]
    if "https" in own and "cert" in own:  # a certificate serves HTTPS: said so, and --no-https undoes both (r32n5)
        if "https" in on_command_line and not args.https:
            args.cert = args.key = None
        elif args.cert:
            args.https = True
    if "build" in own:
        from_file = "build" in found.values and "build" not in on_command_line
        args.exec_dir = found.folder if from_file and args.build else None  # None: ROOT
    return args, found, on_command_line


def checked(key: str, action: argparse.Action, value: Any, path: Path) -> Any:
    """``value`` if it has the type ``action`` takes, else a ConfigError naming the key and the type."""
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str) and "\0" in item:  # a path with one is no path (and a traceback in os.path)
            raise ConfigError(f"{path}: {key} holds a NUL character")
        if item == "":  # host = "" listened on every address; exec = "" was said as missing (r32n5)
            raise ConfigError(f"{path}: {key} takes a value that is not empty")
    if isinstance(action, argparse._StoreTrueAction | argparse.BooleanOptionalAction):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(action, argparse._AppendAction):
        if isinstance(value, str):
            value = [value]
        ok, kind = isinstance(value, list) and all(isinstance(v, str) for v in value), "a list of strings"
    elif action.type in (int, float, port, seconds):
        kind = {int: "a whole number", float: "a number", port: "a port (0 to 65535)",
                seconds: f"a number of seconds from {LEAST_SECONDS} to {MOST_SECONDS:.0f}"}[action.type]
        ok = isinstance(value, int | float if action.type in (float, seconds) else int) and not isinstance(value, bool)
        ok = ok and (action.type is not port or 0 <= value <= 65535) and (action.type is not seconds
                                                                          or LEAST_SECONDS <= value <= MOST_SECONDS)
        if action.nargs == "?" and isinstance(value, bool):  # true: --livereload alone, its default port
            ok, value = True, action.const if value else None
        elif action.nargs == "?":
            kind += " (or true: the default; false: off)"
    else:
        ok, kind = isinstance(value, str), "a string"
    if not ok:
        raise ConfigError(f"{path}: {key} takes {kind}, not {value!r}")
    if callable(action.type) and action.type not in (int, float, str, port, seconds):  # --editor's own check
        try:
            action.type(value)
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"{path}: {key}: {exc}") from None
    return value


def given(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The dests that ``argv`` sets itself (parsed again with every default suppressed)."""
    defaults, file_values = [(action, action.default) for action in parser._actions], parser._defaults
    try:
        parser._defaults = {}
        for action, _ in defaults:
            action.default = argparse.SUPPRESS
        return set(vars(parser.parse_args(argv)))
    finally:
        parser._defaults = file_values
        for action, default in defaults:
            action.default = default


def edited(paths: list[str]) -> list[str]:
    """The configuration file in effect here (what a sigreload started in this
    folder reads) among the changed ``paths``: a sub-folder's sigreload.toml, or
    a pyproject.toml of no sigreload's, is not said to need a restart (r32a5)."""
    names = [p for p in paths if os.path.basename(p) in NAMES]
    try:
        found = find(Path.cwd()) if names else None
    except (ConfigError, OSError):
        return []
    return [p for p in names if found and os.path.realpath(p) == os.path.realpath(found[0])]


def here(prog: str) -> Path:
    """The current folder, or one line and exit 2 where it was deleted (a build that
    empties its output folder while a shell is in it: a traceback per command, r32n5)."""
    try:
        return Path.cwd()
    except FileNotFoundError:
        print(f"{prog}: the current folder no longer exists (deleted, or made anew by a build): "
              f"cd into it again", file=sys.stderr)
        raise SystemExit(2) from None


def or_exit(prog: str, parser: argparse.ArgumentParser, start: Path) -> Settings:
    """:func:`settings`, or one line and exit 2."""
    try:
        return settings(parser, start)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
