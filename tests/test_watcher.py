"""The watcher: its pure core, its LiveServer.jl-style API, and the real process."""

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest

from conftest import ROOT, SCALE, cli, client, free_port, module, recv, until, write
from sigreload import interpreter, watcher
from sigreload.contract import discovery, messages, used_paths
from sigreload.watching import file_tree, file_watching, pacing, signatures
from sigreload.watching.signatures import scan_dir
from sigreload.watching.used_files import UsedFiles


def touch_later(path, seconds=10):
    """Move mtime without sleeping: what a later save would look like."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


def test_changes_sees_create_modify_delete_and_rename_into_place(tmp_path):
    (tmp_path / "a.html").write_text("a")
    (tmp_path / "b.css").write_text("b")
    (tmp_path / "c.js").write_text("c")
    old = file_tree.snapshot(str(tmp_path))
    touch_later(tmp_path / "a.html")
    (tmp_path / "b.css").unlink()
    write(tmp_path / "c.js", "c")  # same size, same content, new inode
    (tmp_path / "d.txt").write_text("d")
    new = file_tree.snapshot(str(tmp_path))
    assert [os.path.basename(p) for p in file_tree.changes(old, new)] == ["a.html", "b.css", "c.js", "d.txt"]


def test_same_size_rewrite_with_old_mtime_is_seen(tmp_path):
    """cp -p / rsync keep size and mtime: the ctime still moves."""
    page = tmp_path / "page.html"
    page.write_text("aaaa")
    st = os.stat(page)
    old = file_tree.snapshot(str(tmp_path))
    with open(page, "r+") as f:  # same inode, same size
        f.write("bbbb")
    os.utime(page, ns=(st.st_atime_ns, st.st_mtime_ns))
    if os.stat(page).st_ctime_ns == st.st_ctime_ns:
        pytest.skip("ctime did not move within the file system's resolution")
    assert file_tree.changes(old, file_tree.snapshot(str(tmp_path))) == [str(page)]


def test_default_ignores_and_extra_globs(tmp_path):
    for rel in [".git/HEAD", "node_modules/x/i.js", "__pycache__/m.pyc", "env/pyvenv.cfg",
                "env/lib/site.py", ".index.html.swp", "index.html~", "4913", "a.html___jb_tmp___",
                "build/out.html", "keep.html", "sub/keep.css"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    found = file_tree.snapshot(str(tmp_path), signatures.DEFAULT_IGNORE + ("build",))
    assert sorted(os.path.relpath(p, tmp_path) for p in found) == ["keep.html", "sub/keep.css"]


def test_scan_survives_loops_dangling_links_fifos_and_odd_names(tmp_path):
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path, tmp_path / "sub" / "loop")
    os.symlink(tmp_path / "missing", tmp_path / "dangling")
    os.mkfifo(tmp_path / "fifo")
    odd = os.fsencode(tmp_path) + b"/\xff-\nname.html"
    open(odd, "w").close()
    (tmp_path / "-dash.html").write_text("x")
    found = file_tree.snapshot(str(tmp_path))
    assert sorted(os.path.basename(p) for p in found) == sorted(["-dash.html", os.fsdecode(b"\xff-\nname.html")])


def test_pick_signal_css_only_when_every_change_is_a_present_stylesheet(tmp_path):
    css, html = str(tmp_path / "a.css"), str(tmp_path / "a.html")
    assert watcher.pick_signal([css], {css}) == signal.SIGUSR2
    assert watcher.pick_signal([css, html], {css, html}) == signal.SIGUSR1
    assert watcher.pick_signal([css], set()) == signal.SIGUSR1  # deleted: reload


def test_watched_file_has_changed(tmp_path):
    path = tmp_path / "f.html"
    path.write_text("1")
    wf = file_watching.WatchedFile(str(path))
    assert wf.has_changed() == 0
    touch_later(path)
    assert wf.has_changed() == 1
    assert wf.has_changed() == 0
    path.unlink()
    assert wf.has_changed() == -1
    assert wf.has_changed() == 0  # still gone: no news
    path.write_text("back")
    assert wf.has_changed() == 1


def timed(got):
    """(seconds since the call, paths) of the next callback."""
    began = time.monotonic()
    paths = got.get(timeout=5 * SCALE)
    return time.monotonic() - began, paths


def test_a_watched_file_is_reported_as_fast_as_a_file_in_a_watched_folder_and_its_deletion_once(tmp_path):
    got = queue.Queue()
    page = tmp_path / "p.html"
    page.write_text("1")
    w = file_watching.SimpleWatcher(callback=got.put, interval=0.02)
    w.watch_file(str(page))
    w.start()
    try:
        touch_later(page, 1)
        took, paths = timed(got)
        assert paths == [str(page)] and took < pacing.MAX_BURST / 2  # the settle, not the burst cap
        page.unlink()
        took, paths = timed(got)
        assert paths == [str(page)] and took < pacing.MAX_BURST / 2
        with pytest.raises(queue.Empty):  # the absence is what is tested: past two burst caps
            got.get(timeout=2.5 * pacing.MAX_BURST)
    finally:
        w.stop()


def test_trees_added_while_it_runs_are_watched_and_never_kill_it(tmp_path):
    got = queue.Queue()
    w = file_watching.SimpleWatcher(callback=got.put, interval=0.01)
    (tmp_path / "first").mkdir()
    w.watch_tree(str(tmp_path / "first"))
    w.start()
    try:
        for i in range(40):  # each while the thread sweeps the trees it has
            folder = tmp_path / f"more-{i}"
            folder.mkdir()
            for j in range(20):
                write(folder / f"f{j}.txt", "x")
            w.watch_tree(str(folder))
            w.watch_file(str(folder / "f0.txt"))
        touch_later(folder / "f5.txt", 1)
        assert str(folder / "f5.txt") in got.get(timeout=5 * SCALE)
        assert w.error is None and w._thread.is_alive()
    finally:
        w.stop()


def test_an_unexpected_error_is_logged_and_kept_and_start_starts_anew(tmp_path, caplog):
    page = tmp_path / "p.html"
    page.write_text("1")
    failed, got = queue.Queue(), queue.Queue()

    def callback(paths):
        raise RuntimeError("a bug in the callback")

    w = file_watching.SimpleWatcher(callback=callback, interval=0.02, on_error=failed.put)
    w.watch_file(str(page))
    w.start()
    touch_later(page, 1)
    assert isinstance(failed.get(timeout=5 * SCALE), RuntimeError)
    assert isinstance(w.error, RuntimeError)
    logged = [r for r in caplog.records if r.exc_info]
    assert logged and "unexpected error" in logged[0].getMessage()
    w.set_callback(got.put)
    w.start()  # the dead thread is replaced
    touch_later(page, 2)
    assert got.get(timeout=5 * SCALE) == [str(page)] and w.error is None
    w.stop()


FAULTY_WATCHER = """import sys
from sigreload import interpreter, watcher
def tell(self, paths, signum=None, message=None):
    raise RuntimeError("a bug while telling the broadcaster")
watcher.Notifier.tell = tell  # an unexpected error in the watching thread
watcher.main(sys.argv[1:])
"""


def test_the_watcher_process_exits_non_zero_with_the_traceback_on_an_unexpected_error(procs, site, tmp_path):
    script = tmp_path / "faulty.py"
    script.write_text(FAULTY_WATCHER)
    proc = procs([sys.executable, "-u", script, site, "--ws-port", free_port(), "--poll"])
    proc.wait_for("watching")
    write(site / "index.html", "<p>edited</p>")
    assert proc.exit_code(10) == 1
    output = proc.output()
    assert "Traceback" in output and "RuntimeError: a bug while telling the broadcaster" in output
    assert "sigreload-watch: stopped by an unexpected error (RuntimeError)" in output


def test_simple_watcher_api(tmp_path):
    got = queue.Queue()
    page = tmp_path / "p.html"
    page.write_text("1")
    w = file_watching.SimpleWatcher(callback=got.put, interval=0.02)
    w.watch_file(str(page))
    assert w.is_watched(str(page)) and not w.is_watched(str(tmp_path / "q.html"))
    assert w.stop() is False
    w.start()
    touch_later(page, 1)
    assert got.get(timeout=5) == [str(page)]
    swapped = queue.Queue()
    w.set_callback(swapped.put)  # hot swap while running
    touch_later(page, 2)
    assert swapped.get(timeout=5) == [str(page)]
    assert w.stop() is True
    assert w.is_watched(str(page))  # the list survives stop()
    w.start()
    touch_later(page, 3)
    assert swapped.get(timeout=5) == [str(page)]
    w.stop()


BURST = "import pathlib, sys\nfor i in range(200): (pathlib.Path(sys.argv[1]) / f'f{i}.html').write_text(str(i))"


@pytest.mark.parametrize("hints", [False, True], ids=["poll", "hints"])
def test_a_burst_gives_one_call_after_the_last_write(tmp_path, hints):
    got = queue.Queue()
    w = file_watching.SimpleWatcher(callback=got.put, interval=0.02, hints=hints)
    w.watch_tree(str(tmp_path))
    w.start()
    try:
        # Written by another process, as a checkout or a build would.
        subprocess.run([sys.executable, "-c", BURST, str(tmp_path)], check=True)
        call = got.get(timeout=5)
        assert len(call) == 200 and str(tmp_path / "f199.html") in call
        assert got.empty()
    finally:
        w.stop()


CHECKOUT = """import os, pathlib, sys
root = pathlib.Path(sys.argv[1])
for i in range(499): (root / f"d{i % 20:02d}" / f"f{i}.txt").write_text(f"new {i}")
(root / "index.html").write_text("new page")"""


@pytest.mark.parametrize("hints", [False, True], ids=["poll", "hints"])
def test_a_checkout_across_cold_folders_gives_one_call(tmp_path, hints):
    """500 files, 499 of them in folders untouched for a day, the page (hot) written last."""
    for d in range(20):
        (tmp_path / f"d{d:02d}").mkdir()
        for f in range(100):
            (tmp_path / f"d{d:02d}" / f"f{d + 20 * f}.txt").write_text("old")
            os.utime(tmp_path / f"d{d:02d}" / f"f{d + 20 * f}.txt", (1e9, 1e9))
        os.utime(tmp_path / f"d{d:02d}", (1e9, 1e9))
    (tmp_path / "index.html").write_text("page")  # edited just now: hot
    got = queue.Queue()
    w = file_watching.SimpleWatcher(callback=got.put, hints=hints)
    w.watch_tree(str(tmp_path))
    w.start()
    try:
        for round in range(3):
            subprocess.run([sys.executable, "-c", CHECKOUT.replace("new", f"new{round}"), str(tmp_path)], check=True)
            call = got.get(timeout=5 * SCALE)
            assert len(call) == 500, f"round {round}: {len(call)} files in the first call"
            with pytest.raises(queue.Empty):
                got.get(timeout=2.5)  # past a full sweep: nothing more
    finally:
        w.stop()


def test_links_out_of_the_root_are_not_followed(tmp_path):
    outside, root = tmp_path / "outside", tmp_path / "root"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "secret.txt").write_text("x")
    (root / "own").mkdir(parents=True)
    (root / "own" / "page.html").write_text("x")
    os.symlink(outside, root / "out")  # like a link to /etc, or to /
    os.symlink(outside / "deep" / "secret.txt", root / "secret.txt")
    os.symlink(root / "own" / "page.html", root / "alias.html")  # inside: followed
    tree = file_tree.Tree(str(root))
    assert sorted(os.path.relpath(p, root) for p in tree.snapshot()) == ["alias.html", "own/page.html"]
    os.symlink(outside, root / "later")  # a link made while watching, named by a hint
    os.symlink(outside / "deep" / "secret.txt", root / "later.txt")
    assert tree.check(str(root / "later")) == [] and tree.check(str(root / "later.txt")) == []
    assert str(root / "later.txt") not in tree.snapshot()


REBUILD = """import pathlib, shutil, sys
out = pathlib.Path(sys.argv[1])
shutil.rmtree(out)
out.mkdir()
for i in range(50): (out / f"page{i}.html").write_text(sys.argv[2])"""


@pytest.mark.parametrize("hints", [False, True], ids=["poll", "hints"])
def test_a_folder_deleted_and_rebuilt_gives_one_call(tmp_path, hints):
    out = tmp_path / "out"
    out.mkdir()
    for i in range(50):
        (out / f"page{i}.html").write_text("v0")
    got = queue.Queue()
    w = file_watching.SimpleWatcher(callback=got.put, hints=hints)
    w.watch_tree(str(out))
    w.start()
    try:
        for round in range(1, 8):
            subprocess.run([sys.executable, "-c", REBUILD, str(out), f"v{round}"], check=True)
            assert len(got.get(timeout=5 * SCALE)) == 50
            with pytest.raises(queue.Empty):
                got.get(timeout=0.5)
    finally:
        w.stop()


def test_a_change_without_notification_is_found_and_switches_to_polling(tmp_path, caplog):
    """A lost hint only delays a reload: the budgeted sweep finds the change."""
    page = tmp_path / "page.html"
    page.write_text("1")
    got = queue.Queue()
    w = file_watching.SimpleWatcher(callback=got.put, interval=0.02, hints=True)
    w.watch_tree(str(tmp_path))
    w.start()
    try:
        assert w.hinting
        # A change is proof only when its ctime (the kernel's coarse clock, up to 10 ms behind)
        # is after the notifications began: right after, it was not (1 of 924, a fresh clone)
        until(lambda: time.time() > w.hints_began + 0.05, 5, "the clock past the notifications' start")
        w._observer.stop()  # notifications stop arriving (a Docker mount, WSL, NFS)
        w._observer.join()
        aged = tmp_path.parent / f"{tmp_path.name}-aged"  # made outside the tree, renamed in at once:
        aged.write_text("2")  # a sweep between a write and a touch saw a fresh save, which a late hint
        touch_later(aged, -3600)  # may explain (3.10, 1 run: no switch); an old mtime: none could
        os.replace(aged, page)
        assert got.get(timeout=30 * SCALE) == [str(page)]  # the sweep's pace, within its CPU budget
        assert not w.hinting
        assert "without a notification: polling from now on" in caplog.text
    finally:
        w.stop()


def test_tree_check_handles_new_deleted_and_ignored_paths(tmp_path):
    tree = file_tree.Tree(str(tmp_path))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.html").write_text("a")
    assert tree.check(str(tmp_path / "sub")) == [str(tmp_path / "sub" / "a.html")]
    (tmp_path / "x.swp").write_text("x")
    assert tree.check(str(tmp_path / "x.swp")) == []
    (tmp_path / "sub" / "a.html").unlink()
    (tmp_path / "sub").rmdir()
    assert tree.check(str(tmp_path / "sub")) == [str(tmp_path / "sub" / "a.html")]
    assert tree.snapshot() == {}


def old_tree(root, folders=4, files=5):
    """Folders of files, every folder's own mtime a day old (as in a real checkout)."""
    for d in range(folders):
        for f in range(files):
            (root / f"d{d}" / f"f{f}.txt").parent.mkdir(exist_ok=True)
            (root / f"d{d}" / f"f{f}.txt").write_text("x")
        os.utime(root / f"d{d}", (1e9, 1e9))
    os.utime(root, (1e9, 1e9))
    return file_tree.Tree(str(root))


def test_sweep_trusts_only_old_folder_stamps_and_still_sees_every_change(tmp_path):
    tree = old_tree(tmp_path)
    (tmp_path / "young").mkdir()  # changed just now: its stamp could hide a change (coarse clocks)
    # An old folder's stamp is trusted: its passes before a listing count down (from a start
    # staggered by its path's hash, which Python salts per process: 1 to LIST_EVERY). A young
    # folder's names are listed at every pass: none left.
    left = tree.stamps[str(tmp_path / "d0")][1]
    tree.sweep()
    assert tree.stamps[str(tmp_path / "d0")][1] == left - 1 and tree.stamps[str(tmp_path / "young")][1] == 0
    with open(tmp_path / "d1" / "f1.txt", "a") as f:  # in place: the folder's stamp stays
        f.write("y")
    (tmp_path / "d2" / "new.txt").write_text("n")
    (tmp_path / "d3" / "f0.txt").unlink()
    write(tmp_path / "d0" / "f2.txt", "x")  # rename into place
    assert sorted(os.path.relpath(p, tmp_path) for p in tree.sweep()) == [
        "d0/f2.txt", "d1/f1.txt", "d2/new.txt", "d3/f0.txt"]
    assert tree.sweep() == []


def test_a_folder_whose_stamp_misses_a_change_is_listed_within_list_every_sweeps(tmp_path):
    """Some network and FUSE file systems do not move a folder's stamp: the listing comes anyway."""
    tree = old_tree(tmp_path)
    folder = str(tmp_path / "d0")
    (tmp_path / "d0" / "new.txt").write_text("n")
    tree.stamps[folder] = (signatures.stamp(os.stat(folder)), *tree.stamps[folder][1:])  # the stamp "stayed"
    found = [tree.sweep() for _ in range(file_tree.LIST_EVERY + 1)]
    assert sum(found, []) == [str(tmp_path / "d0" / "new.txt")]


@pytest.fixture
def listed(monkeypatch):
    """The folders a Tree lists (scan_dir) from now on, in order."""
    folders = []
    monkeypatch.setattr(file_tree, "scan_dir", lambda folder, *a: folders.append(folder) or scan_dir(folder, *a))
    return folders


def test_a_young_folder_has_its_names_listed_at_every_sweep(tmp_path):
    """A coarse clock (1-2 s) may leave a folder's stamp as it was when an entry is added in
    the same tick: while the stamp is that young, the names are listed at every sweep."""
    tree = old_tree(tmp_path)
    young = tmp_path / "young"
    young.mkdir()
    (young / "a.txt").write_text("a")
    tree.sweep()
    (young / "b.txt").write_text("b")
    tree.stamps[str(young)] = (signatures.stamp(os.stat(young)), *tree.stamps[str(young)][1:])  # the same tick
    assert tree.sweep() == [str(young / "b.txt")]
    assert tree.sweep() == []
    os.utime(young, (1e9, 1e9))  # old now: trusted, its names listed once in LIST_EVERY sweeps
    tree.sweep()
    assert tree.stamps[str(young)][1] == file_tree.LIST_EVERY


def test_a_write_in_place_is_found_without_listing_the_folder_but_a_replaced_file_is_listed(tmp_path, listed):
    tree = old_tree(tmp_path)
    listed.clear()  # the first listing of every folder
    path = tmp_path / "d2" / "f3.txt"
    with open(path, "a") as f:  # in place: the folder's entries are the same
        f.write("more")
    assert tree.sweep() == [str(path)] and listed == []
    assert tree.known(str(path)) == signatures.signature_of(str(path)) and tree.sweep() == []
    folder = str(tmp_path / "d2")
    stamped = tree.stamps[folder]
    write(path, "new")  # rename into place: a new inode; the stamp is made to stay (a coarse clock)
    tree.stamps[folder] = (signatures.stamp(os.stat(folder)), *stamped[1:])
    assert tree.sweep() == [str(path)] and listed == [folder]


def test_a_hint_naming_a_known_folder_looks_at_its_entries_not_its_parents(tmp_path, listed):
    """watchdog names the folder of every file written: 500 of them must not list the root 500 times."""
    tree = old_tree(tmp_path)
    listed.clear()  # the first listing of every folder
    folder = tmp_path / "d1"
    with open(folder / "f1.txt", "a") as f:  # in place: its own hint tells
        f.write("y")
    assert tree.check(str(folder)) == [] and listed == []
    assert tree.check(str(folder / "f1.txt")) == [str(folder / "f1.txt")]
    (folder / "new.txt").write_text("n")
    assert tree.check(str(folder)) == [str(folder / "new.txt")] and listed == [str(folder)]


def test_a_change_a_hint_found_is_not_found_again_by_the_sweep(tmp_path):
    """quick() keeps its own copy of a folder's names and signatures: check() must renew it."""
    tree = old_tree(tmp_path)
    path = str(tmp_path / "d1" / "f1.txt")
    assert tree.sweep() == []
    touch_later(path)
    assert tree.check(path) == [path]
    assert tree.sweep() == []
    folder = os.path.dirname(path)
    assert tree.listed[folder][1] == list(tree.files[folder].values())  # not rescanned at every pass
    touch_later(path)
    assert tree.sweep() == [path] and tree.sweep() == []


def test_sweep_in_slices_covers_the_tree_once(tmp_path):
    tree = old_tree(tmp_path, folders=10, files=9)  # 10 folders of 10 entries, and the root
    for d in range(10):
        touch_later(tmp_path / f"d{d}" / "f0.txt")
    halves = [tree.sweep(0.5), tree.sweep(1.0)]
    assert [len(h) for h in halves] == [5, 5]
    assert tree.sweep(0.5) == [] and tree.queue


def test_hot_files_cool_down(tmp_path):
    """Recently edited files are polled every tick, for HOT_AGE seconds (then no ticks)."""
    (tmp_path / "a.html").write_text("a")
    w = file_watching.SimpleWatcher(interval=0.1)
    w.watch_tree(str(tmp_path))
    path = str(tmp_path / "a.html")
    assert list(w.hot) == [path] and w.hot[path] == signatures.signature_of(path)
    assert w.pacing.cooled(time.monotonic() + pacing.HOT_AGE)
    w._heat([], time.monotonic() + pacing.HOT_AGE)
    assert w.hot == {}


def test_sweep_slices_fall_at_fixed_points_of_the_period(tmp_path):
    """Every folder is rescanned once a period: slices are due at k/n of it, never straddling."""
    w = file_watching.SimpleWatcher(interval=0.1)
    tree = w.watch_tree(str(tmp_path))
    tree.cost, tree.began = 3.5 * pacing.SLICE, 100.0  # four slices of one sweep
    w.pacing.heated.clear()  # nothing hot: no ticks
    period = w.pacing.period(tree.cost)
    assert period == pytest.approx(tree.cost / w.pacing.budget)
    due = [w.pacing.due(tree.began, tree.cost, 100.0 + period * (k + 0.5) / 8) for k in range(10)]
    assert [d for d, _ in due] == [0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1.0, 1.0]
    assert [n - 100.0 for _, n in due[:4]] == pytest.approx([period / 4] * 2 + [period / 2] * 2)
    assert w._sleep(100.0) == pytest.approx((period / 4, 100.0 + period / 4))
    assert w.pace() == "big tree: a full sweep every 2.4s, 2.9% of a core; recently edited files every 0.1s"


def test_html_edit_sends_reload_and_css_edit_sends_css(watched):
    _, w, port, site = watched
    with client(port) as ws:
        recv(ws)
        write(site / "index.html", "<h1>changed</h1>")
        assert json.loads(recv(ws))["type"] == "reload"
        w.wait_for(r"index.html changed: reload sent to broadcaster PID")
        write(site / "style.css", "h1 { color: red }")
        assert json.loads(recv(ws))["type"] == "css"
        w.wait_for(r"style.css changed: css sent")


def test_poll_mode_cli(procs, broadcaster, site):
    proc, port = broadcaster
    w = procs(module("watcher") + [site, "--ws-port", port, "--poll", "--interval", "0.05"])
    w.wait_for(r"polling \(.*every 0.05s")
    with client(port) as ws:
        recv(ws)
        write(site / "app.js", "// edited")
        assert json.loads(recv(ws))["type"] == "reload"


@pytest.mark.portable_too
def test_no_broadcaster_says_so_once_and_finds_it_later(procs, site):
    port = free_port()
    w = procs(module("watcher") + [site, "--ws-port", port, "--interval", "0.05"])
    w.wait_for("watching")
    write(site / "index.html", "1")
    w.wait_for(f"no broadcaster listens on port {port}")
    b = procs(module("broadcaster") + ["--port", port])
    b.wait_for("ready on")
    with client(port) as ws:
        recv(ws)
        write(site / "index.html", "2")
        assert json.loads(recv(ws))["type"] == "reload"
    assert sum("no broadcaster" in line for line in w.seen) == 1


DECOY = """
import signal, socket, sys
signal.signal(signal.SIGUSR1, lambda *_: print("DECOY SIGNALLED", flush=True))
signal.signal(signal.SIGUSR2, lambda *_: print("DECOY SIGNALLED", flush=True))
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
print("decoy ready", flush=True)
while True: signal.pause()
"""


@pytest.mark.portable_too
def test_decoy_naming_reload_server_is_never_signalled(procs, site, tmp_path):
    port = free_port()
    script = tmp_path / "decoy.py"
    script.write_text(DECOY)
    # Its command line mentions reload_server.py and it listens on the port.
    decoy = procs([sys.executable, "-u", script, port, "reload_server.py"])
    decoy.wait_for("decoy ready")
    w = procs(module("watcher") + [site, "--ws-port", port, "--interval", "0.05"])
    w.wait_for("watching")
    write(site / "index.html", "x")
    w.wait_for("no broadcaster listens")
    result = cli("sigreload", "reload", "--ws-port", port)
    assert result.returncode != 0
    assert "DECOY SIGNALLED" not in decoy.output()


@pytest.mark.portable_too
def test_reload_and_css_commands(broadcaster):
    proc, port = broadcaster
    with client(port) as ws:
        recv(ws)
        for command, kind in [("reload", "reload"), ("css", "css")]:
            result = cli("sigreload", command, "--ws-port", port)
            assert result.returncode == 0, result.stderr
            assert f"PID {proc.pid}" in result.stdout
            assert json.loads(recv(ws))["type"] == kind


def test_a_command_line_runs_the_broadcaster_only_when_it_starts_it():
    py = sys.executable
    runs = [[py, "-u", "-P", "-m", "sigreload.broadcaster", "--port", "0"], ["/venv/bin/sigreload-broadcast"],
            [py, "/venv/bin/sigreload-broadcast", "-v"], ["python3", "reload_server.py", "--port", "5678"],
            [py, "-u", "-c", interpreter.BOOTSTRAP, "sigreload.broadcaster", "--port", "0"]]  # 3.10
    merely_names = [["vim", "reload_server.py"], [py, "-m", "sigreload.broadcasterx"], [py, "-m", "sigreload"],
                    [py, "-c", "import sigreload.broadcaster"],
                    [py, "-c", "print(1)", "sigreload.broadcaster"], ["less", "sigreload-broadcast.log"], []]
    assert all(discovery.runs_broadcaster(argv) for argv in runs)
    assert not any(discovery.runs_broadcaster(argv) for argv in merely_names)


@pytest.mark.portable_too
@pytest.mark.parametrize("how", ["module", "console script", "the clone's reload_server.py"])
def test_the_broadcaster_is_found_however_it_was_started(procs, how):
    argv = {"module": module("broadcaster"), "console script": [shutil.which("sigreload-broadcast") or "missing"],
            "the clone's reload_server.py": [sys.executable, "-u", ROOT / "reload_server.py"]}[how]
    proc = procs(argv + ["--port", "0"], cwd="/")
    port = int(proc.wait_for(r"ready on ws://127\.0\.0\.1:(\d+)").group(1))
    result = cli("sigreload", "reload", "--ws-port", port)
    assert result.returncode == 0 and f"PID {proc.pid}" in result.stdout, result.stderr


@pytest.mark.portable_too
def test_reload_command_without_broadcaster_fails_with_one_line():
    result = cli("sigreload", "reload", "--ws-port", free_port())
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "no broadcaster listens on port" in result.stderr


def test_while_polling_what_pages_use_is_looked_at_every_tick(tmp_path):
    """However slow the sweep of a big tree, a file a page uses is seen in a tick."""
    for d in range(5):
        for f in range(20):
            (tmp_path / f"d{d}").mkdir(exist_ok=True)
            (tmp_path / f"d{d}" / f"f{f}.css").write_text("old")
            os.utime(tmp_path / f"d{d}" / f"f{f}.css", (1e9, 1e9))
    used, cold = str(tmp_path / "d1" / "f3.css"), tmp_path / "d2" / "f4.css"
    got = queue.Queue()
    reports = [[used, str(tmp_path / "nowhere.css"), "/etc/passwd"]]
    w = file_watching.SimpleWatcher(callback=got.put, interval=0.05, uses=lambda: reports.pop() if reports else None)
    w.watch_tree(str(tmp_path))
    w.pacing.budget = 1e-7  # a sweep every few hours: as on a tree far too big to sweep
    w.start()
    try:
        write(tmp_path / "d1" / "f3.css", "new")
        assert got.get(timeout=2 * SCALE) == [used]
        assert set(w.used) | set(w.hot) == {used}  # only files of the tree (now hot too)
        cold.write_text("new")  # the sweep would find it, hours from now
        with pytest.raises(queue.Empty):
            got.get(timeout=1)
    finally:
        w.stop()


LATE_MAILBOX = """
import signal, socket, sys
from sigreload.contract import messages
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
print("listening", flush=True)
s.accept()  # the test's go
box = messages.Mailbox(int(sys.argv[1]))
print("mailbox made", flush=True)
signal.pause()
"""


@pytest.mark.portable_too
def test_a_broadcaster_found_before_it_made_its_folder_is_looked_at_again(procs, tmp_path):
    """The broadcaster listens, then makes its message folder: a watcher that
    found it in between must not take "no folder" for its last word."""
    port = free_port()
    (tmp_path / "reload_server.py").write_text(LATE_MAILBOX)  # as the broadcaster is run from a clone
    late = procs([sys.executable, "-u", tmp_path / "reload_server.py", port],
                 env={**os.environ, "PYTHONPATH": str(ROOT)})
    late.wait_for("listening")
    locator = discovery.Locator(int(port))
    met = []
    locator.found.append(lambda: met.append(locator.folder_for))
    assert locator.look() is None and locator.server is not None  # found, no folder yet
    socket.create_connection(("127.0.0.1", int(port))).close()  # go: make the folder
    late.wait_for("mailbox made")
    until(lambda: locator.folder() is not None, 5, "the folder made after the port was never found")
    assert locator.folder() == messages.folder_of(psutil.Process(late.pid)) and len(met) == 1


def test_a_dead_broadcasters_mark_read_at_start_up_is_not_taken_for_the_folder(tmp_path):
    """A broadcaster starting on a port reads a dead one's MARK before it removes
    that folder: a watcher looking at its open files then must not take it (CI saw
    a watcher keep the removed folder: every message after was "No such file")."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / "sigreload-1-stale"
    stale.mkdir(mode=0o700)
    (stale / messages.MARK).write_text(dead.stdout.strip())
    me = psutil.Process()
    with open(stale / messages.MARK) as reading:  # as Mailbox's clean-up holds it, for a moment
        assert reading.read() and messages.folder_of(me) is None
        box = messages.Mailbox(int(free_port()))
        try:
            assert messages.folder_of(me) == box.folder
        finally:
            box.close()


@pytest.mark.portable_too
def test_a_killed_broadcasters_folder_and_what_its_pages_used_are_gone_for_the_next_on_its_port(procs, tmp_path):
    port = free_port()
    first = procs(module("broadcaster") + ["--port", port])
    first.wait_for("ready on")
    old = messages.folder_of(psutil.Process(first.pid))
    assert old is not None and messages.private(old)
    for channel in used_paths.CHANNELS.values():
        write(old / channel.name, str(tmp_path / "old.html"))  # left by a broadcaster and a server killed with -9
    first.kill()
    second = procs(module("broadcaster") + ["--port", port])
    second.wait_for("ready on")
    assert not old.exists()
    procs(module("http_server") + [tmp_path, "--port", "0", "--inject", port]).wait_for("serving")
    new = messages.folder_of(psutil.Process(second.pid))
    until(lambda: (new / used_paths.CHANNELS["http"].name).exists(), 5, "the HTTP server wrote no list")
    assert used_paths.read(new) == {"http": [], "pages": []}  # nothing from the killed ones: lists made anew, empty


def test_the_http_server_and_the_snippets_tell_the_watcher_what_pages_use(procs, broadcaster, tmp_path):
    _, port = broadcaster
    site = tmp_path / "site"
    (site / "css").mkdir(parents=True)
    write(site / "index.html", "<!doctype html><link rel=stylesheet href=css/a.css><h1>x</h1>")
    write(site / "css" / "a.css", "h1 {}")
    write(site / "other.html", "other")
    http = procs(module("http_server") + [site, "--port", "0", "--inject", port])
    url = http.wait_for(r"at (http://\S+/)").group(1)
    import urllib.request

    for path in ("", "css/a.css"):
        urllib.request.urlopen(url + path, timeout=5 * SCALE).read()
    locator = discovery.Locator(int(port))
    locator.look()
    uses = UsedFiles(locator, str(site))
    assert uses() == [str(site / "index.html"), str(site / "css" / "a.css")]
    assert uses() is None  # unchanged: nothing read
    with client(port) as ws:
        recv(ws)
        for hostile in ("junk", json.dumps({"type": "using", "paths": ["/x"] * 65}),
                        json.dumps({"type": "using", "paths": ["relative.html"]}), json.dumps([1, 2])):
            ws.send(hostile)  # ignored
        ws.send(json.dumps({"type": "using", "paths": ["/other.html", "/../../etc/passwd", "/sub/"]}))
        until(lambda: uses.stamp != used_paths.stamp(uses.folder), 5, "the broadcaster wrote nothing")
        assert uses()[-2:] == [str(site / "other.html"), str(site / "sub" / "index.html")]
    until(lambda: not used_paths.read(uses.folder).get("pages"), 5,
          "a page that left is still counted")


def test_start_right_after_an_error_always_starts_anew(tmp_path):
    """on_error runs in the dying thread, which still says it is alive: a
    start() at once did nothing (16 of 500 tries on Python 3.13)."""
    failed = queue.Queue()

    def broken():
        raise RuntimeError("a bug in what pages use")

    # what pages use is asked on every tick: each thread fails on its first
    w = file_watching.SimpleWatcher(callback=None, interval=0.01, on_error=failed.put, uses=broken)
    w.watch_tree(str(tmp_path))
    w.start()
    try:
        for attempt in range(300):
            try:
                failed.get(timeout=5 * SCALE)
            except queue.Empty:
                raise AssertionError(f"start() after error {attempt} started nothing") from None
            w.start()
    finally:
        w.stop()
def test_a_save_before_notifications_start_is_seen_at_once_and_keeps_them(tmp_path, caplog):
    """A file saved between the first scan and the start of notifications (the
    watcher process waits for its broadcaster in between): seen at once, and
    no proof that notifications fail (ext4, 2 of 12 restarts of a soak)."""
    for i in range(300):
        (tmp_path / f"f{i}.txt").write_text("old")
    page = tmp_path / "page.html"
    page.write_text("1")
    got = queue.Queue()
    w = file_watching.SimpleWatcher(callback=got.put, interval=0.02, hints=True)
    w.watch_tree(str(tmp_path))
    page.write_text("2")  # saved in the window: no notification can name it
    touch_later(page, -3600)  # and long enough ago that the sweep would call it a lost one
    w.start()
    try:
        assert got.get(timeout=2 * SCALE) == [str(page)]
        assert w.hinting
        page.write_text("3")  # notifications still name what changes
        assert got.get(timeout=2 * SCALE) == [str(page)]
        assert w.hinting and "without a notification" not in caplog.text
    finally:
        w.stop()


IGNORED = [".goutputstream-Q1W2E3", ".#index.html", "index.html~", "4913", ".index.html.swp", ".index.html.swx",
           "page.tmp"]  # never watched
RENAMED = ["sedAb12Cd", "tmpk2j_9x0q", "index.html.aB3xYz", ".index.html.Zq81Lm", "index.html.1f3a9c0e"]


def test_editors_temporary_names_never_reach_the_pages(procs, broadcaster, site):
    """What an editor or atomic writer renames into place is the change; its
    temporary (gone by the time the burst is told) is none, and gedit's is never watched."""
    for name in IGNORED:
        (site / name).write_text("x")
    assert not {str(site / name) for name in IGNORED} & file_tree.snapshot(str(site)).keys()
    assert not signatures.transient(str(site / "sedentary")) and not signatures.transient(str(site / "app.coffee"))
    (site / "sedAb12Cd").write_text("still there: a real file, or a save still writing")
    assert not signatures.transient(str(site / "sedAb12Cd"))
    (site / "sedAb12Cd").unlink()
    _, port = broadcaster
    notifier = watcher.Notifier(root=str(site), locator=discovery.Locator(port))
    notifier.locator.wait_for(5 * SCALE)
    with client(port) as ws:
        recv(ws)
        notifier([str(site / name) for name in RENAMED] + [str(site / "index.html")])
        message = json.loads(recv(ws))
        assert message["type"] == "reload" and message["paths"] == ["/index.html"], message
        notifier([str(site / "sedXy12Zw")])  # a burst of nothing but a temporary: no signal at all
        notifier([str(site / "sedentary")])
        assert json.loads(recv(ws))["paths"] == ["/sedentary"]
        # sed's all-lowercase 0.5%, renamed onto the page in the same burst (the fresh clone, 1 in 30 saves)
        notifier([str(site / "sedvymnqj"), str(site / "index.html")])
        assert json.loads(recv(ws))["paths"] == ["/index.html"]


def test_sed_and_atomic_saves_reload_with_the_real_name_only(watched):
    _, w, port, site = watched
    page = site / "index.html"
    with client(port) as ws:
        recv(ws)
        for round in range(3):
            subprocess.run(["sed", "-i", f"s/<h1>[^<]*/<h1>sed {round}/", str(page)], check=True)
            assert json.loads(recv(ws))["paths"] == ["/index.html"]
            tmp = site / f".goutputstream-ABC12{round}"
            tmp.write_text(f"<h1>gedit {round}</h1>")
            os.replace(tmp, page)
            assert json.loads(recv(ws))["paths"] == ["/index.html"]


def test_a_file_emptied_by_an_in_place_save_waits_for_its_write(tmp_path):
    """``open(page, "w")`` empties the page at once; a writer descheduled
    before its write (a loaded machine) left a burst that looked settled on
    an empty page: two calls, and every page reloaded twice (the soak: 6 of
    649 in-place writes). A file open after a write holds its burst."""
    page = tmp_path / "index.html"
    page.write_text("<h1>old</h1>")
    got = queue.Queue()
    w = file_watching.SimpleWatcher(callback=got.put, hints=True)
    w.watch_tree(str(tmp_path))
    w.start()
    try:
        for round in range(3):
            with open(page, "w") as f:  # emptied now
                threading.Event().wait(0.1)  # the writer descheduled: twenty times a burst's settling
                f.write(f"<h1>new {round}</h1>")
            assert got.get(timeout=5 * SCALE) == [str(page)]
            with pytest.raises(queue.Empty):
                got.get(timeout=0.5)
    finally:
        w.stop()
