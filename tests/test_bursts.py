"""A burst still being written is held until it is done (issue 36, 3): a git
checkout is one message, however slow the machine or a filter (git holds
index.lock meanwhile); ``sed -i``'s temporary never reaches the pages, even
when sed is descheduled between writing it and renaming it into place."""

import json
import os
import subprocess
import time

import pytest

from conftest import client, drain, module, recv

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=a",
       "-c", "advice.detachedHead=false"]
SLOW = 3  # files of the 60 that pass a smudge filter taking 0.15 s each (as LFS's, or a loaded machine)


def git(site, *args):
    subprocess.run([*GIT, *args], cwd=site, check=True, capture_output=True)


def watcher(procs, site, port):
    w = procs(module("watcher") + [site, "--ws-port", port])
    w.wait_for("watching")
    return w


@pytest.fixture
def repository(site):
    """The demo copy as a git work tree: branch a, and b with 60 pages changed."""
    pages = site / "pages"
    pages.mkdir()
    git(site, "init", "-q")
    git(site, "config", "filter.slow.smudge", "sh -c 'sleep 0.15; cat'")
    git(site, "config", "filter.slow.clean", "cat")
    (site / ".gitattributes").write_text("pages/slow*.html filter=slow\n")
    names = [f"slow{i}.html" if i < SLOW else f"p{i:02}.html" for i in range(60)]
    for branch in ("a", "b"):
        if branch == "b":
            git(site, "checkout", "-q", "-b", "b")
        for name in names:
            (pages / name).write_text(f"<h1>{name} on {branch}</h1>\n")
        git(site, "add", "-A")
        git(site, "commit", "-q", "-m", branch)
    git(site, "checkout", "-q", "a")
    return site


def test_a_git_checkout_of_60_files_is_one_message(procs, broadcaster, repository):
    _, port = broadcaster
    watcher(procs, repository, port)
    with client(port) as ws:
        recv(ws)
        for branch in ["b", "a"] * 4:
            git(repository, "checkout", "-q", branch)
            first = json.loads(recv(ws, 10))
            assert first["type"] == "reload", first
            assert drain(ws) == [], f"checkout of {branch}: more than one message"


def test_sed_i_thirty_times_is_thirty_messages_naming_the_page_only(procs, broadcaster, site):
    _, port = broadcaster
    watcher(procs, site, port)
    page = site / "index.html"
    with client(port) as ws:
        recv(ws)
        for i in range(30):
            subprocess.run(["sed", "-i", f"s/<h1>[^<]*/<h1>sed {i}/", str(page)], check=True)
            assert json.loads(recv(ws, 10))["paths"] == ["/index.html"], f"save {i}"
        assert drain(ws) == []


def test_a_descheduled_seds_temporary_is_held_not_sent(procs, broadcaster, site):
    """sed -i writes sedXXXXXX and renames it onto the page; a machine under load
    may run something else for a while between the two (the sleep is that)."""
    _, port = broadcaster
    watcher(procs, site, port)
    page = site / "index.html"
    with client(port) as ws:
        recv(ws)
        for i in range(3):
            temporary = site / f"sedAb1{i}Cd"
            temporary.write_text(f"<h1>slow sed {i}</h1>")
            time.sleep(0.15)  # the writer, descheduled: no wait of the test's
            os.replace(temporary, page)
            assert json.loads(recv(ws, 10))["paths"] == ["/index.html"], f"save {i}"
        assert drain(ws) == []
