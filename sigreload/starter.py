"""sigreload-init: a starter rfile.yml for `r` (and a page, when there is none).

It never overwrites a file unless told to (``--force``).
"""

import errno
import os
import sys
from pathlib import Path

from sigreload import command_line, config, config_files

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
    here = config.here("sigreload-init")
    if why := config_files.swappable(here):  # `r` runs rfile.yml: another user could put theirs in its place
        sys.exit(f"sigreload-init: {why}: init writes nothing here (use a folder of your own)")
    if args.config:
        return write_config(here / "sigreload.toml", args.force)
    for name in ("rfile", "rfile.yaml"):
        if (here / name).exists() and not args.force:
            sys.exit(f"sigreload-init: {name} exists here; rfilerunner would not know which to use")
    root, url, found, pages = served(here)
    written(here / "rfile.yml", INIT_RFILE, args.force)
    print("sigreload-init: wrote rfile.yml" + (f" (settings from {found})" if found else ""))
    if pages and not root.is_dir():
        print(f"sigreload-init: {root} (the root) does not exist yet: `r` serves it once it does")
    elif pages and not any(root.glob("*.htm")) and not any(root.glob("*.html")):
        written(root / "index.html", INIT_PAGE, False)
        print(f"sigreload-init: wrote {os.path.relpath(root / 'index.html')} (the folder had no page)")
    elif pages is None:  # its page would say it reloads by itself, and not (r32n5)
        print("sigreload-init: no-inject is set: no starter page (your pages include the snippet themselves)")
    print(f"sigreload-init: run `r` here (`rfile` in zsh), then open {url}")


def served(here: Path) -> tuple[Path, str, Path | None, bool | None]:
    """What `sigreload` will serve from ``here``: its root, where to open it, the
    configuration file that says so (None: the defaults), and whether the pages are
    the root's files (not an app's, behind --proxy or --no-http, nor a build's
    --output; None: they are, without the snippet, no-inject); one line and exit 2
    for a file that cannot be used."""
    from sigreload import cli

    found = config.or_exit("sigreload-init", cli.make_parser(), here)
    values = found.values
    host = values.get("host", "127.0.0.1")
    host = "127.0.0.1" if values.get("lan") or host in ("", "0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    scheme = "https" if values.get("https") or values.get("cert") else "http"
    port = values.get("port", 8000)
    url = "the address it prints (port 0: any free one)" if port == 0 else f"{scheme}://{host}:{port}/"
    if values.get("no_http"):
        url = f"your app ({values.get('app') or 'no-http: sigreload serves no pages'})"
    pages: bool | None = not (values.get("proxy") or values.get("no_http") or values.get("build"))
    pages = None if pages and values.get("no_inject") else pages
    return Path(values.get("root") or found.folder or here), url, found.path, pages


def written(path: Path, text: str, force: bool) -> None:
    """``text`` written to ``path`` (new, or replaced with ``force``), never through a
    link (another user's, in a shared folder, would point at ~/.profile); one line
    and exit 1 where it cannot be."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (0 if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o644)
        if os.fstat(fd).st_nlink > 1:  # another name of it may be ~/.profile: nothing written (r32a5)
            os.close(fd)
            sys.exit(f"sigreload-init: {path}: it has other names (hard links): not written (remove it first)")
        os.ftruncate(fd, 0)
    except FileExistsError:
        sys.exit(f"sigreload-init: {path.name} exists; pass --force to overwrite it")
    except OSError as exc:
        why = "a link: not written through (remove it first)" if exc.errno == errno.ELOOP else exc.strerror
        sys.exit(f"sigreload-init: {path}: {why}")
    with os.fdopen(fd, "w") as file:
        file.write(text)


def write_config(path: Path, force: bool) -> None:
    """Write ``path``: sigreload's settings, each commented out at its default."""
    from sigreload import cli, config_text

    if os.path.lexists(path) and not force:
        sys.exit(f"sigreload-init: {path.name} exists; pass --force to overwrite it")
    try:
        found = None if force else config.find(path.parent)
    except config.ConfigError as exc:
        sys.exit(f"sigreload-init: {exc}")
    if found:  # the new file of defaults would win over it, without a word
        sys.exit(f"sigreload-init: {found[0]} configures sigreload here; a {path.name} would shadow it "
                 f"(pass --force to write one anyway)")
    written(path, config_text.template(cli.make_parser()), force)
    print(f"sigreload-init: wrote {path.name} (`sigreload config` shows what is in effect)")


if __name__ == "__main__":
    main()
