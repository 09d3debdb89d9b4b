"""The configuration file as text: what ``sigreload config`` prints (every
setting in effect, with where it comes from) and what ``sigreload init
--config`` writes (every key commented out, each line honest about what
uncommenting it does). The file's rules are :mod:`sigreload.config`'s.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from typing import Any

from sigreload import editor
from sigreload.config import PATHS, Settings, keys, parse
from sigreload.options import command


def source(action: argparse.Action, found: Settings, on_command_line: set[str]) -> str:
    """Where a setting's value comes from: the default, the file, the command line (lists: both)."""
    sources = [str(found.path)] * (action.dest in found.values) + ["command line"] * (action.dest in on_command_line)
    if isinstance(action, argparse._AppendAction) and sources:
        return " + ".join(sources)
    default = "default: the file's folder" if action.dest == "root" and found.path else "default"
    return (sources or [default])[-1]


def toml(value: Any) -> str:
    """``value`` as a TOML value (strings quoted and escaped the JSON way, which TOML reads)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml(item) for item in value) + "]"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def line(key: str, value: Any, source: str) -> str:
    """One setting as a TOML line with its source as a comment (unset: the line commented out)."""
    setting = f"# {key} (not set)" if value is None else f"{key} = {toml(value)}"
    return f"{setting:<40} # {source}"


# What a key means in a file, where its flag's help says otherwise (the help speaks of the command line)
IN_A_FILE = {"root": "folder to serve and watch, from this file's folder (default: this file's folder)",
             "exec": "build with CMD after changes (run in this file's folder); pages reload after a good build"}
STRICT = {"port", "ws-port"}  # a port a file sets is kept strictly: a busy one is an error, never moved
UNSET = "off unless set: uncommenting turns it on"


def template(parser: argparse.ArgumentParser) -> str:
    """A sigreload.toml with every key commented out under its help, honest about what
    uncommenting it does: at its default, or (an option unset by default) an example
    value marked so; a port set here is strict (said)."""
    lines = ["# sigreload's settings for this folder and those below it (the command line wins).",
             "# Uncomment what you change; every line uncommented is the default, but where it says",
             "# otherwise. Paths start at this file's folder. `sigreload config` shows what is in effect.", ""]
    for key, action in keys(parser).items():
        default = None if action.default == argparse.SUPPRESS else action.default
        example = default if default is not None else action.const if action.const is not None else (
            f"{action.metavar or key.upper()}" if action.type in (None, str, command) else 0)  # uncommented: valid TOML
        help_text = IN_A_FILE.get(key) or " ".join((action.help or "").split()) % {"default": default}
        if key in STRICT:
            help_text += "; set here, a busy port is an error (never moved)"
        setting = f"# {key} = {toml(example)}"
        lines += [f"# {help_text}", setting if default is not None else f"{setting:<30} # {UNSET}", ""]
    return "\n".join(lines)


def show(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """sigreload config [OPTIONS]: every effective setting, with where it came from, as TOML;
    paths absolute (the command line's resolved against the current folder, as sigreload does)."""
    parser.prog = "sigreload config"
    args, found, on_command_line = parse("sigreload", parser, argv)
    if os.path.isdir("config"):
        print("sigreload config: ./config is a folder here; `sigreload ./config` serves it", file=sys.stderr)
    print(f"# sigreload's settings here; file: {found.path or 'none (sigreload.toml or pyproject.toml)'}")
    for key, action in keys(parser).items():
        value = getattr(args, action.dest)
        value = os.path.abspath(value) if key in PATHS and value is not None else value  # the command line's
        said = source(action, found, on_command_line)
        if key == "editor" and value is None and (words := editor.command(None)):  # r32n4: "(not set)" misled
            said = f"in effect: {shlex.join(words)} ($VISUAL or $EDITOR)"
        elif key == "editor" and value is None and (os.environ.get("VISUAL") or os.environ.get("EDITOR")):
            said = editor.why_none()  # EDITOR=vim: why it is not used (r32n5)
        print(line(key, value, said))
    if args.build:
        where = f"{args.exec_dir} (the file's folder)" if args.exec_dir else f"{os.path.abspath(args.root)} (ROOT)"
        print(f"# exec runs in {where}")
