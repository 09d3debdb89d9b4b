"""Every recipe in the README, as written, in a fresh folder, with the real
tools (Sphinx, mkdocs, rfilerunner, a stdlib server) and real Chromium: each
edit shows in the page after exactly one build and one load.

The commands are the README's own lines (found there word for word); only
free ports are added (``--port 0 --ws-port N``, or PORT= and WS_PORT= for `r`).
Each test prints how long its recipe took from a fresh folder to the first
live update.
"""

import os
import shlex
import shutil
import sys
import time

import pytest
from test_setup import COPY_IGNORE, missing

from conftest import ROOT, SCALE, free_port, open_page, write


def readme(prefix):
    """The README's command line (a 4-space indented one) that starts with ``prefix``."""
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("    " + prefix):
            return line.strip().split("  #")[0].strip()
    raise AssertionError(f"the README has no line starting with {prefix!r}")


def tool(name):
    return shutil.which(name) or missing(f"{name} (pip install -e '.[test]')")


class Recipe:
    """One recipe run: its process, its page, and the counts that must stay at one."""

    def __init__(self, procs, page, capsys, name):
        self.procs, self.page, self.capsys, self.name = procs, page, capsys, name
        self.began = time.monotonic()  # the folder is fresh: the clock starts here
        self.loads, self.console = 0, []
        page.on("load", lambda _: setattr(self, "loads", self.loads + 1))
        page.on("console", lambda msg: self.console.append(msg.text))

    def start(self, argv, cwd, env=None, url=None):
        self.proc = self.procs(argv, cwd=cwd, env={**os.environ, **(env or {})})
        found = self.proc.wait_seen(r"at (http://\S+/)", 120) if url is None else None
        self.proc.wait_seen("watching", 120)
        self.proc.wait_seen("ready on", 120)
        open_page(self.page, url or found.group(1))
        return self

    def edit(self, path, text, shows, build=True):
        """Write ``path``; the page shows ``shows`` after one build and one load, and nothing follows."""
        before, builds = self.loads, self.builds()
        write(path, text)
        self.page.wait_for_function(f"document.body && document.body.innerText.includes({shows!r})",
                                    timeout=60_000 * SCALE)
        if not hasattr(self, "first"):
            self.first = time.monotonic() - self.began
            with self.capsys.disabled():
                print(f"\n  recipe {self.name}: {self.first:.1f}s from a fresh folder to the first live update")
        self.page.wait_for_timeout(1500)  # what must not happen: a second build or load
        assert self.loads - before == 1
        assert not [line for line in self.console if "watches another folder" in line or "no watcher" in line]
        assert self.builds() - builds == (1 if build else 0), self.proc.output()

    def builds(self):
        return sum("changed: building" in line for line in self.proc.seen)


@pytest.fixture
def recipe(procs, page, capsys):
    return lambda name: Recipe(procs, page, capsys, name)


def ports(command):
    return shlex.split(command) + ["--port", "0", "--ws-port", str(free_port())]


def test_your_static_site(recipe, tmp_path):
    run = recipe("your static site")
    site = tmp_path / "my-site"
    site.mkdir()
    write(site / "index.html", "<!doctype html><title>mine</title><p>first</p>")
    run.start(ports(readme("sigreload ")), cwd=site)
    run.edit(site / "index.html", "<!doctype html><title>mine</title><p>second</p>", "second", build=False)


def test_sigreload_init_then_r(recipe, tmp_path):
    rfile = tool("rfile")
    run = recipe("sigreload init, then rfile")
    site = tmp_path / "new-site"
    site.mkdir()
    assert "sigreload init" in (ROOT / "README.md").read_text()
    run.procs(["sigreload", "init"], cwd=site).exit_code(30)
    run.start([rfile], cwd=site, env={"PORT": "0", "WS_PORT": str(free_port())})
    page = site / "index.html"
    run.edit(page, page.read_text().replace("</body>", "<p>init edited</p></body>"), "init edited", build=False)


def test_the_demo_with_r(recipe, tmp_path):
    rfile = tool("rfile")
    run = recipe("the demo (rfile)")
    repo = tmp_path / "sigreload"
    shutil.copytree(ROOT, repo, ignore=COPY_IGNORE)
    assert readme("python3 -m venv").endswith("&& rfile")
    run.start([rfile], cwd=repo, env={"PORT": "0", "WS_PORT": str(free_port())})
    page = repo / "snippet" / "index.html"
    run.edit(page, page.read_text().replace("</body>", "<p>demo edited</p></body>"), "demo edited", build=False)


def test_your_own_http_server(recipe, procs, tmp_path):
    run = recipe("your own HTTP server (--no-http)")
    out = tmp_path / "path" / "to" / "output"
    out.mkdir(parents=True)
    ws = free_port()
    tag = readme("<script src=").replace("5678", str(ws))
    write(out / "index.html", f"<!doctype html><title>own</title><p>first</p>{tag}")
    http = free_port()
    procs([sys.executable, "-m", "http.server", str(http), "--bind", "127.0.0.1"], cwd=out)
    command = shlex.split(readme("sigreload path/to/output --no-http")) + ["--ws-port", str(ws)]
    run.start(command, cwd=tmp_path, url=f"http://127.0.0.1:{http}/")
    run.edit(out / "index.html", f"<!doctype html><title>own</title><p>second</p>{tag}", "second", build=False)


@pytest.mark.parametrize("layout", ["docs/_build/html", "docs/build/html"])
def test_sphinx(recipe, procs, tmp_path, layout):
    quickstart = tool("sphinx-quickstart")
    sep = layout == "docs/build/html"
    run = recipe(f"Sphinx{' --sep' if sep else ''}")
    make = procs([quickstart, "-q", "-p", "Demo", "-a", "Me", *(["--sep"] if sep else []), "docs"], cwd=tmp_path)
    assert make.exit_code(60) == 0, make.output()
    source = tmp_path / "docs" / ("source" if sep else "") / "index.rst"
    run.start(ports(readme(f'sigreload docs --exec "make html" --output {layout}')), cwd=tmp_path)
    for n in (1, 2):
        run.edit(source, source.read_text() + f"\nLive edit number {n}.\n", f"Live edit number {n}.")


def test_mkdocs(recipe, procs, tmp_path):
    mkdocs = tool("mkdocs")
    run = recipe("mkdocs")
    assert procs([mkdocs, "new", "."], cwd=tmp_path).exit_code(60) == 0
    run.start(ports(readme('sigreload . --exec "mkdocs build" --output site')), cwd=tmp_path)
    page = tmp_path / "docs" / "index.md"
    for n in (1, 2):
        run.edit(page, page.read_text() + f"\nLive edit number {n}.\n", f"Live edit number {n}.")



def test_after_a_mkdocs_build_what_it_changed_decides(procs, tmp_path, page):
    """The build rewrites every page; what differs in its output decides: a
    stylesheet swaps in place, a changed page reloads, an unchanged one stays."""
    mkdocs = tool("mkdocs")
    write(tmp_path / "mkdocs.yml", "site_name: Kept\nextra_css: [extra.css]\nnav: [index.md, other.md]\n")
    (tmp_path / "docs").mkdir()
    write(tmp_path / "docs" / "index.md", "# Home\n\nThe home page.\n")
    write(tmp_path / "docs" / "other.md", "# Other\n\nFirst text.\n")
    write(tmp_path / "docs" / "extra.css", "h1 { color: rgb(0, 0, 255); }\n")
    main = procs([sys.executable, "-m", "sigreload", ".", "--exec", f"{mkdocs} build", "--output", "site",
                  "--port", "0", "--ws-port", free_port()], cwd=tmp_path)
    url = main.wait_seen(r"at (http://\S+/)", 120).group(1)
    main.wait_seen("watching", 120)
    other = page.context.new_page()
    open_page(page, url)
    open_page(other, url + "other/")
    for tab in (page, other):
        tab.evaluate("window.marker = 'kept'")
    write(tmp_path / "docs" / "extra.css", "h1 { color: rgb(255, 0, 0); }\n")
    for tab in (page, other):
        tab.wait_for_function("getComputedStyle(document.querySelector('h1')).color === 'rgb(255, 0, 0)'",
                              timeout=60_000 * SCALE)
        assert tab.evaluate("window.marker") == "kept"  # swapped, not reloaded
    with other.expect_event("load", timeout=60_000 * SCALE):
        write(tmp_path / "docs" / "other.md", "# Other\n\nSecond text.\n")
    assert "Second text." in other.content()
    main.wait_seen(r"other/index\.html.* sent to broadcaster")
    page.wait_for_timeout(500)  # what must not happen: the home page reloading
    assert page.evaluate("window.marker") == "kept"
