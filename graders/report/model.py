"""One plain-data model of a grade, built once and rendered by every report format."""
from __future__ import annotations

import json
from dataclasses import asdict

from graders import KIT_VERSION
from graders.report.points import check_points, totals
from graders.scoring import credits_from_verdicts


def show(value, limit: int = 4000) -> str:
    """Render evidence (dicts, bytes, strings) as compact text, capped."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        text = repr(value)
    elif isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    if len(text) > limit:
        text = text[:limit] + f"... [{len(text) - limit} more characters]"
    return text


def build_model(result, sheet, rubric, specs) -> dict:
    spec_by_id = {s.id: s for s in specs}
    weights = {s.id: s.weight for s in specs}
    credits = credits_from_verdicts(result.verdicts)
    # Points are each check's share of the rubric's overall score (graders/report/points.py),
    # so the total every report and Gradescope show is 100 x that score.
    pts = check_points(credits, rubric, weights)
    score, max_score = totals(pts)
    counts = {"pass": 0, "fail": 0, "error": 0}
    for v in result.verdicts:
        counts[v.status] += 1
    checks = []
    for cid, c in credits.items():
        spec = spec_by_id.get(cid)
        vs = [v for v in result.verdicts if v.check_id == cid]
        shown = next((v for v in vs if v.status == "fail"), None) or \
            next((v for v in vs if v.status == "error"), None) or vs[0]
        checks.append({
            "id": cid,
            "title": spec.title if spec else cid,
            "stage": spec.stage if spec else 0,
            "challenge": spec.challenge if spec else "",
            "items": list(spec.items) if spec else [],
            "weight": weights.get(cid, 1.0),
            "visibility": spec.visibility if spec else "visible",
            "passes": c.passes, "fails": c.fails, "errors": c.errors,
            "credit": c.credit,
            "points": pts[cid][0], "max_points": pts[cid][1],
            "status": ("error" if c.credit is None else "pass" if c.credit == 1.0 else "fail"),
            "runs": len(vs),
            "verdict": asdict(shown),
            "durations": [v.duration for v in vs],
        })
    timeline = []
    for v in result.verdicts:
        for ev in v.timeline:
            timeline.append({"t": round(v.started_at + ev["t"], 3), "check": v.check_id,
                             "run": v.run, "kind": ev["kind"], "text": ev["text"]})
    timeline.sort(key=lambda e: (e["run"], e["t"]))
    return {
        "kit_version": KIT_VERSION,
        "submission": result.submission,
        "driver": result.driver,
        "seed": result.seed,
        "runs": result.runs,
        "duration": result.duration,
        "stopped_at_stage": result.stopped_at_stage,
        "setup_error": result.setup_error,
        "cleanup": list(result.cleanup),
        "score": score,
        "max_score": max_score,
        "counts": counts,
        "checks": checks,
        "grader_errors": [c["id"] for c in checks if c["errors"]],
        "timeline": timeline,
        "sheet": sheet,
        "level_titles": rubric["meta"]["level_titles"],
        "decision_note": " ".join(rubric["meta"]["decision_note"].split()),
    }
