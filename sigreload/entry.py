"""The ``sigreload`` console script: Ctrl-C from its first instruction exits
quietly (status 130). The script imports this small module, which holds
SIGINT before the heavy imports begin: a Ctrl-C while ``sigreload.cli`` and
its imports load would otherwise print a KeyboardInterrupt traceback."""

from __future__ import annotations

import signal
from typing import Any


def interrupted(signum: int, frame: Any) -> None:
    raise SystemExit(130)


def main() -> None:
    """``sigreload.cli.main``, with Ctrl-C quiet while it loads."""
    signal.signal(signal.SIGINT, interrupted)
    from sigreload.cli import main as run

    run()
