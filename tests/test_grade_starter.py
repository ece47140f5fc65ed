"""Grader errors are only the grader's faults (H12 item a).

A candidate's misbehaviour — a missing record file, a reply member of the wrong shape, a
garbled HTTP answer — must be a failed check with evidence, never a "grader error"
(which is excluded from the score and tells the interviewer the kit is broken). The
starter, which stores nothing and implements little, is the natural probe: graded with a
fixed seed it must give 0 errors and pass exactly the checks its README promises.
"""
from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest

from graders import cli
from graders.checks.common import as_dict, as_list, dig, read_record
from graders.checks.registry import CheckFailed, all_checks
from graders.client import ClientError
from graders.harness import is_candidate_failure

ROOT = Path(__file__).resolve().parent.parent
STARTER = ROOT / "challenges" / "starter"

#: What the starter deserves: the happy path and the protocol basics it implements
#: (framing, auth, hello, health, idle timeout, one closed connection per attempt), plus
#: the checks a no-retry, no-memory orchestrator passes honestly — a definite error is not
#: retried because nothing is retried, a blackholed agent fails within the deadline
#: because one attempt times out. (security.token_refused no longer needs /metrics, which
#: the starter lacks; security.hostile_fuzz now judges each reply by SPEC §7 and finds the
#: starter accepting an upper-case-hex traceparent, SPEC §5.)
STARTER_PASSES = {
    "pipeline.triage_oracle", "pipeline.routes", "api.status_list",
    "security.token_refused", "security.no_token_leak", "security.malformed_frames",
    "security.idle_timeout", "security.connections_closed",
    "versioning.hello", "versioning.agent_version_only",
    "orchestration.no_retry_definite", "orchestration.blackhole_deadline",
    "health.readyz_agent_down", "observability.health_endpoints",
    # SPEC §2 ranges, §4 limits (16 MiB agents, replies), §5 token echo, §7 hello v2:
    # the starter implements all of them; number equality needs idempotency, which it lacks.
    "contract.config_ranges", "contract.largest_task", "contract.frame_limits",
    "contract.token_echo", "contract.hello_v2",
}


def _grade(path: Path, out: Path, seed: int) -> dict:
    assert cli.main(["grade", str(path), "--seed", str(seed), "--out", str(out), "--quiet"]) == 1  # some failed
    return json.loads((out / "results.json").read_text())


def _errors(data: dict) -> list[str]:
    return [t["name"] + "\n" + t["output"] for t in data["tests"] if t["extra_data"]["verdict"] == "error"]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_grading_the_starter_gives_no_grader_errors_and_its_deserved_passes(tmp_path):
    data = _grade(STARTER, tmp_path, seed=5)
    assert _errors(data) == [], "\n\n".join(_errors(data))
    assert data["extra_data"]["verdict_counts"]["error"] == 0
    passed = {t["extra_data"]["check_id"] for t in data["tests"] if t["extra_data"]["verdict"] == "pass"}
    assert passed == STARTER_PASSES, {"unexpected passes": sorted(passed - STARTER_PASSES),
                                      "missing passes": sorted(STARTER_PASSES - passed)}
    assert 0 < data["score"] < data["max_score"]
    # the check that used to crash reading a record the starter never wrote now fails
    # with the evidence a person needs
    corrupt = next(t for t in data["tests"] if t["extra_data"]["check_id"] == "memory.corrupt_orchestrator")
    assert corrupt["extra_data"]["verdict"] == "fail"
    assert "records/" in corrupt["output"] and "files found" in corrupt["output"]


# Hostile fixtures giving no grader errors: tests/test_hostile_grading.py grades all six.


# --- the pieces, without processes ------------------------------------------------------------
class _Dep:
    def __init__(self, files: dict[str, bytes | Exception]):
        self.files = files

    def memory_files(self, role):
        return sorted(self.files)

    def read_memory(self, role, rel):
        data = self.files[rel]
        if isinstance(data, Exception):
            raise data
        return data


class _Ctx:
    def __init__(self, files):
        self.deployment = _Dep(files)


def test_read_record_turns_every_bad_record_into_a_check_failure():
    with pytest.raises(CheckFailed) as exc:
        read_record(_Ctx({"records/other.json": b"{}"}), "orchestrator", "t-1")
    assert exc.value.expected == "records/t-1.json"
    assert exc.value.received["files found"] == ["records/other.json"]
    for bad in (b"not json", b"[1, 2]", b"\xff\xfe", IsADirectoryError("a directory")):
        with pytest.raises(CheckFailed):
            read_record(_Ctx({"records/t-1.json": bad}), "collector", "t-1")
    raw, obj = read_record(_Ctx({"records/t-1.json": b'{"task_id": "t-1"}'}), "collector", "t-1")
    assert raw == b'{"task_id": "t-1"}' and obj == {"task_id": "t-1"}


def test_dig_never_raises_on_a_candidate_shape():
    reply = {"error": {"details": {"cause": "a string, not an object"}}, "payload": [1, {"a": 2}]}
    assert dig(reply, "error", "details", "cause", "code") is None
    assert dig(reply, "payload", 1, "a") == 2
    assert dig(reply, "payload", 5, "a", default="x") == "x"
    assert dig(reply, "payload", "a") is None
    assert dig(["x"], True) is None            # a bool is not an index
    assert dig(reply, "error", "details", "cause") == "a string, not an object"
    assert as_dict([1]) == {} and as_dict({"a": 1}) == {"a": 1}
    assert as_list("abc") == [] and as_list([1]) == [1]


def test_talking_to_a_broken_candidate_is_a_candidate_failure():
    for exc in (http.client.BadStatusLine("garbage"), http.client.IncompleteRead(b""),
                http.client.RemoteDisconnected("gone"), ClientError("HTTP body over 16 MiB"),
                ConnectionRefusedError(), TimeoutError()):
        assert is_candidate_failure(exc), exc
    for exc in (KeyError("x"), AttributeError("x"), FileNotFoundError("x"), ValueError("x")):
        assert not is_candidate_failure(exc), exc
