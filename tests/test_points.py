"""Points per check (graders/report/points.py) add up to the rubric's overall score, so
the Gradescope score and every report's score are one number; an incomplete grade never
adds up to full marks."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from graders.checks.registry import all_checks
from graders.report.points import TOTAL, check_points, check_shares, totals
from graders.scoring import CheckCredit, load_rubric, score

RUBRIC = load_rubric()
SPECS = all_checks()
WEIGHTS = {s.id: s.weight for s in SPECS}
IDS = [s.id for s in SPECS]

outcome = st.tuples(st.integers(0, 3), st.integers(0, 3)).filter(lambda pf: pf[0] + pf[1] > 0)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(IDS), outcome, min_size=1))
def test_points_add_up_to_the_overall_score(runs):
    credits = {cid: CheckCredit(cid, p, f, 0) for cid, (p, f) in runs.items()}
    sheet = score(credits, RUBRIC, WEIGHTS)
    pts = check_points(credits, RUBRIC, WEIGHTS)
    got, mx = totals(pts)
    assert mx == TOTAL
    assert abs(got - TOTAL * sheet.overall) < 1e-4 * len(credits) + 1e-9
    assert all(0 <= g <= m for g, m in pts.values())
    assert abs(sum(check_shares(credits, RUBRIC, WEIGHTS).values()) - 1) < 1e-9


@settings(max_examples=60, deadline=None)
@given(st.sets(st.sampled_from(IDS), min_size=2), st.data())
def test_an_incomplete_grade_never_adds_up_to_full_marks(ran, data):
    errored = data.draw(st.sets(st.sampled_from(sorted(ran)), min_size=1, max_size=len(ran) - 1))
    credits = {cid: CheckCredit(cid, 0, 0, 1) if cid in errored else CheckCredit(cid, 1, 0, 0) for cid in ran}
    got, mx = totals(check_points(credits, RUBRIC, WEIGHTS))
    assert mx == TOTAL and got < TOTAL
    # ... and the report's overall score is the same lower bound, with no level suggested
    sheet = score(credits, RUBRIC, WEIGHTS)
    assert sheet.overall < 1.0 and sheet.incomplete and sheet.overall_level is None
    assert abs(got - TOTAL * sheet.overall) < 1e-4 * len(credits) + 1e-9


def test_full_marks_are_exactly_the_total():
    credits = {cid: CheckCredit(cid, 1, 0, 0) for cid in IDS}
    got, mx = totals(check_points(credits, RUBRIC, WEIGHTS))
    assert got == mx == TOTAL
