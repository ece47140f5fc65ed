"""One plain-data model of a grade, built once and rendered by every report format.

Besides verdicts and scores it carries the grade's metadata: `incomplete` (with
`incomplete_reasons`: a grader error, a setup error, a failed cleanup), `partial` (an
`--only` run, with the ids in `only`) and `sandbox` (how the candidate ran, from the
driver). Every renderer puts the matching banner first.
"""
from __future__ import annotations

from dataclasses import asdict

from graders import KIT_VERSION
from graders.report.points import check_points, totals
from graders.feedback import show_context
from graders.scoring import credits_from_verdicts


def show(value, limit: int = 4000) -> str:
    """Render evidence (dicts, bytes, strings) as compact text, capped: the same rendering
    as the candidate feedback (graders/feedback.py), which survives hostile structures."""
    return show_context(value, limit)


def unsandboxed(model: dict) -> bool:
    """True when the candidate ran without the sandbox (graders.sandbox.policy.describe:
    mode "none"; or an explicit enabled: false)."""
    sandbox = model.get("sandbox") or {}
    return isinstance(sandbox, dict) and (sandbox.get("mode") == "none" or sandbox.get("enabled") is False)


def banners(model: dict) -> list[tuple[str, str]]:
    """(kind, text) of every banner a report shows at its very top, in this order:
    INCOMPLETE (nothing here is a final grade), PARTIAL (an --only replay), UNSANDBOXED."""
    out = []
    if model.get("incomplete"):
        out.append(("incomplete", "INCOMPLETE: this grade is not complete, so it is not a grade: "
                    + "; ".join(model.get("incomplete_reasons") or ["grader errors"])
                    + ". Scores cover only what was graded; no level is suggested. Fix the cause and "
                      "grade again."))
    if model.get("partial"):
        out.append(("partial", "PARTIAL: only " + ", ".join(model.get("only") or [])
                    + " (--only) were run: a replay, not a grade. No overall score, no suggested level."))
    if model.get("not_run"):
        out.append(("not-run", "NOT RUN under this driver, left out of the score: "
                    + "; ".join(f"{n['id']} {n['reason']}" for n in model["not_run"])
                    + ". Grade with the process driver to cover them."))
    if unsandboxed(model):
        why = (model.get("sandbox") or {}).get("reason") or ""
        out.append(("unsandboxed", "UNSANDBOXED: the candidate's code ran without the sandbox"
                    + (f" ({why})" if why else "") + ": it could read and change this machine's files, "
                    "including this report."))
    return out


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
            # A proven failure is a failure; otherwise any grader error leaves it unproven.
            "status": ("fail" if c.fails else "error" if c.errors else "pass"),
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
    reasons = list(getattr(result, "incomplete_reasons", None) or [])
    if not reasons and (counts["error"] or result.setup_error):   # a RunResult-like object
        reasons = [f"{counts['error']} grader error(s)"] if counts["error"] else [f"setup error: {result.setup_error}"]
    return {
        # The grade's metadata (RULES.md): every report shows INCOMPLETE / PARTIAL /
        # UNSANDBOXED banners from these, at the top.
        "incomplete": bool(reasons),
        "incomplete_reasons": reasons,
        "partial": bool(getattr(result, "partial", False)),
        "only": sorted(credits) if getattr(result, "partial", False) else None,
        "sandbox": dict(getattr(result, "sandbox", None) or {}),
        "not_run": list(getattr(result, "not_run", None) or []),
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
