"""The CLI's own logic: help lists the subcommands; `task` accepts every documented shape."""
import json
import subprocess
import sys

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
