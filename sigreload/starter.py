"""sigreload-init: a starter rfile.yml for `r` (and a page, when there is none).

It never overwrites a file unless told to (``--force``).
"""

import os
import sys
from pathlib import Path

from sigreload import command_line

INIT_RFILE = """\
# Live reload for this folder with sigreload: run `r` here (rfilerunner's
# command runner, installed with sigreload; `rfile` in zsh, whose `r` is a
# built-in). Settings: sigreload.toml or [tool.sigreload] in pyproject.toml
# when there is one (`sigreload config` shows them), else this folder on
# 8000 and 5678 (or the next free ports); the environment wins over both:
# PORT, WS_PORT, LAN=1.
all: |
  # serve the root (the configuration file's, or this folder), watch it, live-reload its pages
  SIGRELOAD_UNDER_R=1 exec sigreload ${PORT:+--port "$PORT"} ${WS_PORT:+--ws-port "$WS_PORT"} ${LAN:+--lan}

reload: |
  # reload every connected page
  exec sigreload reload ${WS_PORT:+--ws-port "$WS_PORT"}

css: |
  # refresh stylesheets only
  exec sigreload css ${WS_PORT:+--ws-port "$WS_PORT"}
"""

INIT_PAGE = """\
<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>New page</title>
</head>
<body>
  <h1>It works</h1>
  <p>Edit index.html and save: this page reloads by itself.</p>
</body>
</html>
"""


def main(argv: list[str] | None = None) -> None:
    """Write rfile.yml here (and a starter index.html when the folder has no page), for `r`.
    A closed stdout ends it quietly (status 141)."""
    with command_line.quiet_closed_stdout():
        init(argv)


def init(argv: list[str] | None) -> None:
    """sigreload-init's work (:func:`main`)."""
    parser = command_line.parser("Write rfile.yml here (and a starter index.html when the folder has no page), "
                                 "for `r`.")
    parser.add_argument("--force", action="store_true", help="overwrite rfile.yml if it exists")
    parser.add_argument("--config", action="store_true",
                        help="write sigreload.toml instead: every setting, commented out at its default")
    args = parser.parse_args(argv)
    here = Path.cwd()
    if args.config:
        return write_config(here / "sigreload.toml", args.force)
    for name in ("rfile", "rfile.yaml"):
        if (here / name).exists() and not args.force:
            sys.exit(f"sigreload-init: {name} exists here; rfilerunner would not know which to use")
    if (here / "rfile.yml").exists() and not args.force:
        sys.exit("sigreload-init: rfile.yml exists; pass --force to overwrite it")
    root, url, found = served(here)
    (here / "rfile.yml").write_text(INIT_RFILE)
    print("sigreload-init: wrote rfile.yml" + (f" (settings from {found})" if found else ""))
    if root.is_dir() and not any(root.glob("*.html")):
        (root / "index.html").write_text(INIT_PAGE)
        print(f"sigreload-init: wrote {os.path.relpath(root / 'index.html')} (the folder had no page)")
    print(f"sigreload-init: run `r` here (`rfile` in zsh), then open {url}")


def served(here: Path) -> tuple[Path, str, Path | None]:
    """What `sigreload` will serve from ``here``: its root, its address and the
    configuration file that says so (None: the defaults); one line and exit 2
    for a file that cannot be used."""
    from sigreload import cli, config

    found = config.or_exit("sigreload-init", cli.make_parser(), here)
    values = found.values
    host = values.get("host", "127.0.0.1")
    host = "127.0.0.1" if values.get("lan") or host in ("", "0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    scheme = "https" if values.get("https") or values.get("cert") else "http"
    url = f"{scheme}://{host}:{values.get('port', 8000)}/"
    return Path(values.get("root") or found.folder or here), url, found.path


def write_config(path: Path, force: bool) -> None:
    """Write ``path``: sigreload's settings, each commented out at its default."""
    from sigreload import cli, config, config_text

    if path.exists() and not force:
        sys.exit(f"sigreload-init: {path.name} exists; pass --force to overwrite it")
    try:
        found = None if force else config.find(path.parent)
    except config.ConfigError as exc:
        sys.exit(f"sigreload-init: {exc}")
    if found:  # the new file of defaults would win over it, without a word
        sys.exit(f"sigreload-init: {found[0]} configures sigreload here; a {path.name} would shadow it "
                 f"(pass --force to write one anyway)")
    path.write_text(config_text.template(cli.make_parser()))
    print(f"sigreload-init: wrote {path.name} (`sigreload config` shows what is in effect)")


if __name__ == "__main__":
    main()
