"""The configuration file: sigreload.toml or pyproject.toml's [tool.sigreload],
found from the current folder upward; the command line wins; bad keys and
types are one line; `sigreload config` says where each value comes from; the
README's table of sigreload's options is the parser's."""

import os
import re
import subprocess
import sys
import urllib.request

import pytest

from conftest import ROOT, SCALE, client, drain, free_port, module, recv, write
from sigreload import cli, config


def run(cwd, *args):
    """`sigreload ARGS` run to completion in ``cwd``."""
    return subprocess.run(module("sigreload") + [str(a) for a in args], capture_output=True, text=True,
                          cwd=cwd, stdin=subprocess.DEVNULL, timeout=30 * SCALE)


def settings(cwd, *args):
    """`sigreload config ARGS` in ``cwd``: {key: (value text, source)}."""
    shown = run(cwd, "config", *args)
    assert shown.returncode == 0, shown.stderr
    found = {}
    for line in shown.stdout.splitlines()[1:]:
        if line.startswith("# exec runs in "):  # a note, not a key
            continue
        setting, source = (part.strip() for part in line.split(" # ", 1))
        key, _, value = setting.lstrip("# ").partition(" = ")
        found[key.split(" ")[0]] = (value if "(not set)" not in setting else None, source)
    return found


def test_without_a_file_every_value_is_the_default(tmp_path):
    found = settings(tmp_path)
    assert found["port"] == ("8000", "default") and found["ws-port"] == ("5678", "default")
    assert found["proxy"] == (None, "default") and found["ignore"] == ("[]", "default")
    assert set(found) == set(config.keys(cli.make_parser()))  # every option is a key


def test_the_nearest_file_upward_wins_and_sigreload_toml_beats_pyproject_in_one_folder(tmp_path):
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n[tool.sigreload]\nport = 8101\n')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert settings(deep)["port"] == ("8101", str(tmp_path / "pyproject.toml"))
    write(tmp_path / "sigreload.toml", "port = 8102\n")
    assert settings(deep)["port"] == ("8102", str(tmp_path / "sigreload.toml"))
    write(tmp_path / "a" / "pyproject.toml", '[project]\nname = "no table here"\n')  # does not count
    assert settings(deep)["port"][0] == "8102"


def test_the_command_line_wins_and_lists_add_to_the_file(tmp_path):
    write(tmp_path / "sigreload.toml", 'port = 8103\nws-port = 5690\nignore = ["drafts", "*.tmp"]\n'
                                       'root = "site"\nlivereload = true\n')
    found = settings(tmp_path, "--port", "9000", "--ignore", "x")
    assert found["port"] == ("9000", "command line")
    assert found["ws-port"] == ("5690", str(tmp_path / "sigreload.toml"))
    assert found["ignore"] == ('["drafts", "*.tmp", "x"]', f"{tmp_path / 'sigreload.toml'} + command line")
    assert found["root"][0] == f'"{tmp_path / "site"}"'  # relative to the file's folder
    assert found["livereload"][0] == "35729"  # true: the option's own default port


@pytest.mark.parametrize("text, line", [
    ("wsport = 1\n", "unknown key 'wsport' (did you mean 'ws-port'?)"),
    ('port = "80"\n', "port takes a port (0 to 65535), not '80'"),
    ("poll = 1\n", "poll takes true or false, not 1"),
    ("ignore = [1]\n", "ignore takes a list of strings, not [1]"),
    ("port = \n", "not valid TOML"),
])
def test_a_bad_file_is_one_line_naming_the_file_and_the_key_and_exit_2(tmp_path, text, line):
    write(tmp_path / "sigreload.toml", text)
    for args in ((tmp_path,), ("config",)):
        shown = run(tmp_path, *args)
        assert shown.returncode == 2, shown
        assert shown.stderr.startswith(f"sigreload: {tmp_path / 'sigreload.toml'}: {line}"), shown.stderr
        assert len(shown.stderr.splitlines()) == 1 and not shown.stdout


def test_init_writes_a_file_that_reads_as_the_defaults(tmp_path):
    shown = run(tmp_path, "init", "--config")
    assert shown.returncode == 0, shown.stderr
    assert all(source.startswith("default") for _, source in settings(tmp_path).values())  # ROOT: its folder
    assert run(tmp_path, "init", "--config").returncode != 0  # never overwritten unasked
    text = (tmp_path / "sigreload.toml").read_text()
    lines = [line[2:] if line.startswith("# ") and " = " in line else line for line in text.splitlines()]  # uncommented
    write(tmp_path / "sigreload.toml", "\n".join(lines) + "\n")
    shown = run(tmp_path, "config")
    assert "not valid TOML" not in shown.stderr, shown.stderr  # each line, uncommented, reads


def test_sigreload_serves_on_the_files_ports(procs, tmp_path):
    (tmp_path / "site").mkdir()
    write(tmp_path / "site" / "index.html", "<h1>configured</h1>")
    http_port, ws_port = free_port(), free_port()
    write(tmp_path / "sigreload.toml", f'root = "site"\nport = {http_port}\nws-port = {ws_port}\n')
    stack = procs(module("sigreload"), cwd=tmp_path)
    stack.wait_seen(rf"ready on ws://127\.0\.0\.1:{ws_port}", 15)
    stack.wait_seen(r"sigreload\.http: serving ", 15)
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=5 * SCALE) as page:
        assert b"configured" in page.read()


def test_the_readme_table_is_the_parser(tmp_path):
    """The README's table of sigreload's options names each option with its default."""
    readme = (ROOT / "README.md").read_text().split("Its options are theirs:", 1)[1].split("\n\n", 2)[1]
    rows = {re.search(r"`(?:--([\w-]+)|(ROOT))", row.split("|")[1].replace("`-v`", "")).group(1, 2)[0] or "root":
            row.split("|")[2].strip() for row in readme.splitlines()[2:]}
    shown = settings(tmp_path)
    assert shown["root"][0] == f'"{tmp_path}"'  # `.`, resolved
    shown["root"] = ('"."', "default")
    assert set(rows) == set(shown)
    for key, (value, _) in shown.items():
        written, unset = rows[key], value in (None, "false", "[]")
        from_environment = written.startswith("`$")  # --editor: $VISUAL or $EDITOR
        assert (written == "" or written.startswith("off") or from_environment) if unset \
            else value.strip('"') in written, key


def test_a_file_anyone_can_write_is_skipped_with_one_line(tmp_path):
    """It can name a build command (exec), and a folder above may be shared (/tmp):
    never read, said once, and the search goes on upward."""
    write(tmp_path / "sigreload.toml", "port = 8104\n")
    (tmp_path / "below").mkdir()
    write(tmp_path / "below" / "sigreload.toml", 'exec = "touch pwned"\n')
    (tmp_path / "below" / "sigreload.toml").chmod(0o666)
    shown = run(tmp_path / "below", "config")
    assert shown.returncode == 0, shown
    assert shown.stderr.count("\n") == 1 and "anyone can write it (chmod o-w it): skipped" in shown.stderr
    assert "port = 8104" in shown.stdout and not (tmp_path / "below" / "pwned").exists()


def test_a_group_writable_file_of_ones_own_is_used(tmp_path):
    """umask 002 (per-user groups) and git clone give 0664: the user's own file."""
    write(tmp_path / "sigreload.toml", "port = 8105\n")
    (tmp_path / "sigreload.toml").chmod(0o664)
    assert settings(tmp_path)["port"][0] == "8105"


def test_a_file_another_group_can_write_is_skipped(tmp_path):
    """A member of that group could write a build command into it (the reviewer's
    r34a2: a 0664 file of the user's, group shared with another user)."""
    import grp

    try:
        other = next(g.gr_gid for g in grp.getgrall() if g.gr_gid != os.getgid() and g.gr_mem)
    except StopIteration:
        other = grp.getgrnam("nogroup").gr_gid
    if os.getuid() != 0 and other not in os.getgroups():
        pytest.skip("chown to another group needs root or membership")
    write(tmp_path / "sigreload.toml", "port = 8104\n")
    (tmp_path / "below").mkdir()
    write(tmp_path / "below" / "sigreload.toml", 'exec = "touch pwned"\n')
    os.chown(tmp_path / "below" / "sigreload.toml", -1, other)
    (tmp_path / "below" / "sigreload.toml").chmod(0o664)
    shown = run(tmp_path / "below", "config")
    assert shown.returncode == 0 and "its group can write it" in shown.stderr, shown
    assert "port = 8104" in shown.stdout and not (tmp_path / "below" / "pwned").exists()



def test_a_link_another_user_made_is_skipped(tmp_path):
    """In a shared folder another user links sigreload.toml to the developer's own file
    (one with a build): its folder became ROOT and the build ran there (r32a4)."""
    if os.getuid() != 0:
        pytest.skip("a link owned by another user needs root to make here")
    mine = tmp_path / "home" / "site"
    mine.mkdir(parents=True)
    write(mine / "sigreload.toml", 'exec = "touch pwned"\noutput = "out"\n')
    shared = tmp_path / "shared"
    (shared / "dev").mkdir(parents=True)
    (shared / "sigreload.toml").symlink_to(mine / "sigreload.toml")
    os.lchown(shared / "sigreload.toml", 65534, 65534)
    shown = run(shared / "dev", "config")
    assert shown.returncode == 0 and "a link another user made (owner uid 65534): skipped" in shown.stderr, shown
    assert f'root = "{shared / "dev"}"' in shown.stdout  # the default: here, not the shared folder
    os.lchown(shared / "sigreload.toml", os.getuid(), os.getgid())  # one's own link is followed
    assert f'root = "{shared}"' in run(shared / "dev", "config").stdout


@pytest.mark.parametrize("mode, skipped", [(0o777, True), (0o1777, False), (0o755, False)])
def test_a_file_in_a_folder_others_can_write_is_skipped_unless_sticky(tmp_path, mode, skipped):
    """In a folder others can write, whatever is judged could be swapped for another of
    one's files and back between the look and the read (r32a5: 959 of 20,000 reads in
    one process took the other file); the sticky bit keeps each name its owner's."""
    shared = tmp_path / "shared"
    (shared / "dev").mkdir(parents=True)
    write(shared / "sigreload.toml", 'exec = "touch pwned"\noutput = "out"\n')
    shared.chmod(mode)
    shown = run(shared / "dev", "config")
    assert shown.returncode == 0, shown
    assert ("others can write its folder (and so put another file in its place): skipped" in shown.stderr) == skipped
    assert ('exec = "touch pwned"' in shown.stdout) != skipped


def test_a_file_with_other_names_is_skipped(tmp_path):
    """A hard link of one's own file in another folder (where protected_hardlinks is off,
    another user can make one) would carry its build there (r32a5)."""
    write(tmp_path / "mine.toml", 'exec = "touch pwned"\noutput = "out"\n')
    os.link(tmp_path / "mine.toml", tmp_path / "sigreload.toml")
    shown = run(tmp_path, "config")
    assert shown.returncode == 0 and "it has other names (hard links): skipped" in shown.stderr, shown


def test_a_file_an_acl_lets_others_write_is_skipped(tmp_path):
    """`setfacl -m u:other:rw`: the group bits are then the ACL's mask, and the file's
    private group said nothing about who may write it (r32a4)."""
    import struct

    write(tmp_path / "sigreload.toml", 'exec = "touch pwned"\n')
    (tmp_path / "sigreload.toml").chmod(0o664)
    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 6, 65534), (0x04, 4, 0xFFFFFFFF), (0x10, 6, 0xFFFFFFFF),
               (0x20, 4, 0xFFFFFFFF)]  # user::rw- user:65534:rw- group::r-- mask::rw- other::r--
    acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)
    try:
        os.setxattr(tmp_path / "sigreload.toml", "system.posix_acl_access", acl)
    except (AttributeError, OSError) as exc:
        pytest.skip(f"no POSIX ACLs here: {exc}")
    shown = run(tmp_path, "config")
    assert shown.returncode == 0 and "an ACL lets others write it (setfacl -b it): skipped" in shown.stderr, shown
    assert 'exec = "touch pwned"' not in shown.stdout


@pytest.mark.parametrize("text", ['tool = "x"\n', "tool = 5\n"])
def test_a_pyproject_whose_tool_is_no_table_is_not_ours(tmp_path, text):
    write(tmp_path / "pyproject.toml", text)
    shown = run(tmp_path, "config")
    assert shown.returncode == 0 and "file: none" in shown.stdout and shown.stderr == "", shown


def test_a_nul_in_a_files_path_is_one_line(tmp_path):
    write(tmp_path / "sigreload.toml", 'root = "a\\u0000b"\n')
    shown = run(tmp_path, "config")
    assert shown.returncode == 2 and shown.stderr.endswith("root holds a NUL character\n"), shown

@pytest.mark.parametrize("text, line", [
    ("port = -1\n", "port takes a port (0 to 65535), not -1"),
    ("ws-port = 70000\n", "ws-port takes a port (0 to 65535), not 70000"),
    ("ignore = " + "[" * 5000 + "]" * 5000 + "\n", "not valid TOML"),
])
def test_out_of_range_ports_and_deep_nesting_are_one_line(tmp_path, text, line):
    write(tmp_path / "sigreload.toml", text)
    shown = run(tmp_path, "config")
    assert shown.returncode == 2 and line in shown.stderr and len(shown.stderr.splitlines()) == 1, shown


def test_a_port_out_of_range_on_the_command_line_is_refused_by_the_parser(tmp_path):
    shown = run(tmp_path, "--port", "-1")
    assert shown.returncode == 2 and "not a port (0 to 65535): -1" in shown.stderr and "Traceback" not in shown.stderr


def test_a_build_command_from_a_file_is_said_before_it_runs(procs, tmp_path):
    (tmp_path / "out").mkdir()
    write(tmp_path / "sigreload.toml", f'exec = "true"\noutput = "out"\nport = {free_port()}\n'
                                       f"ws-port = {free_port()}\n")
    stack = procs(module("sigreload"), cwd=tmp_path)
    stack.wait_seen(rf"sigreload: settings from {tmp_path / 'sigreload.toml'}; it builds with: true", 15)


def test_ws_port_0_is_refused_in_one_line(tmp_path):
    """The reviewer r34a2: any free port for the broadcaster quietly turned live reload
    off (the HTTP server and pasted snippets name its port)."""
    write(tmp_path / "sigreload.toml", "ws-port = 0\n")
    shown = run(tmp_path)
    assert shown.returncode == 2 and "--ws-port 0 (any free port) leaves pages no way" in shown.stderr, shown
    assert "Traceback" not in shown.stderr


def test_everything_a_file_says_is_relative_to_its_folder(tmp_path):
    """The reviewers: a file in a folder above, read from a folder below, put its
    output beside it but ROOT in the current folder (and ran its build there).
    Now as ruff and black: ROOT defaults to the file's folder, a path glob is
    relative to it, its build runs in it; the command line's stay relative here."""
    (tmp_path / "site" / "below").mkdir(parents=True)
    write(tmp_path / "sigreload.toml", 'exec = "make"\noutput = "dist"\nignore = ["drafts", "site/tmp/*"]\n')
    here = tmp_path / "site" / "below"
    found = settings(here)
    assert found["root"] == (f'"{tmp_path}"', "default: the file's folder")
    assert found["output"][0] == f'"{tmp_path / "dist"}"'
    assert found["ignore"][0] == '["drafts", "site/tmp/*"]'  # relative to ROOT, its folder
    assert f"# exec runs in {tmp_path} (the file's folder)" in run(here, "config").stdout
    write(tmp_path / "sigreload.toml", 'root = "site"\nexec = "make"\noutput = "dist"\n'
                                       'ignore = ["site/tmp/*", "/site/a/", "*/drafts", "x"]\n')
    found = settings(here)
    assert found["root"][0] == f'"{tmp_path / "site"}"'
    assert found["ignore"][0] == '["tmp/*", "/a", "*/drafts", "x"]'  # a path from the file's folder; any depth
    assert f"# exec runs in {tmp_path} (the file's folder)" in run(here, "config").stdout
    found = settings(here, "..", "--exec", "make", "--ignore", "x/y")  # the command line's: from here, in ROOT
    assert found["root"] == (f'"{tmp_path / "site"}"', "command line")  # resolved from here
    assert found["ignore"][0] == '["tmp/*", "/a", "*/drafts", "x", "x/y"]'
    assert f"# exec runs in {tmp_path / 'site'} (ROOT)" in run(here, "config", "..", "--exec", "make").stdout


def test_a_files_build_runs_in_its_folder_and_its_output_is_served(procs, tmp_path):
    """sigreload run in a folder below its file: the build (a script beside the file) runs in
    the file's folder and writes the output the file names, which is served."""
    below = tmp_path / "src" / "pages"
    below.mkdir(parents=True)
    write(tmp_path / "build.py", "import pathlib\npathlib.Path('dist').mkdir(exist_ok=True)\n"
                                 "pathlib.Path('dist/index.html').write_text('<h1>built beside the file</h1>')\n")
    http_port, ws_port = free_port(), free_port()
    write(tmp_path / "sigreload.toml", f'exec = "{sys.executable} build.py"\noutput = "dist"\n'
                                       f"port = {http_port}\nws-port = {ws_port}\n")
    stack = procs(module("sigreload"), cwd=below)
    stack.wait_seen("build succeeded", 30)
    stack.wait_seen(r"sigreload\.http: serving ", 15)
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=5 * SCALE) as page:
        assert b"built beside the file" in page.read()
    assert not (below / "dist").exists()


REVIEW_RELOAD = "from sigreload.contract.discovery import reload_main; reload_main()"  # sigreload-reload


def test_sigreload_reload_signals_the_broadcaster_on_the_files_ws_port(procs, tmp_path):
    """The reviewers: `sigreload reload` ignored the file's ws-port (with two broadcasters
    it could not choose; with one elsewhere it signalled that one)."""
    ours, other = free_port(), free_port()
    for port in (ours, other):
        procs(module("broadcaster") + ["--port", port], cwd=ROOT).wait_for("ready on", 15)
    write(tmp_path / "sigreload.toml", f"ws-port = {ours}\n")
    with client(ours) as mine, client(other) as theirs:
        recv(mine), recv(theirs)
        for command in (module("sigreload") + ["reload"], [sys.executable, "-c", REVIEW_RELOAD]):
            done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=30 * SCALE)
            assert done.returncode == 0, done.stderr
            assert '"reload"' in recv(mine)
        assert drain(theirs) == []
        write(tmp_path / "sigreload.toml", f"ws-port = {free_port()}\n")  # nothing there: nothing signalled
        done = subprocess.run(module("sigreload") + ["css"], capture_output=True, text=True, cwd=tmp_path,
                              timeout=30 * SCALE)
        assert done.returncode == 1 and "no broadcaster listens on port" in done.stderr, done
        assert drain(theirs) == []
