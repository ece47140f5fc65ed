"""results.json in Gradescope's autograder schema, as instructors and candidates see it.

Who sees what (Gradescope's visibility fields; decided here, documented in
rubric/INTERVIEWER_GUIDE.md, "Gradescope"):
- Instructors see everything: the run's stdout (the summary the autograder prints), every
  test, and an "Interviewer summary" test (hidden from students) whose Markdown holds the
  score, the suggested level and its cap, the area scores, the grader errors and the
  whole report.
- Candidates see each *visible* check at once (`visibility: "visible"`), with feedback
  from graders/feedback.py: what differs, the evidence, a `faultdrill check ... --challenge
  NAME --seed N` replay line (a command the candidate bundle has) and the challenge's
  README. Hidden checks are `visibility: "hidden"` and numbered apart, so the visible
  numbering has no gaps.
- The total score and the top-level output are `visibility: "after_published"`: the total
  includes the hidden checks, so showing it before the instructor publishes would reveal
  how they went (total minus the visible points). After publication the total is the
  grade. The suggested hiring level is never shown to candidates.

Points: each check's points are its exact share of the rubric's overall score
(graders/report/points.py), so the Gradescope score is 100 x the report's overall score
(set the assignment's autograder points to 100). A check the grader could not run keeps
its maximum and earns nothing: an INCOMPLETE grade says so at the top of every output and
can never add up to full marks.
"""
from __future__ import annotations

from graders.feedback import load_starter_markers, render_failure
from graders.report.model import unsandboxed

# Student-visible replay lines name this placeholder; the autograder replaces it with the
# submission's folder as uploaded (graders/packaging.py), `faultdrill grade` leaves it.
REPLAY_PATH = "PATH"
# Gradescope keeps results.json small; the report embedded for instructors is capped.
REPORT_LIMIT = 120_000
# Candidate-facing evidence per check is capped at this many characters per value.
STUDENT_CONTEXT_LIMIT = 1500


def is_incomplete(model: dict) -> bool:
    """The grade's INCOMPLETE flag (graders/report/model.py); a grade with a grader error
    or a setup error is incomplete even where the model predates the flag."""
    if "incomplete" in model:
        return bool(model["incomplete"])
    return bool(model["counts"].get("error") or model.get("setup_error"))


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def _student_output(check: dict, replay_path: str, markers) -> str:
    v = check["verdict"]
    lines = []
    if check["runs"] > 1:
        lines.append(f"passed {check['passes']} of {check['passes'] + check['fails']} runs"
                     + (" (some runs could not be graded)" if check["errors"] else ""))
    if check["status"] == "pass":
        lines.append("passed")
        lines.append(f"seed {v['seed']}")
    elif check["status"] == "error":
        lines.append("GRADER ERROR: the grader itself could not run this check (not your fault). "
                     "This grade is INCOMPLETE and will be regraded; it earns no points until then.")
        lines.append(v["message"])
    else:
        lines += render_failure(v, challenge=check["challenge"] or None, path=replay_path,
                                markers=markers, context_limit=STUDENT_CONTEXT_LIMIT)
    return "\n".join(lines)


def _interviewer_output(check: dict) -> str:
    """Hidden checks: instructors only, so the interviewer's replay command is fine."""
    v = check["verdict"]
    if check["status"] == "pass":
        lines = ["passed"]
    elif check["status"] == "error":
        lines = ["GRADER ERROR (left out of the suggested level; regrade): " + v["message"]]
    else:
        lines = render_failure(v, challenge=None, path=REPLAY_PATH, include_replay=False,
                               context_limit=STUDENT_CONTEXT_LIMIT)
    if v.get("trace"):
        lines.append("grader traceback:\n" + v["trace"])
    lines.append(f"seed {v['seed']} (replay: faultdrill grade PATH --seed {v['seed']} --only {check['id']})")
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    """Candidate text inside a Markdown table cell: no markup, no cell breaks."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|").replace("`", "'").replace("\n", " "))


def _banners(model: dict) -> list[str]:
    out = []
    if is_incomplete(model):
        out.append("**INCOMPLETE**: some checks could not be graded (a grader error, not the "
                   "submission's fault). This is not a final mark: the course staff will regrade.")
    if model.get("partial"):
        out.append("**PARTIAL**: only some checks were run (`--only`); this is not a grade.")
    if unsandboxed(model):
        out.append("**UNSANDBOXED**: the submission ran without the sandbox.")
    return out


def student_summary(model: dict) -> str:
    """The top-level output (Markdown): what a candidate sees once grades are published.
    Only visible checks are named; no suggested level."""
    sheet = model["sheet"]
    visible = [c for c in _ordered(model) if c["visibility"] != "hidden"]
    failed = [c for c in visible if c["status"] == "fail"]
    out = [line for b in _banners(model) for line in (b, "")]
    out += [f"**Score {model['score']:g} / {model['max_score']:g}** (100 = every check passed)", "",
            "| area | score |", "|---|---|"]
    out += [f"| {_md_cell(a.title)} | {_pct(a.score)} |" for a in sheet.areas if a.score is not None]
    out += ["", f"Visible checks: {sum(c['status'] == 'pass' for c in visible)} passed, {len(failed)} failed"
            + (f", {sum(c['status'] == 'error' for c in visible)} not graded" if any(c['status'] == 'error' for c in visible) else "")
            + ". Your interviewer's grading also ran checks that are not listed here."]
    if failed:
        out += ["", "Failed (each test below shows what differs and the command that replays it "
                "with `faultdrill check`):", ""]
        out += [f"- `{c['id']}` {_md_cell(c['title'])}: {_md_cell(c['verdict']['message'])[:200]}" for c in failed]
    return "\n".join(out)


def interviewer_summary(data: dict, report_md: str | None = None) -> str:
    """Markdown for instructors, from a results.json this module wrote: score, suggested
    level with its cap, areas, grader errors, interviewer-only checks, and the whole
    report (capped)."""
    x = data.get("extra_data") or {}
    ov, core = x.get("overall") or {}, x.get("core") or {}
    titles = x.get("level_titles") or {}
    areas = x.get("areas") or {}

    def level(d):
        text = titles.get(d.get("suggested_level"), "—")
        if d.get("capped_by") and d.get("uncapped_level") != d.get("suggested_level"):
            capper = (areas.get(d["capped_by"]) or {}).get("title", d["capped_by"])
            text += f", capped by {capper} (score alone: {titles.get(d.get('uncapped_level'), '—')})"
        return text

    out = []
    if x.get("incomplete"):
        out.append("**INCOMPLETE**: grader errors in " + ", ".join(
            f"`{e.get('check')}`" for e in x.get("grader_errors", [])) + ". Not a final mark: regrade "
            "(the suggested level leaves these checks out; the score counts them as 0).")
        out.append("")
    if x.get("partial"):
        out += ["**PARTIAL**: only some checks were run; not a grade.", ""]
    out += [f"**Score {data.get('score', 0):g} / {data.get('max_score', 0):g}**; overall "
            f"{_pct(ov.get('score'))}, suggested: **{level(ov)}**; core areas {_pct(core.get('score'))} "
            f"(suggested: {level(core)}).", "",
            "| area | score | suggested level |", "|---|---|---|"]
    out += [f"| {_md_cell(a.get('title', aid))} | {_pct(a.get('score'))} | "
            f"{titles.get(a.get('suggested_level'), '—')} |" for aid, a in areas.items()]
    c = x.get("verdict_counts") or {}
    out += ["", f"Checks: {c.get('pass', 0)} passed, {c.get('fail', 0)} failed, {c.get('error', 0)} "
                f"grader errors; seed {x.get('seed')}, driver {x.get('driver')}, kit {x.get('kit_version')}."]
    hidden = [t for t in data.get("tests", []) if t.get("visibility") == "hidden"
              and (t.get("extra_data") or {}).get("check_id")]
    if hidden:
        out += ["", "Interviewer-only checks: " + ", ".join(
            f"`{t['extra_data']['check_id']}` {t['extra_data'].get('verdict')}" for t in hidden)]
    if report_md:
        text = report_md if len(report_md) <= REPORT_LIMIT else (
            report_md[:REPORT_LIMIT] + f"\n\n... [{len(report_md) - REPORT_LIMIT} more characters: "
            "see report.md in the autograder's results/faultdrill/]")
        out += ["", "---", "", text]
    return "\n".join(out)


def instructor_stdout(data: dict) -> str:
    """The plain-text summary run_autograder prints (Gradescope shows the run's stdout to
    instructors only), from a results.json this module wrote."""
    x = data.get("extra_data") or {}
    ov = x.get("overall") or {}
    titles = x.get("level_titles") or {}
    areas = x.get("areas") or {}
    lines = []
    if x.get("incomplete"):
        lines.append("INCOMPLETE: grader errors in " + ", ".join(
            str(e.get("check")) for e in x.get("grader_errors", [])) + "; not a final mark, regrade.")
    if x.get("partial"):
        lines.append("PARTIAL: only some checks were run; not a grade.")
    cap = ""
    if ov.get("capped_by") and ov.get("uncapped_level") != ov.get("suggested_level"):
        capper = (areas.get(ov["capped_by"]) or {}).get("title", ov["capped_by"])
        cap = f", capped by {capper} (score alone: {titles.get(ov.get('uncapped_level'), '—')})"
    lines.append(f"faultdrill: score {data.get('score', 0):g} / {data.get('max_score', 0):g}; overall "
                 f"{_pct(ov.get('score'))}; suggested level: {titles.get(ov.get('suggested_level'), '—')}{cap}")
    for aid, a in areas.items():
        lines.append(f"  {a.get('title', aid)}: {_pct(a.get('score'))} "
                     f"({titles.get(a.get('suggested_level'), '—')})")
    c = x.get("verdict_counts") or {}
    lines.append(f"checks: {c.get('pass', 0)} passed, {c.get('fail', 0)} failed, {c.get('error', 0)} "
                 f"grader errors; seed {x.get('seed')}")
    return "\n".join(lines)


def for_gradescope(data: dict, *, report_md: str | None, replay_path: str, seed_note: str = "") -> dict:
    """The results.json the autograder hands Gradescope, from the one `faultdrill grade`
    wrote: candidates' replay lines name the submission folder as uploaded, and an
    "Interviewer summary" test (hidden from students, Markdown) is added for instructors."""
    out = dict(data)
    tests = []
    for t in data.get("tests", []):
        t = dict(t)
        if t.get("visibility") != "hidden" and isinstance(t.get("output"), str):
            t["output"] = t["output"].replace(f"faultdrill check {REPLAY_PATH} ",
                                              f"faultdrill check {replay_path} ")
        tests.append(t)
    x = data.get("extra_data") or {}
    tests.append({
        "name": "Interviewer summary: score, suggested level, areas, report",
        "number": "0.0",
        "score": 0.0,
        "max_score": 0.0,
        "status": "failed" if x.get("incomplete") else "passed",
        "output": interviewer_summary(data, report_md),
        "output_format": "md",
        "tags": [],
        "visibility": "hidden",
        "extra_data": {"kind": "interviewer_summary"},
    })
    out["tests"] = tests
    if seed_note:
        out["output"] = (str(data.get("output", "")) + "\n\n" + seed_note).strip()
    return out


def _ordered(model: dict) -> list[dict]:
    return sorted(model["checks"], key=lambda c: (c["stage"], c["id"]))


def results_json(model: dict, replay_path: str = REPLAY_PATH, markers=...) -> dict:
    """results.json of one grade: one test per check (see the module docstring).
    `markers`: the starter's CHALLENGE(...) comments (graders.feedback); read from the
    kit's starter when not given."""
    if markers is ...:
        markers = load_starter_markers()
    incomplete = is_incomplete(model)
    tests = []
    per_stage: dict[tuple[int, bool], int] = {}
    for check in _ordered(model):
        hidden = check["visibility"] == "hidden"
        n = per_stage[(check["stage"], hidden)] = per_stage.get((check["stage"], hidden), 0) + 1
        tests.append({
            "name": f"{check['id']}: {check['title']}",
            # Visible checks are numbered among themselves: no gap gives a hidden one away.
            "number": f"{check['stage']}.{'h' if hidden else ''}{n}",
            "score": check["points"],
            "max_score": check["max_points"],
            "status": "passed" if check["status"] == "pass" else "failed",
            "output": _interviewer_output(check) if hidden else _student_output(check, replay_path, markers),
            "output_format": "text",
            "tags": list(check["items"]),
            "visibility": "hidden" if hidden else "visible",
            "extra_data": {"check_id": check["id"], "verdict": check["status"],
                           "passes": check["passes"], "fails": check["fails"],
                           "errors": check["errors"], "challenge": check["challenge"]},
        })
    sheet = model["sheet"]
    areas = {a.id: {"title": a.title, "score": a.score, "suggested_level": a.level} for a in sheet.areas}
    return {
        "score": model["score"],
        "max_score": model["max_score"],
        "execution_time": round(model["duration"], 3),
        "output": student_summary(model),
        "output_format": "md",
        # The total includes interviewer-only checks: hidden from candidates until the
        # instructor publishes (see the module docstring).
        "visibility": "after_published",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {
            "seed": model["seed"],
            "runs": model["runs"],
            "kit_version": model["kit_version"],
            "driver": model["driver"],
            "incomplete": incomplete,
            "partial": bool(model.get("partial")),
            "sandbox": model.get("sandbox"),
            "verdict_counts": model["counts"],
            "grader_errors": [{"check": c["id"], "message": c["verdict"]["message"],
                               "trace": c["verdict"].get("trace")}
                              for c in model["checks"] if c["errors"]],
            "areas": areas,
            "level_titles": model["level_titles"],
            "overall": {"score": sheet.overall, "suggested_level": sheet.overall_level,
                        "uncapped_level": sheet.overall_uncapped_level, "capped_by": sheet.capped_by},
            "core": {"score": sheet.core, "suggested_level": sheet.core_level,
                     "uncapped_level": sheet.core_uncapped_level, "capped_by": sheet.capped_by},
            "unscored_items": sheet.unscored_items,
            "cleanup": model["cleanup"],
        },
    }
