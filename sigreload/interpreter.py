"""The command line that runs one of sigreload's modules in a new Python,
and how a command line is recognised as running one.

``python -m NAME`` puts the current folder first on sys.path before it
imports ``runpy``: a user's ``runpy.py``, ``email.py`` or ``json.py`` there
would run inside sigreload's processes. From Python 3.11 ``-P`` keeps the
folder off sys.path; on 3.10 a short ``-c`` bootstrap (``BOOTSTRAP``) drops it
(``-c`` imports nothing after putting it there) before importing ``runpy``,
then runs the module as ``-m`` would. Both stay in the user's folder, so
relative paths given on the command line keep their meaning.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

# What ``python -c BOOTSTRAP MODULE ARGS...`` runs: MODULE as ``-m MODULE ARGS...``
# would, with the current folder ('' first on sys.path under -c) off sys.path first.
BOOTSTRAP = ("import sys; sys.path[:1] = [p for p in sys.path[:1] if p]; "
             "import runpy; runpy._run_module_as_main(sys.argv.pop(1))")
PYTHON_FLAGS = ("-u", "-B", "-E", "-s", "-S", "-P", "-I", "-O", "-OO", "-q")
SAFE_PATH = sys.version_info >= (3, 11)  # -P: the current folder stays off sys.path


def module_argv(module: str, executable: str | None = None) -> list[str]:
    """The command line that runs ``module`` (e.g. ``sigreload.watcher``) by
    name in a new interpreter (``executable``, default this one): nothing in
    the current folder can take the place of a module it imports."""
    python = executable or sys.executable
    if SAFE_PATH:
        return [python, "-u", "-P", "-m", module]
    return [python, "-u", "-c", BOOTSTRAP, module]


def runs_module(cmdline: Sequence[str], module: str) -> bool:
    """True when ``cmdline`` is a Python running ``module`` as its main module
    (``python -m MODULE`` or the bootstrap of ``module_argv``): not a command
    line that merely names it (``python -c "import MODULE"``, ``vim MODULE``)."""
    args = list(cmdline)
    if not args or not os.path.basename(args[0]).startswith("python"):
        return False
    args = [a for a in args[1:] if a not in PYTHON_FLAGS]
    return args[:2] == ["-m", module] or args[:3] == ["-c", BOOTSTRAP, module]
