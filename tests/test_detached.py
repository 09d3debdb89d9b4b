"""A sigreload started to outlive its shell (``nohup … &``, ``setsid … &``)
keeps serving when that shell exits, and says so once (issue 36, 2); one
started plainly by a shell still follows it (test_hardening.py's
test_each_process_follows_a_killed_parent_without_polling)."""

import subprocess
import urllib.request

import psutil
import pytest

from apps import free_port, save
from conftest import SCALE, client, module, recv, running, until


@pytest.mark.parametrize("how", ["nohup", "setsid"])
def test_a_sigreload_started_with_nohup_or_setsid_keeps_serving_when_its_shell_exits(tmp_path, site, how):
    http, ws = free_port(), free_port()
    out = tmp_path / "nohup.out"
    out.touch()
    command = " ".join(f"'{a}'" for a in module("sigreload") + [site, "--port", http, "--ws-port", ws])
    # The shell waits for a line on stdin, then exits: sigreload took it for its parent meanwhile.
    script = f"unset SIGRELOAD_LIFELINE; {how} {command} >'{out}' 2>&1 & echo $!; read x; exit 0"
    shell = subprocess.Popen(["sh", "-c", script],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    main = psutil.Process(int(shell.stdout.readline()))
    family = [main]
    try:
        until(lambda: all(line in out.read_text() for line in ("serving", "ready on", "watching")), 20,
              f"sigreload did not start:\n{out.read_text()}")
        family += main.children(recursive=True)
        shell.stdin.close()  # the shell exits
        assert shell.wait(timeout=10 * SCALE) == 0
        until(lambda: "is gone; I keep running" in out.read_text(), 10, f"nothing said:\n{out.read_text()}")
        assert all(map(running, family)), out.read_text()
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/", timeout=10 * SCALE) as answer:
            assert answer.status == 200
        with client(ws) as ws_client:
            recv(ws_client)  # hello
            save(site / "index.html", "<h1>after the shell</h1>")
            assert '"reload"' in recv(ws_client, 10)
        assert out.read_text().count("is gone; I keep running") == 1
    finally:
        for proc in family:  # by PID: it is in no group of ours
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        if shell.poll() is None:
            shell.kill()
            shell.wait()
