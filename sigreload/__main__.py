"""``python -m sigreload``: the all-in-one command (``sigreload``)."""

from sigreload.cli import main

if __name__ == "__main__":
    main()
