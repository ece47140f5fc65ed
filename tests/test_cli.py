"""The CLI's own logic: help lists the subcommands; `task` accepts every documented shape."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from graders import cli
from graders.commands.task import build_envelope


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "graders.cli", "--help"], capture_output=True,
                         text=True, timeout=60).stdout
    for name in ("demo", "up", "task", "grade", "check", "rubric"):
        if any(n == name for n, _ in cli._available()):
            assert name in out


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_task_accepts_bare_input():
    env = build_envelope({"source": "s", "records": []}, token="t", task_id="x1", task_type="parse")
    assert env["type"] == "submit" and env["task_id"] == "x1" and env["token"] == "t"
    assert env["payload"] == {"task_type": "parse", "input": {"source": "s", "records": []}}


def test_task_accepts_payload_and_envelope():
    env = build_envelope({"task_type": "stats", "input": {"source": "s", "records": []}},
                         token="t", task_id=None, task_type="triage")
    assert env["payload"]["task_type"] == "stats" and env["task_id"].startswith("task-")
    whole = {"v": 1, "type": "submit", "msg_id": "m", "task_id": "k", "payload": {}}
    env = build_envelope(whole, token="t", task_id=None, task_type="triage")
    assert env == {**whole, "token": "t"}


def test_task_rejects_non_object():
    with pytest.raises(ValueError):
        build_envelope([1, 2], token="t", task_id=None, task_type="triage")
    json.dumps(build_envelope({}, token="t", task_id="a", task_type="triage"))


def test_up_port_plan():
    from graders.commands.up import port_plan
    assert port_plan(7000) == {"orchestrator": (7000, 7100), "collector": (7001, 7101),
                               "analyzer": (7002, 7102), "reporter": (7003, 7103)}
    with pytest.raises(ValueError):
        port_plan(65500)


def test_up_runs_the_reference_and_task_reaches_it(tmp_path):
    """`faultdrill up` serves tasks on its fixed ports; `--for` stops it cleanly."""
    import random
    import socket
    import time
    base = random.Random(1129).randrange(20000, 30000)  # below the ephemeral range
    for port in (base, base + 1, base + 2, base + 3, base + 100, base + 101, base + 102, base + 103):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(f"port {port} is busy on this machine")
    up = subprocess.Popen([sys.executable, "-m", "graders.cli", "up", "--port-base", str(base),
                           "--token", "tok-123", "--for", "20", "--quiet"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            lines.append(line)
            if "Ctrl-C" in line or not line:
                break
        assert any(f"127.0.0.1:{base}" in l for l in lines), lines
        task = tmp_path / "t.json"
        task.write_text(json.dumps({"source": "s", "records": [
            "2026-11-29T10:00:00Z ERROR api 5 boom"]}))
        done = subprocess.run([sys.executable, "-m", "graders.cli", "task", str(task), "--port",
                               str(base), "--token", "tok-123", "--task-id", "up-1"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["payload"]["result"]["summary"] == \
            "1 events from 1 services; 1 alerts; status critical"
        # the example file the README points at works as it is
        example = Path(__file__).resolve().parent.parent / "docs/examples/triage-task.json"
        done = subprocess.run([sys.executable, "-m", "graders.cli", "task", str(example),
                               "--port", str(base), "--token", "tok-123"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["payload"]["result"]["summary"] == \
            "4 events from 2 services; 3 alerts; status critical"
        up.send_signal(__import__("signal").SIGTERM)
        rest = up.communicate(timeout=30)[0]
        assert "nothing left running" in rest
        assert up.returncode == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(timeout=10)
