"""A dead submission fails fast (issue 12 §11).

A submission that starts but never answers a frame, or whose ports accept connections
and never answer at all, is graded in at most 60 s (it used to take ~248 s: every check
waited out its own timeouts). The harness probes liveness after a failed check; when a
fresh deployment does not answer either, every remaining check fails at once, saying why.
All of them count as failed (the candidate's), none as a grader error.
"""
from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

import pytest

from graders.checks.registry import all_checks
from tests.defects.grading import grade

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "dead"
SEED = int(os.environ.get("FD_DEAD_SEED", "3"))
BOUND_S = 60.0

WHY = {
    "never-answers": "accepted a connection on port",
    "silent-everywhere": "did not start",
}


@pytest.fixture(scope="module")
def dead_grades(tmp_path_factory):
    out = tmp_path_factory.mktemp("dead-grades")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = dict(pool.map(lambda name: (name, grade(FIXTURES / name, SEED, out / name, timeout=150)),
                             sorted(WHY)))
    return runs


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(WHY))
def test_a_dead_submission_is_graded_within_a_minute(dead_grades, name):
    run = dead_grades[name]
    where = f"{name} (seed {SEED}; replay: {run.replay()})"
    assert not run.timed_out and run.duration < BOUND_S, f"{where}: took {run.duration:.0f} s"
    assert run.rc == 1, f"{where}: a completed grade with failures exits 1, got {run.rc}: {run.stderr[-1500:]}"
    assert set(run.verdicts) == {c.id for c in all_checks()}
    assert set(run.verdicts.values()) == {"fail"}, f"{where}: {run.verdicts}"
    skipped = [cid for cid, text in run.outputs.items() if "could not proceed" in text]
    assert len(skipped) >= len(run.verdicts) - 3, f"{where}: checks should stop waiting: {run.outputs}"
    for cid in skipped:
        assert WHY[name] in run.outputs[cid], f"{where}: {cid} does not say why: {run.outputs[cid][:400]}"
