"""The HTTP server: fresh content always, nothing outside ROOT, loopback names only."""

import http.client
import os
from urllib.parse import urlsplit

from conftest import cli, free_port, module


def get(url, path, headers=None):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    # http.client would normalise nothing: the path goes out as written.
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


def test_serves_files_with_no_cache_and_full_answers_to_conditional_requests(http_server, site):
    _, url = http_server
    response, body = get(url, "/style.css")
    assert response.status == 200 and body == (site / "style.css").read_bytes()
    assert response.headers["Cache-Control"] == "no-cache"
    # A save within the same second as the last fetch must not get a 304.
    again, body = get(url, "/style.css", {"If-Modified-Since": response.headers["Last-Modified"]})
    assert again.status == 200 and body


def test_paths_outside_root_dotfiles_and_vcs_are_not_served(http_server, site, tmp_path):
    _, url = http_server
    (tmp_path / "secret.txt").write_text("secret")
    (site / ".env").write_text("TOKEN=x")
    (site / ".git").mkdir()
    (site / ".git" / "config").write_text("[core]")
    os.symlink(tmp_path / "secret.txt", site / "link.txt")
    for path in ["/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/.env",
                 "/.git/config", "/%2egit/config", "/link.txt"]:
        response, body = get(url, path)
        assert response.status == 404, path
        assert b"secret" not in body and b"TOKEN" not in body


def test_foreign_host_header_is_refused(http_server):
    _, url = http_server
    port = urlsplit(url).port
    assert get(url, "/", {"Host": "evil.example"})[0].status == 403
    for host in [f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "app.localhost"]:
        assert get(url, "/", {"Host": host})[0].status == 200, host


def test_port_in_use_is_one_line(http_server, site):
    _, url = http_server
    port = urlsplit(url).port
    result = cli("http_server", site, "--port", port)
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr == f"sigreload-http: port {port} is in use; stop that server or pass --port\n"


def test_missing_folder_is_one_line(tmp_path):
    result = cli("http_server", tmp_path / "nope", "--port", free_port())
    assert result.returncode != 0
    assert result.stderr.strip().endswith("nope: no such folder")
    assert result.stderr.count("\n") == 1


def test_sigusr1_by_mistake_is_harmless(http_server):
    import signal

    proc, url = http_server
    os.kill(proc.pid, signal.SIGUSR1)
    assert get(url, "/")[0].status == 200
    assert proc.popen.poll() is None
