"""Scoring from rubric.toml: pass fractions, grader errors as lower bounds, levels."""
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


def test_errors_never_raise_a_score_and_are_listed():
    """Issue 10 §3: a grader error proves nothing, so it counts as not passed (the grade
    is INCOMPLETE and its scores are lower bounds), and it is listed."""
    verdicts = [v(c, "error" if c == "memory.retention" else "pass") for c in WEIGHTS]
    sheet = score(credits_from_verdicts(verdicts), RUBRIC, WEIGHTS)
    failed = score(credits_from_verdicts(
        [v(c, "fail" if c == "memory.retention" else "pass") for c in WEIGHTS]), RUBRIC, WEIGHTS)
    mem = next(a for a in sheet.areas if a.id == "memory")
    assert mem.score < 1.0
    assert sheet.overall == pytest.approx(failed.overall), "an error is worth what a failure is"
    assert sheet.unscored_items == []
    assert sheet.grader_errors == ["memory.retention"] and sheet.incomplete
    assert sheet.overall_level is None
    got, mx = points(credits_from_verdicts(verdicts), WEIGHTS)
    assert mx == pytest.approx(sum(WEIGHTS.values()))
    assert got == pytest.approx(sum(WEIGHTS.values()) - WEIGHTS["memory.retention"])


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
    assert c["memory.retention"].credit == pytest.approx(2 / 4)
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


def test_credit_zero_when_only_errors_none_when_not_run():
    assert CheckCredit("x", 0, 0, 2).credit == 0.0
    assert CheckCredit("x", 0, 0, 0).credit is None


# -- the overall suggestion is capped by the weakest core area (H12 item f) ---------------------
def _failing(*check_ids):
    return [v(c, "fail" if c in check_ids else "pass") for c in WEIGHTS]


def _area_checks(area_id):
    area = next(a for a in RUBRIC["areas"] if a["id"] == area_id)
    return {cid for item in area["items"] for cid in item["checks"]}


def test_core_areas_are_the_five_and_the_cap_is_one_band():
    assert [a["id"] for a in RUBRIC["areas"] if not a.get("optional")] == [
        "orchestration", "memory", "routing", "observability", "security"]
    assert RUBRIC["meta"]["cap_bands_above_weakest_core"] == 1


def test_a_hole_in_a_core_area_caps_strong_hire():
    """Failing durable idempotency entirely (routing.idempotency: agent replay and the
    orchestrator's replay/conflict/in_progress) leaves a high average but a weak area."""
    idem = [c for c in WEIGHTS if c.startswith("idempotency.")]
    sheet = score(credits_from_verdicts(_failing(*idem)), RUBRIC, WEIGHTS)
    weakest = min((a for a in sheet.areas if not a.optional), key=lambda a: a.score)
    assert sheet.overall >= RUBRIC["thresholds"]["strong_hire"], "the average alone says strong hire"
    assert sheet.overall_uncapped_level == "strong_hire"
    assert weakest.level in ("strong_no_hire", "leaning_no_hire")
    levels = RUBRIC["meta"]["levels"]
    assert sheet.overall_level == levels[levels.index(weakest.level) + 1]
    assert sheet.capped_by == weakest.id
    titles = RUBRIC["meta"]["level_titles"]
    note = sheet.level_note("overall", titles)
    assert note.startswith(titles[sheet.overall_level]) and f"capped by {weakest.title}" in note
    assert "Strong hire" in note


def test_a_whole_core_area_failing_caps_at_leaning_no_hire():
    sheet = score(credits_from_verdicts(_failing(*_area_checks("observability"))), RUBRIC, WEIGHTS)
    obs = next(a for a in sheet.areas if a.id == "observability")
    assert obs.score == 0 and obs.level == "strong_no_hire"
    assert sheet.overall_level == "leaning_no_hire" and sheet.core_level == "leaning_no_hire"
    assert sheet.capped_by == "observability"


def test_optional_areas_never_pull_the_suggestion_down():
    optional = set().union(*(_area_checks(a["id"]) for a in RUBRIC["areas"] if a.get("optional")))
    core = set().union(*(_area_checks(a["id"]) for a in RUBRIC["areas"] if not a.get("optional")))
    only_optional = optional - core                      # checks that evidence only optional items
    sheet = score(credits_from_verdicts(_failing(*only_optional)), RUBRIC, WEIGHTS)
    assert all(a.score == 0 for a in sheet.areas if a.optional and _area_checks(a.id) <= only_optional)
    assert sheet.core_level == "strong_hire" and sheet.capped_by is None
    assert sheet.overall_level == sheet.overall_uncapped_level
    assert sheet.level_note("core", RUBRIC["meta"]["level_titles"]) == "Strong hire"


def test_no_cap_when_the_weakest_core_area_is_close():
    sheet = score(credits_from_verdicts(_failing("memory.retention")), RUBRIC, WEIGHTS)
    assert sheet.capped_by is None and sheet.overall_level == sheet.overall_uncapped_level
    assert "capped" not in sheet.level_note("overall", RUBRIC["meta"]["level_titles"])


@settings(max_examples=150, derandomize=True, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(WEIGHTS)), st.sampled_from(["pass", "fail"]), min_size=1))
def test_the_cap_holds_and_never_raises_a_level(outcomes):
    sheet = score(credits_from_verdicts([v(c, s) for c, s in outcomes.items()]), RUBRIC, WEIGHTS)
    levels = RUBRIC["meta"]["levels"]
    core = [a for a in sheet.areas if not a.optional and a.level is not None]
    for level, raw in ((sheet.overall_level, sheet.overall_uncapped_level),
                       (sheet.core_level, sheet.core_uncapped_level)):
        if level is None:
            continue
        assert levels.index(level) <= levels.index(raw)
        if core:
            assert levels.index(level) <= min(levels.index(a.level) for a in core) + 1
        if level != raw:
            assert sheet.capped_by in {a.id for a in core}


def test_reports_show_the_cap(tmp_path):
    from graders.harness import RunResult
    from graders.report import write_reports
    idem = [c for c in WEIGHTS if c.startswith("idempotency.")]
    verdicts = _failing(*idem)
    sheet = score(credits_from_verdicts(verdicts), RUBRIC, WEIGHTS)
    result = RunResult(seed=1, runs=1, driver="process", submission="capped", verdicts=verdicts, duration=1.0)
    write_reports(result, sheet, RUBRIC, all_checks(), tmp_path)
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    weakest = next(a for a in sheet.areas if a.id == sheet.capped_by)
    assert f"capped by {weakest.title}" in md and "score alone: Strong hire" in md
    assert f"capped by {weakest.title}" in html
    import json
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["extra_data"]["overall"]["capped_by"] == weakest.id
    assert data["extra_data"]["overall"]["uncapped_level"] == "strong_hire"


def test_an_incomplete_grade_withholds_every_level_but_keeps_scores():
    """Issue 12 §3: one grader error and no level is suggested (overall, core, areas)."""
    verdicts = all_pass()
    verdicts[0] = v(verdicts[0].check_id, "error")
    sheet = score(credits_from_verdicts(verdicts), RUBRIC, WEIGHTS)
    assert sheet.incomplete and sheet.overall < 1.0, "a lower bound: the error is not a pass"
    assert sheet.overall_level is None and sheet.core_level is None
    assert all(a.level is None for a in sheet.areas)
    assert sheet.level_note("overall", RUBRIC["meta"]["level_titles"]).startswith("withheld: INCOMPLETE")
    forced = score(credits_from_verdicts(all_pass()), RUBRIC, WEIGHTS, incomplete=True)
    assert forced.incomplete and forced.overall_level is None


def test_a_partial_grade_has_no_overall_and_no_level():
    """Issue 12 §4: a few checks (--only) say nothing about a hire."""
    sheet = score(credits_from_verdicts(all_pass()[:2]), RUBRIC, WEIGHTS, partial=True)
    assert sheet.partial and sheet.overall is None and sheet.core is None
    assert sheet.overall_level is None and all(a.level is None for a in sheet.areas)
    assert "partial" in sheet.level_note("core", RUBRIC["meta"]["level_titles"])
