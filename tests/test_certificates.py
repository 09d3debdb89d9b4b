"""The HTTPS key sigreload makes: only in a folder of the user's that nobody
else may write to, never through a planted symlink, never left readable by
others without a word."""

import logging
import os
import stat
import subprocess

import pytest

from conftest import SCALE, free_port, module
from sigreload import certificates


def test_a_folder_others_may_write_to_is_refused_in_one_line(tmp_path):
    cache = tmp_path / "cache"
    (cache / "sigreload").mkdir(parents=True)
    (cache / "sigreload").chmod(0o1777)  # like /tmp: anybody may plant a file there
    victim = tmp_path / "their-file"
    victim.write_text("")
    (cache / "sigreload" / "key.tmp").symlink_to(victim)  # what used to receive the key
    (cache / "sigreload" / "key.pem").symlink_to(victim)
    proc = subprocess.Popen(module("http_server") + [str(tmp_path), "--port", str(free_port()), "--https"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "XDG_CACHE_HOME": str(cache)})
    try:
        _, err = proc.communicate(timeout=10 * SCALE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert "is not a folder of yours that only you may write to" in err
    assert victim.read_text() == ""


def test_a_planted_symlink_never_receives_the_key(tmp_path, monkeypatch):
    folder = tmp_path / "sigreload"
    folder.mkdir(mode=0o700)
    victim = tmp_path / "their-file"
    victim.write_text("")
    for name in ("key.tmp", "key.pem", "cert.pem"):
        (folder / name).symlink_to(victim)
    monkeypatch.setattr(certificates.secrets, "token_hex", lambda n: "guessed")
    (folder / ".key.pem.guessed").symlink_to(victim)  # even a name guessed right: O_EXCL|O_NOFOLLOW
    with pytest.raises(FileExistsError):
        certificates.kept(["localhost"], folder)
    assert victim.read_text() == ""
    monkeypatch.undo()
    (folder / ".key.pem.guessed").unlink()
    cert, key, made = certificates.kept(["localhost"], folder)
    assert made and not key.is_symlink() and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert victim.read_text() == ""


def test_a_key_readable_by_others_is_made_private_and_said_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, "sigreload.http")
    folder = tmp_path / "sigreload"
    folder.mkdir(mode=0o755)
    cert, key, made = certificates.kept(["localhost"], folder)
    key.chmod(0o644)
    assert certificates.kept(["localhost"], folder) == (cert, key, None)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert certificates.kept(["localhost"], folder) == (cert, key, None)
    said = [r.getMessage() for r in caplog.records if "readable by others" in r.getMessage()]
    assert len(said) == 1 and str(key) in said[0]


def test_a_kept_certificate_made_anew_says_why(procs, tmp_path):
    """Issue 36: when the machine's addresses change the certificate is made
    anew, and the line says what the kept one did not cover."""
    folder = tmp_path / "cache" / "sigreload"
    folder.mkdir(parents=True, mode=0o700)
    assert certificates.kept(["localhost"], folder)[2] == certificates.FIRST
    cert, key, made = certificates.kept(["localhost", "10.237.0.1"], folder)
    assert made == "it did not cover 10.237.0.1"
    assert certificates.kept(["localhost", "10.237.0.1"], folder) == (cert, key, None)
    old, _ = certificates.make(["localhost"])  # made when the machine had no 127.0.0.1, say
    cert.write_bytes(old)
    site = tmp_path / "site"
    site.mkdir()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    server = procs(module("http_server") + [site, "--https", "--port", "0"], env=env)
    line = server.wait_for(r"self-signed certificate .*fingerprint").string
    assert f"made anew in {folder}: it did not cover 127.0.0.1 (SHA-256 fingerprint" in line, line
