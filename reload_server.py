"""The broadcaster, runnable from a clone: ``python reload_server.py --help``.

The code is ``sigreload.broadcaster`` (installed: ``sigreload-broadcast``).
This file is what `r` runs; it is never imported and not in the wheel.
"""

from sigreload.broadcaster import main

if __name__ == "__main__":
    main()
