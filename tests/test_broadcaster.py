"""The broadcaster as a real process: signals in, WebSocket messages out."""

import json
import os
import signal
import time
import urllib.request
from contextlib import ExitStack
from urllib.error import HTTPError

import pytest
from websockets.exceptions import ConnectionClosed

import conftest
from conftest import ROOT, client, deadline, module, recv


def test_ready_line_names_address_pid_and_kill_command(broadcaster):
    proc, port = broadcaster
    line = "\n".join(proc.seen)
    assert f"ws://127.0.0.1:{port}" in line
    assert f"(pid {proc.pid})" in line
    assert f"kill -USR1 {proc.pid}" in line


def test_sigusr1_reaches_every_client(broadcaster):
    proc, port = broadcaster
    with ExitStack() as stack:
        plain = [stack.enter_context(client(port, "/")) for _ in range(3)]
        snippets = [stack.enter_context(client(port)) for _ in range(3)]
        hellos = [json.loads(recv(ws)) for ws in snippets]
        assert {h["type"] for h in hellos} == {"hello"}
        os.kill(proc.pid, signal.SIGUSR1)
        assert [recv(ws) for ws in plain] == ["reload"] * 3
        for ws, hello in zip(snippets, hellos, strict=True):
            event = json.loads(recv(ws))
            assert event == {"type": "reload", "boot": hello["boot"], "generation": hello["generation"] + 1}


def test_sigusr2_sends_css_to_snippets_and_reload_to_plain_clients(broadcaster):
    proc, port = broadcaster
    with client(port, "/") as plain, client(port) as snippet:
        assert json.loads(recv(snippet))["type"] == "hello"
        os.kill(proc.pid, signal.SIGUSR2)
        assert json.loads(recv(snippet))["type"] == "css"
        # The original snippet reloads on ANY message: it only ever gets "reload",
        # and nothing on connect (else this first message would be something else).
        assert recv(plain) == "reload"


def test_client_messages_are_ignored_and_capped(broadcaster):
    proc, port = broadcaster
    with client(port, "/") as chatty, client(port, "/") as other:
        for _ in range(100):
            chatty.send("reload please")
        with pytest.raises(ConnectionClosed):
            chatty.send("x" * 100_000)
            recv(chatty)
        os.kill(proc.pid, signal.SIGUSR1)
        assert recv(other) == "reload"


def test_signals_from_the_first_millisecond_never_kill_it(procs):
    proc = procs(module("broadcaster") + ["--port", "0"])
    sent = 0
    end = deadline(10)
    while not any("ready on" in line for line in proc.seen):
        assert proc.popen.poll() is None, proc.output()
        assert time.monotonic() < end, "never became ready"
        os.kill(proc.pid, signal.SIGUSR1)
        os.kill(proc.pid, signal.SIGUSR2)
        sent += 2
    port = int(proc.wait_for(r"ready on ws://127\.0\.0\.1:(\d+)").group(1))
    assert sent > 10
    with client(port, "/") as ws:
        os.kill(proc.pid, signal.SIGUSR1)
        assert recv(ws) == "reload"
    assert proc.popen.poll() is None
    assert "Traceback" not in proc.output()


def drain(ws, quiet=0.5):
    return [json.loads(m) for m in conftest.drain(ws, quiet)]


def test_storm_gives_bounded_messages_and_the_last_after_the_last_signal(broadcaster):
    proc, port = broadcaster
    with client(port) as ws:
        first = json.loads(recv(ws))["generation"]
        for _ in range(1000):
            os.kill(proc.pid, signal.SIGUSR1)
        seen = drain(ws)
        assert 1 <= len(seen) <= 50, len(seen)
        assert [e["generation"] for e in seen] == list(range(first + 1, first + 1 + len(seen)))
        # Nothing left pending: one more signal gives exactly one message.
        os.kill(proc.pid, signal.SIGUSR1)
        assert drain(ws) == [{**seen[-1], "generation": seen[-1]["generation"] + 1}]


def test_serves_the_snippet_over_plain_http(broadcaster):
    _, port = broadcaster
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/reload.js") as response:
        assert response.headers["Content-Type"].startswith("text/javascript")
        assert response.read() == (ROOT / "snippet" / "reload.js").read_bytes()
    with pytest.raises(HTTPError) as error:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/")
    assert error.value.code == 426


@pytest.mark.portable_too
@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_stop_signals_close_with_1001_and_exit_0(broadcaster, stop):
    proc, port = broadcaster
    with client(port) as ws:
        recv(ws)
        os.kill(proc.pid, getattr(signal, stop))
        with pytest.raises(ConnectionClosed) as closed:
            recv(ws)
        assert closed.value.rcvd.code == 1001
    assert proc.exit_code(seconds=1) == 0


@pytest.mark.portable_too
def test_port_in_use_is_one_line_naming_port_and_owner(broadcaster, procs):
    first, port = broadcaster
    second = procs(module("broadcaster") + ["--port", port])
    assert second.exit_code() != 0
    lines = [line for line in second.seen if line.strip()]
    assert len(lines) == 1, lines
    assert f"port {port} is in use by PID {first.pid}" in lines[0]
