"""Points per check that add up to the rubric's overall score, for every report.

Why: results.json used to give each check its registry weight as points, while the
reports' overall score is the rubric's nested average (area weights, item weights, check
weights within an item; graders/scoring.py). The two disagreed (Gradescope showed 36 %
where report.html said 32 % for the same grade). Here each check's points are its exact
share of that average, scaled to `TOTAL` (100), so the sum of the points a submission
earned is 100 x the overall score.

The share of check c is, over every rubric item i listing c:
    (w_area / sum of w_area over areas) x (w_item / sum over the area's items)
    x (w_check / sum over the item's checks)
where the sums run over what was *run* (a check not run, e.g. under `--only`, leaves its
item, area and points out). A check the grader could not complete (grader error) keeps
its share as *maximum* points but earns none, so an incomplete grade never adds up to
full marks; graders/scoring.py counts it the same way (a lower bound) and withholds the
suggested level, so the report and Gradescope show one number.
"""
from __future__ import annotations

TOTAL = 100.0
# Points are rounded to this many decimals; a grade's total is the sum of the rounded
# points, so the per-check points always add up to the total shown.
DECIMALS = 4


def check_shares(run_checks, rubric: dict, check_weights: dict[str, float]) -> dict[str, float]:
    """check id -> its share (0..1) of the overall score; the shares of the checks that
    were run add up to 1 (or the dict is empty when no rubric item has a run check)."""
    run = set(run_checks)
    areas = []
    for area in rubric["areas"]:
        items = []
        for item in area["items"]:
            checks = [c for c in item["checks"] if c in run]
            if checks:
                items.append((float(item["weight"]), checks))
        if items:
            areas.append((float(area["weight"]), items))
    shares: dict[str, float] = {}
    total_area = sum(w for w, _ in areas)
    for area_w, items in areas:
        total_item = sum(w for w, _ in items)
        for item_w, checks in items:
            total_check = sum(check_weights.get(c, 1.0) for c in checks)
            for c in checks:
                share = (area_w / total_area) * (item_w / total_item) * (check_weights.get(c, 1.0) / total_check)
                shares[c] = shares.get(c, 0.0) + share
    return shares


def check_points(credits: dict, rubric: dict, check_weights: dict[str, float],
                 total: float = TOTAL) -> dict[str, tuple[float, float]]:
    """check id -> (points earned, maximum points). `credits` maps check id -> an object
    with `.credit` (pass fraction, None when every run was a grader error).

    The maximum points are rounded by the largest-remainder method, so they add up to
    exactly `total` (to DECIMALS places) whenever every run check is in the rubric."""
    shares = check_shares(credits, rubric, check_weights)
    unit = 10 ** DECIMALS
    raw = {cid: total * shares.get(cid, 0.0) * unit for cid in credits}
    units = {cid: int(r) for cid, r in raw.items()}
    short = round(sum(raw.values())) - sum(units.values())
    for cid in sorted(raw, key=lambda c: (units[c] - raw[c], c))[:max(0, short)]:
        units[cid] += 1
    out = {}
    for cid, c in credits.items():
        mx = units[cid] / unit
        got = 0.0 if c.credit is None else round(mx * c.credit, DECIMALS)
        out[cid] = (got, mx)
    return out


def totals(points: dict[str, tuple[float, float]]) -> tuple[float, float]:
    """(score, max score): the sums of the rounded points."""
    return (round(sum(g for g, _ in points.values()), DECIMALS),
            round(sum(m for _, m in points.values()), DECIMALS))
