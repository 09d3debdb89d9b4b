"""The proof a broadcaster gives an open tab (sigreload/secret.py): the same
for the same user, folder and port, run after run; another for anything
else; its secret kept 0600 in a folder of the user's alone, never through a
planted symlink."""

import json
import os
import stat

from conftest import client, free_port, module, recv
from sigreload import secret


def proof_of(procs, folder, port, state, nonce="n0nce"):
    proc = procs(module("broadcaster") + ["--port", port], cwd=folder,
                 env={**os.environ, "XDG_STATE_HOME": str(state)})
    proc.wait_for("ready on")
    with client(port) as ws:
        assert json.loads(recv(ws))["type"] == "hello"
        ws.send(json.dumps({"type": "challenge", "nonce": nonce}))
        answer = json.loads(recv(ws))
    proc.kill()
    assert answer["type"] == "proof"
    return answer["proof"]


def test_the_same_folder_proves_the_same_run_after_run_and_nothing_else_does(procs, tmp_path):
    here, there, state = tmp_path / "here", tmp_path / "there", tmp_path / "state"
    here.mkdir()
    there.mkdir()
    port = free_port()
    first = proof_of(procs, here, port, state)
    assert proof_of(procs, here, port, state) == first  # restarted: trusted
    assert proof_of(procs, there, port, state) != first  # another folder
    assert proof_of(procs, here, free_port(), state) != first  # another port
    assert proof_of(procs, here, port, tmp_path / "another-users-state") != first  # another secret
    assert proof_of(procs, here, port, state, "other") != first
    kept = state / "sigreload"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o700
    assert stat.S_IMODE((kept / secret.NAME).stat().st_mode) == 0o600


def test_a_secret_that_others_may_read_or_a_planted_link_is_never_used(tmp_path):
    folder = tmp_path / "sigreload"
    folder.mkdir(mode=0o700)
    planted = tmp_path / "theirs"
    planted.write_bytes(b"k" * secret.SIZE)
    (folder / secret.NAME).symlink_to(planted)
    assert secret.user_secret(folder) is None
    (folder / secret.NAME).unlink()
    (folder / secret.NAME).write_bytes(b"k" * secret.SIZE)
    (folder / secret.NAME).chmod(0o644)
    assert secret.user_secret(folder) is None
    (folder / secret.NAME).chmod(0o600)
    assert secret.user_secret(folder) == b"k" * secret.SIZE
    folder.chmod(0o755)  # a folder others may enter
    assert secret.user_secret(folder) is None


def test_a_nonce_that_is_not_a_short_printable_string_gets_no_proof():
    for nonce in (None, 1, "", "x" * 129, "a\nb", ["x"]):
        assert secret.proof(b"k", 1, nonce) is None
    assert len(secret.proof(b"k", 1, "x" * 128)) == 64
