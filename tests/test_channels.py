"""The message folder's channels: each written by its ``write`` (or ``Writer``)
and read back by its ``read``, as the other process reads it; and every
channel described in ``sigreload.contract``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import sigreload.contract
from sigreload.contract import answering, app_down, changes, messages, reserve, used_paths, watcher_ids


def channels() -> list[messages.Channel]:
    return [changes.CHANNEL, reserve.CHANNEL, watcher_ids.CHANNEL, answering.CHANNEL, app_down.CHANNEL,
            *used_paths.CHANNELS.values()]


def test_every_channel_is_described_in_the_contract() -> None:
    doc = sigreload.contract.__doc__ or ""
    assert messages.MARK in doc
    for channel in channels():
        assert channel.name in doc, f"{channel.name} is not in sigreload/contract/__init__.py's table"
        assert channel.format and channel.writer and channel.reader and channel.removed
    assert len({c.name for c in channels()} | {messages.MARK}) == len(channels()) + 1


def test_changes_are_read_oldest_first_and_consumed(tmp_path: Path) -> None:
    changes.write(tmp_path, {"paths": ["/a.html"], "root": "r"})
    changes.write(tmp_path, {"error": "build failed"})
    (tmp_path / f"{time.time_ns():020d}-1.json").write_text("[1]")  # not an object: reload everything
    assert changes.read(tmp_path) == [{"paths": ["/a.html"], "root": "r"}, {"error": "build failed"}, {}]
    assert changes.read(tmp_path) == [] and changes.read(None) == []
    assert not list(tmp_path.iterdir())


def test_watcher_ids_say_the_folders_and_a_running_pid(tmp_path: Path) -> None:
    root = tmp_path / "site"
    root.mkdir()
    ids = watcher_ids.watched(str(root), str(tmp_path / "not-built-yet"))
    assert ids[:2] == [watcher_ids.root_id(root), watcher_ids.root_id(tmp_path)]
    assert watcher_ids.read(tmp_path) is None and watcher_ids.stamp(tmp_path) is None
    watcher_ids.write(tmp_path, ids)
    assert watcher_ids.read(tmp_path) == (ids, os.getpid()) and watcher_ids.stamp(tmp_path) is not None
    (tmp_path / watcher_ids.CHANNEL.name).write_text(json.dumps({"roots": ids, "pid": 2 ** 22 + 1}))
    assert watcher_ids.read(tmp_path) is None  # that watcher does not run
    watcher_ids.write(None, ids)  # no broadcaster: nothing, no error


def test_answering_windows_tell_the_apps_own_writes(tmp_path: Path) -> None:
    writer = answering.Writer(lambda: tmp_path)
    writer.begin(1, 100.0)
    assert answering.read(tmp_path) == [(100.0, None)]
    writer.end(1, 101.0)
    writer.end(2, 102.0)  # never began: nothing
    assert answering.read(tmp_path) == [(100.0, 101.0)]
    assert answering.app_wrote(tmp_path, 100.5) is True
    assert answering.app_wrote(tmp_path, 101.5) is False
    (tmp_path / answering.CHANNEL.name).write_text('{"not": "windows"}')
    assert answering.read(tmp_path) == [] and answering.app_wrote(tmp_path, 100.5) is False


def test_app_down_is_said_then_taken_back(tmp_path: Path) -> None:
    assert app_down.read(tmp_path) is None
    app_down.write(tmp_path, "is down: a syntax error")
    since = app_down.read(tmp_path)
    assert since is not None and abs(since - time.time()) < 60
    assert (tmp_path / app_down.CHANNEL.name).read_text() == "is down: a syntax error"
    app_down.write(tmp_path, None)
    assert app_down.read(tmp_path) is None
    app_down.write(tmp_path, None)  # again: nothing, no error


def test_used_paths_per_source_bounded_and_stamped(tmp_path: Path) -> None:
    folder: list[Path | None] = [None]
    http = used_paths.Writer(lambda: folder[0], "http")
    http.add("/site/a.html")  # no broadcaster yet: kept for when there is one
    assert used_paths.read(tmp_path) == {}
    folder[0] = tmp_path
    http.add("/site/b.css")
    assert used_paths.read(tmp_path) == {"http": ["/site/a.html", "/site/b.css"]}
    before = used_paths.stamp(tmp_path)
    pages = used_paths.Writer(lambda: tmp_path, "pages")
    pages.replace([f"/p{n}.html" for n in range(used_paths.MOST + 10)] + ["/new\nline"])
    assert used_paths.stamp(tmp_path) != before
    said = used_paths.read(tmp_path)
    assert len(said["pages"]) == used_paths.MOST - 1 and said["pages"][-1] == f"/p{used_paths.MOST + 9}.html"


def test_a_path_used_again_is_never_the_one_a_full_list_drops(tmp_path: Path) -> None:
    """A page open since before 300 others were rendered, rendered again,
    stays listed: the list was ordered by first use, and the open page's
    templates were dropped (r33n4: its edits then reloaded nothing)."""
    rendered = used_paths.Writer(lambda: tmp_path, "http")
    rendered.add("/t/index.html")
    for n in range(used_paths.MOST - 1):
        rendered.add(f"/t/many/{n}.html")
    rendered.add("/t/index.html")  # the open page, again
    for n in range(used_paths.MOST // 2):
        rendered.add(f"/t/more/{n}.html")
    listed = used_paths.read(tmp_path)["http"]
    assert "/t/index.html" in listed and len(listed) == used_paths.MOST
    assert listed[-1] == f"/t/more/{used_paths.MOST // 2 - 1}.html"


def test_a_whole_list_is_written_again_for_a_new_broadcasters_folder(tmp_path: Path) -> None:
    """Django's template folders were written once: a broadcaster restarted while
    the app ran never had them, and no edit was ever "no page rendered it" (r33a4)."""
    folder = [tmp_path / "first"]
    for f in ("first", "second"):
        (tmp_path / f).mkdir()
    dirs = used_paths.Writer(lambda: folder[0], "http")
    dirs.replace(["/app/templates"])
    folder[0] = tmp_path / "second"
    dirs.replace(dirs.paths)  # what each page does
    assert used_paths.read(tmp_path / "second") == {"http": ["/app/templates"]}
