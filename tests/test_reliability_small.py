"""A small version of each reliability figure (benchmarks/reliability.py), so regressions
in the reference or the grader machinery are caught by the suite: 50 SIGKILLs, a small
fuzz of every service, a 2-fault matrix, two grades under different seeds, two hostile
submissions. Seeds are fixed and printed."""
from __future__ import annotations

import pytest

from benchmarks import reliability
from benchmarks.containment import leftovers, run_determinism, run_hostile
from benchmarks.crash import run_crash
from benchmarks.fuzz import structured_error, run_fuzz
from benchmarks.matrix import run_matrix

SEED = 515151
pytestmark = pytest.mark.timeout(240)


def test_structured_error_judge():
    good = {"v": 1, "type": "error", "error": {"code": 11, "name": "busy", "definite": True,
                                               "retryable": True, "message": "m", "details": {}}}
    assert structured_error(good) is None
    assert "flags" in structured_error({**good, "error": {**good["error"], "retryable": False}})
    assert "unknown" in structured_error({**good, "error": {**good["error"], "name": "nope"}})
    assert "not an error" in structured_error({"v": 1, "type": "hello_ok"})


def test_crash_50_kills():
    print(f"crash seed={SEED}")
    r = run_crash(SEED, kills=52)
    assert r["kills"] == 52 and r["not_killed_by_sigkill"] == 0
    assert r["acknowledged_puts"] >= 52
    assert r["lost_acknowledged"] == 0 and r["unreadable_stores"] == 0, r["problems"]
    assert r["leftover_temp_files"] == 0 and r["older_version_served"] == 0


def test_fuzz_small():
    print(f"fuzz seed={SEED}")
    r = run_fuzz(SEED, frames=12, envelopes=20, payloads=15)
    assert set(r["per_service"]) == {"orchestrator", "collector", "analyzer", "reporter"}
    for role, s in r["per_service"].items():
        assert s["frames"] >= 5 and s["envelopes"] >= 15 and s["payloads"] >= 10, (role, s)
        assert s["outcomes"].get("ok_valid", 0) >= 1 or role == "reporter", (role, s)
    assert r["failures"] == 0, r["failure_samples"]
    assert r["all_alive"]


@pytest.mark.slow
def test_matrix_two_faults():
    print(f"matrix seed={SEED}")
    r = run_matrix(SEED, tasks=2, faults=["drop_reply", "process_killed"], hops=["collector", "client"])
    assert r["cells_total"] == 4
    for cell in r["cells"]:
        assert "error" not in cell, cell
        assert cell["exactly_once"], cell
        assert cell["executions"] == {"collect": 2, "analyze": 2, "report": 2}, cell


@pytest.mark.slow
def test_determinism_two_seeds():
    only = ["pipeline.triage_oracle", "idempotency.replay_conflict", "orchestration.transient_recovery"]
    r = run_determinism(SEED, runs=2, only=only)
    assert r["grades"] == 2 and r["checks_per_grade"] == 3
    assert r["identical"], r
    assert r["passed_per_grade"] == [3, 3]


def test_hostile_contained():
    r = run_hostile(SEED, fixtures=["exits-at-once", "leaves-child-running"])
    for row in r["fixtures"]:
        assert row["error"] is None and row["contained"], row
        assert row["passed"] == 0 and row["checks_run"] >= 1, row
    assert leftovers() == {"processes": [], "temp_dirs": []}


def test_summary_lines_render():
    fake = {"crash": {"kills": 3, "acknowledged_puts": 9, "lost_acknowledged": 0, "unreadable_stores": 0,
                      "leftover_temp_files": 0},
            "determinism": {"grades": 2, "distinct_verdict_sets": 1, "identical": True, "passed_per_grade": [1, 1]}}
    lines = reliability.summary_lines(fake)
    assert lines[0].startswith("crash: 3 SIGKILLs") and "identical True" in lines[1]
