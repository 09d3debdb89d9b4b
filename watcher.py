"""The watcher, runnable from a clone: ``python watcher.py --help``.

The code is ``sigreload.watcher`` (installed: ``sigreload-watch``).
This file is what `r` runs; it is never imported and not in the wheel.
"""

from sigreload.watcher import main

if __name__ == "__main__":
    main()
