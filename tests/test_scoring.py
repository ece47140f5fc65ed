"""Scoring from rubric.toml: pass fractions, errors excluded and listed, levels."""
import pytest
from hypothesis import given, settings, strategies as st

from graders.checks.registry import all_checks
from graders.harness import Verdict
from graders.scoring import (CheckCredit, credits_from_verdicts, load_rubric, points, score,
                             suggested_level)

RUBRIC = load_rubric()
WEIGHTS = {c.id: c.weight for c in all_checks()}


def v(cid, status, run=0):
    return Verdict(cid, cid, status, "m", 0.1, 1, run)


def all_pass():
    return [v(c, "pass") for c in WEIGHTS]


def test_all_pass_is_full_marks():
    sheet = score(credits_from_verdicts(all_pass()), RUBRIC, WEIGHTS)
    assert sheet.overall == pytest.approx(1.0) and sheet.overall_level == "strong_hire"
    assert all(a.score == pytest.approx(1.0) for a in sheet.areas)
    assert sheet.unscored_items == [] and sheet.grader_errors == []
    got, mx = points(credits_from_verdicts(all_pass()), WEIGHTS)
    assert got == mx == pytest.approx(sum(WEIGHTS.values()))


def test_errors_are_excluded_and_listed():
    verdicts = [v(c, "error" if c == "memory.retention" else "pass") for c in WEIGHTS]
    sheet = score(credits_from_verdicts(verdicts), RUBRIC, WEIGHTS)
    mem = next(a for a in sheet.areas if a.id == "memory")
    assert mem.score == pytest.approx(1.0), "an errored check must not cost the candidate"
    assert "memory.pruning" in sheet.unscored_items
    assert sheet.grader_errors == ["memory.retention"]
    got, mx = points(credits_from_verdicts(verdicts), WEIGHTS)
    assert got == mx == pytest.approx(sum(WEIGHTS.values()) - WEIGHTS["memory.retention"])


def test_one_defect_costs_only_its_items():
    verdicts = [v(c, "fail" if c == "memory.retention" else "pass") for c in WEIGHTS]
    sheet = score(credits_from_verdicts(verdicts), RUBRIC, WEIGHTS)
    for a in sheet.areas:
        if a.id == "memory":
            items = {i.id: i.score for i in a.items}
            assert items["memory.pruning"] == 0.0
            assert a.score == pytest.approx((2 + 2 + 3) / (2 + 2 + 3 + 1))
        else:
            assert a.score == pytest.approx(1.0), a.id


def test_runs_give_pass_fractions_and_weighted_items():
    c = credits_from_verdicts([v("memory.retention", s, r) for r, s in enumerate(["pass", "fail", "pass", "error"])])
    assert c["memory.retention"].credit == pytest.approx(2 / 3)
    verdicts = [v("orchestration.retry_backoff", "pass"), v("orchestration.transient_recovery", "fail"),
                v("orchestration.no_retry_definite", "pass")]
    sheet = score(credits_from_verdicts(verdicts), RUBRIC, WEIGHTS)
    item = next(i for a in sheet.areas for i in a.items if i.id == "orchestration.retries")
    w = WEIGHTS
    expect = (w["orchestration.retry_backoff"] + w["orchestration.no_retry_definite"]) / (
        w["orchestration.retry_backoff"] + w["orchestration.transient_recovery"] + w["orchestration.no_retry_definite"])
    assert item.score == pytest.approx(expect)
    assert "orchestration.pipeline" in sheet.unscored_items, "checks not run leave items unscored, not zero"


def test_level_thresholds():
    th = RUBRIC["thresholds"]
    assert suggested_level(1.0, RUBRIC) == "strong_hire"
    assert suggested_level(th["strong_hire"], RUBRIC) == "strong_hire"
    assert suggested_level(th["strong_hire"] - 0.001, RUBRIC) == "leaning_hire"
    assert suggested_level(th["leaning_no_hire"] - 0.001, RUBRIC) == "strong_no_hire"
    assert suggested_level(0.0, RUBRIC) == "strong_no_hire"
    assert suggested_level(None, RUBRIC) is None


@settings(max_examples=150, derandomize=True, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(WEIGHTS)),
                       st.lists(st.sampled_from(["pass", "fail", "error"]), min_size=1, max_size=3),
                       min_size=1))
def test_scores_are_bounded_and_monotone(outcomes):
    verdicts = [v(cid, s, r) for cid, ss in outcomes.items() for r, s in enumerate(ss)]
    credits = credits_from_verdicts(verdicts)
    sheet = score(credits, RUBRIC, WEIGHTS)
    for a in sheet.areas:
        assert a.score is None or 0.0 <= a.score <= 1.0
    # turning one failure into a pass never lowers any score
    fails = [x for x in verdicts if x.status == "fail"]
    if fails:
        fails[0].status = "pass"
        better = score(credits_from_verdicts(verdicts), RUBRIC, WEIGHTS)
        for a, b in zip(sheet.areas, better.areas):
            if a.score is not None:
                assert b.score >= a.score - 1e-12
        assert better.overall >= sheet.overall - 1e-12


def test_credit_none_when_only_errors():
    assert CheckCredit("x", 0, 0, 2).credit is None
