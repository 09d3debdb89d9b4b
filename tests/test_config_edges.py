"""The configuration file's edges a newcomer met (the reviewer r32n3): a closed
stdout, a file that would shadow another, the written file's comments, ignore
globs with a trailing slash, resolved paths, the watcher's own output file,
and one-line messages."""

import os
import subprocess
import sys

import pytest

from conftest import SCALE, client, free_port, module, recv, until, write


def run(cwd, *args, **kwargs):
    """`sigreload ARGS` run to completion in ``cwd``."""
    return subprocess.run(module("sigreload") + [str(a) for a in args], capture_output=True, text=True,
                          cwd=cwd, stdin=subprocess.DEVNULL, timeout=30 * SCALE, **kwargs)


@pytest.mark.parametrize("command", [
    module("sigreload") + ["config"],
    module("sigreload") + ["init", "--config"],
    [sys.executable, "-c", "from sigreload.starter import main; main()", "--config"],  # sigreload-init
])
def test_a_closed_stdout_ends_quietly(tmp_path, command):
    """`sigreload config | head -1` printed a BrokenPipeError traceback (3 runs of 10):
    a reader gone before the printing is the same, every time."""
    read, written = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(command, stdout=written, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                              stdin=subprocess.DEVNULL, timeout=30 * SCALE)
    finally:
        os.close(written)
    assert done.returncode == 141 and done.stderr == "", done


@pytest.mark.parametrize("where", ["pyproject here", "sigreload.toml above"])
def test_init_config_refuses_to_shadow_a_file_unless_forced(tmp_path, where):
    """It wrote a sigreload.toml of defaults that then won over the project's settings, with no word."""
    here = tmp_path / "below" if where.endswith("above") else tmp_path
    here.mkdir(exist_ok=True)
    existing = tmp_path / ("sigreload.toml" if where.endswith("above") else "pyproject.toml")
    write(existing, ("" if existing.name == "sigreload.toml" else "[tool.sigreload]\n") + "port = 8106\n")
    refused = run(here, "init", "--config")
    assert refused.returncode == 1 and not (here / "sigreload.toml").exists(), refused
    assert refused.stderr == f"sigreload-init: {existing} configures sigreload here; a sigreload.toml would " \
                             f"shadow it (pass --force to write one anyway)\n"
    forced = run(here, "init", "--config", "--force")
    assert forced.returncode == 0 and (here / "sigreload.toml").exists(), forced


def shown(cwd, *args, **kwargs):
    """`sigreload config ARGS` in ``cwd``: {key: value text} (None: not set)."""
    done = run(cwd, "config", *args, **kwargs)
    assert done.returncode == 0, done.stderr
    found = {}
    for line in done.stdout.splitlines()[1:]:
        setting = line.split(" # ", 1)[0].strip()
        if not line.startswith("# exec runs in "):
            key, _, value = setting.lstrip("# ").partition(" = ")
            found[key.split(" ")[0]] = None if "(not set)" in setting else value
    return found


def test_init_configs_every_line_uncommented_is_the_default_but_where_it_says(tmp_path):
    """Uncommenting `livereload = 35729` turned LiveReload on, silently; the exec line said
    "(run in ROOT)" though a file's build runs in the file's folder."""
    defaults = shown(tmp_path)
    assert run(tmp_path, "init", "--config").returncode == 0
    text = (tmp_path / "sigreload.toml").read_text()
    assert "run in ROOT" not in text and "(run in this file's folder)" in text
    marked = {line[2:].split(" = ")[0] for line in text.splitlines() if line.endswith("# off unless set: "
                                                                                      "uncommenting turns it on")}
    assert {"livereload", "proxy", "exec", "output", "app", "cert", "key", "editor"} <= marked
    rows = text.splitlines()
    strict = {rows[at + 1].split(" = ")[0][2:] for at, row in enumerate(rows) if "set here, a busy port is an" in row}
    assert strict == {"port", "ws-port"}
    lines = [line[2:] if line.startswith("# ") and " = " in line else line for line in text.splitlines()]
    write(tmp_path / "sigreload.toml", "\n".join(lines) + "\n")
    everything = shown(tmp_path)
    changed = {key for key in defaults if everything[key] != defaults[key] and key != "root"}
    assert changed == marked | {"https"}, (changed, marked)  # https: the certificate uncommented turns it on
    assert everything["root"] == f'"{tmp_path}"'


def test_a_trailing_slash_does_not_anchor_a_files_ignore_glob(tmp_path):
    """`"d1/"` (gitignore style: a folder anywhere) was rebased to `../../d1` from a folder below
    the file and ignored nothing; `./d2` is anchored at the file's folder (README)."""
    from sigreload.watching import file_tree, signatures

    write(tmp_path / "sigreload.toml", 'ignore = ["d1/", "./d2", "/d3/"]\n')
    for rel in ("d1/a.html", "deep/d1/b.html", "d2/c.html", "deep/d2/kept.html", "d3/e.html", "kept.html"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        write(tmp_path / rel, "x")
    (tmp_path / "deep" / "below").mkdir()
    globs = eval(shown(tmp_path / "deep" / "below")["ignore"])  # a TOML list of strings: Python's too
    assert globs == ["d1/", "/d2", "/d3"]  # relative to ROOT, the file's folder: anchored
    found = file_tree.snapshot(str(tmp_path), signatures.DEFAULT_IGNORE + tuple(globs))
    assert sorted(os.path.relpath(path, tmp_path) for path in found if path.endswith(".html")) == [
        "deep/d2/kept.html", "kept.html"]
    skip = signatures.matcher(["d1/"])  # the command line's --ignore d1/: the same
    assert skip("d1", "deep/") and skip("d1", "") and not skip("d2", "deep/")


def test_config_prints_the_command_lines_paths_resolved(tmp_path):
    """README: "resolved (paths absolute)"; it printed `root = "../../.."` and `output = "site"`."""
    here = tmp_path / "a" / "b"
    here.mkdir(parents=True)
    found = shown(here, "../..", "--exec", "make", "--output", "site", "--https", "--cert", "c.pem")
    assert found["root"] == f'"{tmp_path}"' and found["output"] == f'"{here / "site"}"'
    assert found["cert"] == f'"{here / "c.pem"}"'
    assert shown(here)["root"] == f'"{here}"'



def test_the_command_lines_anchored_ignore_stays_anchored_at_root(procs, tmp_path):
    """`--ignore /y` (README: a glob with a `/` at its start matches the path under the
    folder) reached the watcher as `../../../../y`, taken for a path on disk, and ignored
    nothing (r32n4); a file's own anchored glob beside it still works."""
    for rel in ("y/a.html", "sub/y/b.html", "d3/c.html", "kept.html"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        write(tmp_path / rel, "x")
    assert eval(shown(tmp_path, "--ignore", "/y")["ignore"]) == ["/y"]
    write(tmp_path / "sigreload.toml", 'ignore = ["/d3"]\n')
    assert eval(shown(tmp_path / "sub", "--ignore", "/y")["ignore"]) == ["/d3", "/y"]
    main = procs(module("sigreload") + ["--no-http", "--ws-port", free_port(), "--ignore", "/y"], cwd=tmp_path)
    assert main.wait_seen(r"watching \S+: (\d+) files").group(1) == "3"  # sub/y/b.html, kept.html, the toml


def silent(page, quiet=2):
    """Whether no message comes for ``quiet`` seconds (the absence is what is tested)."""
    try:
        page.recv(timeout=quiet * SCALE)
    except TimeoutError:
        return True
    return False


def test_the_watcher_ignores_its_own_output_file_in_root(procs, tmp_path):
    """`sigreload > nohup.out` in ROOT: each log line was a change, told, logged: a loop
    (1,972 lines in 11 s). Here a name no default ignores: the watcher knows the file
    its stdout and stderr write to by its device and inode."""
    from sigreload.watching import signatures

    assert "nohup.out" in signatures.DEFAULT_IGNORE
    write(tmp_path / "index.html", "<h1>page</h1>")
    http_port, ws_port, log = free_port(), free_port(), tmp_path / "sigreload.out"
    log.touch()  # read before the shell makes it
    stack = procs(["sh", "-c", 'exec "$@" > sigreload.out 2>&1', "sh", *module("sigreload"), "-v",
                   "--port", http_port, "--ws-port", ws_port], cwd=tmp_path)
    until(lambda: "watching" in log.read_text() and " serving " in log.read_text(), 20, "sigreload's start")
    with client(ws_port) as page:
        recv(page)  # hello; the broadcaster logs the client (-v), a write to sigreload.out
        assert silent(page), log.read_text()
        write(tmp_path / "index.html", "<h1>edited</h1>")
        assert '"reload"' in recv(page, 10), log.read_text()
        assert silent(page), log.read_text()  # its log lines brought no reload either
    assert stack.popen.poll() is None


@pytest.mark.parametrize("text, line", [
    ("[tool.sigreload]\nport = 8107\n", "[tool.sigreload] belongs in pyproject.toml; sigreload.toml takes "
                                       "top-level keys (port = 8001, no table)"),
    ("interval = 0\n", "interval takes a number of seconds from 0.01 to 86400, not 0"),
    ("interval = -1.5\n", "interval takes a number of seconds from 0.01 to 86400, not -1.5"),
    ("interval = inf\n", "interval takes a number of seconds from 0.01 to 86400, not inf"),
    ("interval = 1e10\n", "interval takes a number of seconds from 0.01 to 86400, not 10000000000.0"),
    ("port = 8107\nport = 8108", "not valid TOML: line 2: port is set twice (a key takes one value)"),
    ("port = 8107\nws-port = 5690\nport = 8108\n",
     "not valid TOML: line 3: port is set twice (a key takes one value)"),
])
def test_messages_a_newcomer_needs_are_one_line(tmp_path, text, line):
    write(tmp_path / "sigreload.toml", text)
    done = run(tmp_path, "config")
    assert done.returncode == 2 and done.stderr == f"sigreload: {tmp_path / 'sigreload.toml'}: {line}\n", done


@pytest.mark.parametrize("command, option", [("sigreload", "--interval"), ("watcher", "--interval"),
                                             ("http_server", "--idle-timeout"), ("broadcaster", "--ping-interval")])
@pytest.mark.parametrize("interval", ["0", "-1", "nan"])
def test_a_time_not_above_0_on_the_command_line_is_one_line(tmp_path, command, option, interval):
    done = subprocess.run(module(command) + [option, interval], capture_output=True, text=True, cwd=tmp_path,
                          stdin=subprocess.DEVNULL, timeout=30 * SCALE)
    assert done.returncode == 2 and done.stderr.endswith(f"argument {option}: not above 0 seconds: {interval}\n")
    assert len(done.stderr.splitlines()) == 1, done.stderr  # no usage block first (r32n5: 13 lines)
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("value", ["1e10", "inf", "1e-6"])
def test_a_time_out_of_bounds_on_the_command_line_is_one_line(tmp_path, value):
    """1e10 overflowed the watcher's timer (a traceback, the stack stopped); 1e-6 failed every
    request of the file server without a word (r32a4)."""
    done = subprocess.run(module("http_server") + ["--idle-timeout", value], capture_output=True, text=True,
                          cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=30 * SCALE)
    assert done.returncode == 2 and done.stderr.endswith(f"not from 0.01 to 86400 seconds: {value}\n")
    assert "Traceback" not in done.stderr, done.stderr


def test_a_tilde_in_a_files_path_is_home(tmp_path):
    """As a shell expands `--root ~/site`; a file's "~/site" was a folder named ~ beside it."""
    home = tmp_path / "home"
    (home / "site").mkdir(parents=True)
    write(tmp_path / "sigreload.toml", 'root = "~/site"\noutput = "~/out"\n')
    found = shown(tmp_path, env={**os.environ, "HOME": str(home)})
    assert found["root"] == f'"{home / "site"}"' and found["output"] == f'"{home / "out"}"'


def test_a_switch_a_file_turns_on_the_command_line_turns_off(tmp_path):
    """`morph = true` in the file could not be undone for one run: --no-morph now."""
    from sigreload import cli

    write(tmp_path / "sigreload.toml", "morph = true\nlan = true\nverbose = true\n")
    found = shown(tmp_path, "--no-morph", "--no-lan", "--no-verbose")
    assert (found["morph"], found["lan"], found["verbose"]) == ("false", "false", "false")
    assert shown(tmp_path)["morph"] == "true"
    args = cli.make_parser().parse_args(["--morph", "--no-morph", "--follow"])
    argv = cli.children_argv(args, 1)["broadcast"]
    assert "--follow" in argv and "--morph" not in argv and "--no-morph" not in argv


def test_a_no_switch_a_file_turns_on_the_positive_flag_turns_off(tmp_path):
    """no-http, no-inject, no-console, no-overlay and livereload had no way back for one run,
    and `--http`, the natural guess, was taken as an abbreviation of --https (r32n4)."""
    write(tmp_path / "sigreload.toml", "no-http = true\nno-inject = true\nno-console = true\n"
                                       "no-overlay = true\nlivereload = true\n")
    found = shown(tmp_path, "--http", "--inject", "--console", "--overlay")
    assert [found[k] for k in ("no-http", "no-inject", "no-console", "no-overlay", "https")] == ["false"] * 5
    assert found["livereload"] == "35729"
    write(tmp_path / "sigreload.toml", "livereload = false\n")
    assert shown(tmp_path)["livereload"] is None
    done = run(tmp_path, "config", "--htt")
    assert done.returncode == 2 and "unrecognized arguments: --htt" in done.stderr, done


def test_config_is_the_command_even_beside_a_config_folder(tmp_path):
    """cookiecutter-django has a config/ folder: `sigreload config` served it, naming a
    `sigreload-config` that does not exist (r32n4)."""
    (tmp_path / "config").mkdir()
    done = run(tmp_path, "config")
    assert done.returncode == 0 and done.stdout.startswith("# sigreload's settings here"), done
    assert done.stderr == "sigreload config: ./config is a folder here; `sigreload ./config` serves it\n"


def test_init_never_writes_through_a_link(tmp_path):
    """Another user's `rfile.yml -> ~/.profile` in a shared folder: init created or, with
    --force, overwrote the developer's file (r32a4)."""
    target = tmp_path / "home" / ".profile"
    target.parent.mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "rfile.yml").symlink_to(target)
    (tmp_path / "shared" / "sigreload.toml").symlink_to(tmp_path / "home" / "evil.toml")
    for args, said in ((["init"], "rfile.yml exists; pass --force to overwrite it"),
                       (["init", "--force"], "rfile.yml: a link: not written through (remove it first)"),
                       (["init", "--config", "--force"], "sigreload.toml: a link: not written through")):
        done = run(tmp_path / "shared", *args)
        assert done.returncode == 1 and said in done.stderr and "Traceback" not in done.stderr, done
    assert not target.exists() and not (tmp_path / "home" / "evil.toml").exists()


@pytest.mark.parametrize("config, page, said", [
    ('proxy = "http://127.0.0.1:5000"\nport = 8107\n', False, "then open http://127.0.0.1:8107/"),
    ("no-http = true\n", False, "then open your app (no-http: sigreload serves no pages)"),
    ('exec = "make"\noutput = "out"\n', False, "then open http://127.0.0.1:8000/"),
    ("port = 0\n", True, "then open the address it prints (port 0: any free one)"),
    ("no-inject = true\n", False, "no-inject is set: no starter page (your pages include the snippet themselves)"),
])
def test_init_writes_a_page_only_where_sigreload_serves_the_roots_files(tmp_path, config, page, said):
    """An app behind the proxy (or --no-http) serves the pages, a build its output: a
    starter index.html in the sources was never served (r32n4)."""
    write(tmp_path / "sigreload.toml", config)
    done = run(tmp_path, "init")
    assert done.returncode == 0 and said in done.stdout, done
    assert (tmp_path / "index.html").exists() == page


def test_init_leaves_a_folder_with_an_index_htm_alone(tmp_path):
    write(tmp_path / "index.htm", "<h1>mine</h1>")
    done = run(tmp_path, "init")
    assert done.returncode == 0 and not (tmp_path / "index.html").exists(), done


def test_an_edit_of_the_file_while_running_says_a_restart_applies_it(procs, tmp_path):
    """The file is read at start: an edit while running changed nothing, without a word (r32n4)."""
    write(tmp_path / "sigreload.toml", "verbose = false\n")
    main = procs(module("sigreload") + ["--no-http", "--ws-port", free_port()], cwd=tmp_path)
    main.wait_seen("watching")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "sigreload.toml", "port = 8107\n")  # not read by this sigreload (r32a5)
    main.wait_seen("sub/sigreload.toml changed")
    write(tmp_path / "sigreload.toml", "verbose = true\n")
    main.wait_seen("sigreload.toml changed: sigreload reads it when it starts; restart it to apply")
    assert "sub/sigreload.toml changed: sigreload reads it" not in main.output()


def test_config_shows_the_editor_visual_or_editor_gives(tmp_path):
    """`EDITOR=code` opens files in VS Code, and `sigreload config` said `editor (not set)` (r32n4)."""
    found = run(tmp_path, "config", env={**os.environ, "EDITOR": "code", "VISUAL": ""})
    assert "# in effect: code -g '{file}:{line}:{column}' ($VISUAL or $EDITOR)" in found.stdout, found


@pytest.mark.parametrize("args", [["config"], ["reload"], ["init"], []])
def test_a_deleted_current_folder_is_one_line(tmp_path, args):
    """A clean build empties the folder a shell is in: every command was a traceback (r32n5)."""
    gone = tmp_path / "gone"
    gone.mkdir()
    command = module("sigreload") + (args or [str(tmp_path)])  # sigreload ROOT: an absolute one too
    done = subprocess.run(["sh", "-c", 'cd "$1" && rmdir "$1" && shift && exec "$@"', "sh", gone, *command],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30 * SCALE)
    assert done.returncode == 2 and done.stderr.endswith(
        "the current folder no longer exists (deleted, or made anew by a build): cd into it again\n"), done


@pytest.mark.parametrize("text, line", [
    ('ignore = ["x\\u0000"]\n', "ignore holds a NUL character"),
    ('allow-host = ["a\\u0000"]\n', "allow-host holds a NUL character"),
    ('host = ""\n', "host takes a value that is not empty"),
    ('ignore = ["drafts", ""]\n', "ignore takes a value that is not empty"),
    ('editor = "code \\""\n', 'editor: not a command (No closing quotation): code "'),
])
def test_values_no_command_could_use_are_one_line(tmp_path, text, line):
    """r32a5: a NUL in a list reached a child's argv (a traceback); r32n5: host = "" listened
    on every address; an editor with an open quote was a traceback in the HTTP server."""
    write(tmp_path / "sigreload.toml", text)
    done = run(tmp_path, "config")
    assert done.returncode == 2 and done.stderr == f"sigreload: {tmp_path / 'sigreload.toml'}: {line}\n", done


def test_an_editor_with_an_open_quote_in_the_environment_is_no_editor(tmp_path):
    done = run(tmp_path, "config", env={**os.environ, "EDITOR": 'code "', "VISUAL": ""})
    assert done.returncode == 0 and "# no editor: pass --editor CMD" in done.stdout, done


def test_init_writes_nothing_in_a_folder_others_can_write(tmp_path):
    """`r` runs rfile.yml: in a folder others can write, another user replaced it after
    init and `r` ran theirs as the developer (r32a5)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    done = run(shared, "init")
    assert done.returncode == 1 and "init writes nothing here (use a folder of your own)" in done.stderr, done
    assert list(shared.iterdir()) == []


def test_init_force_never_writes_through_a_hard_link(tmp_path):
    profile = tmp_path / "profile"
    write(profile, "mine\n")
    (tmp_path / "site").mkdir()
    os.link(profile, tmp_path / "site" / "rfile.yml")
    done = run(tmp_path / "site", "init", "--force")
    assert done.returncode == 1 and "it has other names (hard links): not written" in done.stderr, done
    assert profile.read_text() == "mine\n"


def test_a_certificate_is_https_in_config_and_no_https_undoes_it(tmp_path):
    """A file's cert and key served HTTPS while `sigreload config` said https = false, and
    --no-https could not turn it off (r32n5)."""
    write(tmp_path / "sigreload.toml", 'cert = "c.pem"\nkey = "k.pem"\n')
    found = shown(tmp_path)
    assert found["https"] == "true" and found["cert"] == f'"{tmp_path / "c.pem"}"'
    found = shown(tmp_path, "--no-https")
    assert found["https"] == "false" and found["cert"] is None and found["key"] is None


def test_the_command_lines_dot_paths_in_ignore_start_here(procs, tmp_path):
    """`--ignore ./b` and `--ignore ../d` from a folder below ROOT ignored nothing: taken as
    globs under ROOT (r32n5); as paths they start in the current folder."""
    for rel in ("src/b/x.html", "b/y.html", "d/z.html", "kept.html"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        write(tmp_path / rel, "x")
    found = shown(tmp_path / "src", "..", "--ignore", "./b", "--ignore", "../d", "--ignore", "/c")
    assert eval(found["ignore"]) == ["src/b", "/d", "/c"]
    main = procs(module("sigreload") + ["..", "--no-http", "--ws-port", free_port(), "--ignore", "./b",
                                        "--ignore", "../d"], cwd=tmp_path / "src")
    assert main.wait_seen(r"watching \S+: (\d+) files").group(1) == "2"  # b/y.html, kept.html
