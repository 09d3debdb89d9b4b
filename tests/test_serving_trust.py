"""What the file server serves, against a user who can write into the served
folder: no VCS folder, no symlink to what would be refused, no race between
a check and an open, and a NUL in a path is a 400, not a traceback."""

import http.client
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from conftest import SCALE, module, until

SECRET = b"only the developer may read this"


def serve(procs, root, *flags):
    proc = procs(module("http_server") + [root, "--port", "0", "-v", *flags])
    return proc, proc.wait_for(r"at (http://\S+/)").group(1)


def get(url, path, conn=None):
    parts = urlsplit(url)
    own = conn is None
    conn = conn or http.client.HTTPConnection(parts.hostname, parts.port, timeout=10 * SCALE)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    if own:
        conn.close()
    return response, body


@pytest.mark.parametrize("name", ["CVS", "_darcs", "cvs", ".hg", ".svn", ".bzr", ".git"])
def test_every_vcs_folder_the_watcher_ignores_is_refused_and_unlisted(procs, tmp_path, name):
    from sigreload.watching import signatures
    assert name.casefold() in {n.casefold() for n in signatures.DEFAULT_IGNORE}
    (tmp_path / name).mkdir()
    (tmp_path / name / "Entries").write_bytes(SECRET)
    (tmp_path / "shown.txt").write_text("x")
    _, url = serve(procs, tmp_path)
    response, body = get(url, f"/{name}/Entries")
    assert response.status == 404 and SECRET not in body
    assert get(url, f"/{name}/")[0].status == 404
    listing = get(url, "/")[1]
    assert b"shown.txt" in listing and f">{name}/<".encode() not in listing


def test_a_symlink_is_served_only_when_its_target_would_be(procs, tmp_path):
    (tmp_path / ".env").write_bytes(SECRET)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_bytes(SECRET)
    (tmp_path / "CVS").mkdir()
    (tmp_path / "CVS" / "Root").write_bytes(SECRET)
    (tmp_path / "real.txt").write_text("real")
    (tmp_path / "sub").mkdir()
    os.symlink(".env", tmp_path / "env.txt")
    os.symlink(".git", tmp_path / "git")
    os.symlink(tmp_path / "CVS" / "Root", tmp_path / "root.txt")  # absolute, inside the root
    os.symlink("real.txt", tmp_path / "alias.txt")
    os.symlink("../real.txt", tmp_path / "sub" / "up.txt")
    os.symlink(tmp_path / "real.txt", tmp_path / "absolute.txt")
    _, url = serve(procs, tmp_path)
    for path in ["/env.txt", "/git/config", "/root.txt"]:
        response, body = get(url, path)
        assert response.status == 404 and SECRET not in body, path
    for path in ["/alias.txt", "/sub/up.txt", "/absolute.txt"]:
        assert get(url, path)[1] == b"real", path
    listing = get(url, "/")[1]
    assert b"alias.txt" in listing and b"env.txt" not in listing and b'"git/"' not in listing


def test_a_nul_in_a_path_is_a_400_and_one_debug_line(procs, tmp_path):
    (tmp_path / "x").write_text("x")
    proc, url = serve(procs, tmp_path)
    for path in ["/x%00", "/%00/x", "/x%00.html"]:
        response, _ = get(url, path)
        assert response.status == 400, path
    assert get(url, "/x")[1] == b"x"  # still serving
    until(lambda: proc.output().count('"GET /x%00.html HTTP/1.1" 400') == 1, 5, "the debug line")
    assert "Traceback" not in proc.output()


def test_a_file_swapped_for_a_symlink_never_leaks(procs, tmp_path):
    """A user who can write into the folder swaps a file (and a folder) for a
    symlink to a secret outside it, as fast as they can, while the page is
    requested: 0 of 10,000 answers carry the secret."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "page.txt").write_bytes(SECRET)
    root = tmp_path / "root"
    (root / "dir").mkdir(parents=True)
    (root / "page.txt").write_text("public")
    (root / "dir" / "page.txt").write_text("public")
    stop = threading.Event()

    def swap(name, target, is_dir):
        here, plain, link = root / name, root / f"{name}.plain", root / f"{name}.link"
        while not stop.is_set():
            os.symlink(target, link)
            if is_dir:  # a folder cannot replace a symlink, nor a symlink a folder: renames
                os.rename(here, plain)
                os.rename(link, here)  # now a symlink out
                os.rename(here, link)
                os.rename(plain, here)  # and back
                os.unlink(link)
            else:
                plain.write_text("public")
                os.replace(link, here)  # now a symlink out
                os.replace(plain, here)  # and back

    proc, url = serve(procs, root)
    swappers = [threading.Thread(target=swap, args=("page.txt", outside / "page.txt", False)),
                threading.Thread(target=swap, args=("dir", outside, True))]
    for thread in swappers:
        thread.start()

    def requests(n):
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10 * SCALE)
        leaks = served = dropped = 0
        for i in range(n):
            try:
                response, body = get(url, "/page.txt" if i % 2 else "/dir/page.txt", conn)
            except (http.client.HTTPException, ConnectionError):
                dropped += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10 * SCALE)
                continue
            leaks += SECRET in body
            served += body == b"public"
            if response.will_close:
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10 * SCALE)
        conn.close()
        return leaks, served, dropped

    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(requests, [2500] * 4))
    finally:
        stop.set()
        for thread in swappers:
            thread.join()
    leaks, served, dropped = (sum(r[i] for r in results) for i in range(3))
    print(f"\n10000 requests while swapping: {leaks} leaked, {served} served the public file, {dropped} dropped")
    assert leaks == 0, f"{leaks} of 10000 answers carried the secret"
    assert dropped == 0 and "Traceback" not in proc.output()
    assert served > 100  # the race was run: the public file was served between the swaps


def test_a_malformed_host_is_refused_not_a_traceback(procs, tmp_path):
    """Found by tests/test_properties.py: urlsplit raises on "[" (Invalid IPv6 URL)."""
    (tmp_path / "x").write_text("x")
    proc, url = serve(procs, tmp_path)
    parts = urlsplit(url)
    for host in ["[", "[::1", "a]b["]:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10 * SCALE)
        conn.putrequest("GET", "/x", skip_host=True)
        conn.putheader("Host", host)
        conn.endheaders()
        assert conn.getresponse().status == 400, host  # not a name or an address and port
        conn.close()
    assert "Traceback" not in proc.output()


def test_a_404_page_that_is_a_symlink_to_a_refused_file_gives_our_own(procs, tmp_path):
    (tmp_path / ".env").write_bytes(SECRET)
    os.symlink(".env", tmp_path / "404.html")
    proc, url = serve(procs, tmp_path)
    response, body = get(url, "/nope")
    assert response.status == 404 and SECRET not in body and b"Nothing at this address" in body
    assert "Traceback" not in proc.output()
