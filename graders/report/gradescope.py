"""results.json in Gradescope's autograder schema.

Top level: score, max_score, execution_time, output, output_format, visibility,
stdout_visibility, extra_data, tests[]. Each test: name, number, score, max_score,
status (passed/failed), output, output_format, tags (rubric item ids), visibility
("hidden" for interviewer-only checks). Grader errors are kept apart: such a test gets
max_score 0 (it cannot cost the candidate) and is listed in extra_data.grader_errors.
"""
from __future__ import annotations

from graders.report.model import show


def _test_output(check: dict) -> str:
    v = check["verdict"]
    lines = []
    if check["runs"] > 1:
        lines.append(f"passed {check['passes']} of {check['passes'] + check['fails']} runs"
                     + (f" ({check['errors']} grader errors)" if check["errors"] else ""))
    if check["status"] == "pass":
        lines.append("passed")
    else:
        lines.append(("GRADER ERROR (not counted against you): " if check["status"] == "error" else "")
                     + v["message"])
        for label, key in (("sent", "sent"), ("expected", "expected"), ("received", "received")):
            if v.get(key) is not None:
                lines.append(f"{label}: {show(v[key], 2000)}")
        if v.get("hint"):
            lines.append(f"Hint: {v['hint']}")
    lines.append(f"seed {v['seed']} (replay: faultdrill grade PATH --seed {v['seed']} --only {check['id']})")
    return "\n".join(lines)


def results_json(model: dict) -> dict:
    tests = []
    for n, check in enumerate(sorted(model["checks"], key=lambda c: (c["stage"], c["id"])), 1):
        counted = check["credit"] is not None
        tests.append({
            "name": f"{check['id']}: {check['title']}",
            "number": f"{check['stage']}.{n}",
            "score": round(check["weight"] * check["credit"], 4) if counted else 0.0,
            "max_score": check["weight"] if counted else 0.0,
            "status": "passed" if check["status"] == "pass" else "failed",
            "output": _test_output(check),
            "output_format": "text",
            "tags": list(check["items"]),
            "visibility": "hidden" if check["visibility"] == "hidden" else "visible",
            "extra_data": {"check_id": check["id"], "verdict": check["status"],
                           "passes": check["passes"], "fails": check["fails"],
                           "errors": check["errors"], "challenge": check["challenge"]},
        })
    sheet = model["sheet"]
    areas = {a.id: {"score": a.score, "suggested_level": a.level} for a in sheet.areas}
    summary = [f"faultdrill {model['kit_version']} graded {model['submission']} with the "
               f"{model['driver']} driver, seed {model['seed']}, {model['runs']} run(s)."]
    summary.append(f"Checks: {model['counts']['pass']} passed, {model['counts']['fail']} failed, "
                   f"{model['counts']['error']} grader errors (not counted).")
    if model["stopped_at_stage"] is not None:
        summary.append(f"Stopped after stage {model['stopped_at_stage']}.")
    return {
        "score": model["score"],
        "max_score": model["max_score"],
        "execution_time": round(model["duration"], 3),
        "output": "\n".join(summary),
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {
            "seed": model["seed"],
            "runs": model["runs"],
            "kit_version": model["kit_version"],
            "driver": model["driver"],
            "verdict_counts": model["counts"],
            "grader_errors": [{"check": c["id"], "message": c["verdict"]["message"],
                               "trace": c["verdict"].get("trace")}
                              for c in model["checks"] if c["errors"]],
            "areas": areas,
            "overall": {"score": sheet.overall, "suggested_level": sheet.overall_level,
                        "uncapped_level": sheet.overall_uncapped_level, "capped_by": sheet.capped_by},
            "core": {"score": sheet.core, "suggested_level": sheet.core_level,
                     "uncapped_level": sheet.core_uncapped_level, "capped_by": sheet.capped_by},
            "unscored_items": sheet.unscored_items,
            "cleanup": model["cleanup"],
        },
    }
