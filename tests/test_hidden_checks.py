"""Hidden checks stay hidden (issue 10 §5): nothing a hidden check sent, received or
noted reaches a candidate-visible output: the `check` command (visible checks only),
Gradescope's student-visible parts of results.json (the top-level output and every
visible test), and visible checks' evidence (hidden task ids are redacted there:
tests/test_ids.py)."""
from __future__ import annotations

from pathlib import Path

from graders import cli
from graders.checks.registry import all_checks
from graders.harness import RunResult, Verdict
from graders.report.gradescope import results_json
from graders.report.model import build_model
from graders.scoring import credits_from_verdicts, load_rubric, score

ROOT = Path(__file__).resolve().parents[1]
MARK = "HIDDEN-MARK-7f3a"


def _hidden_ids():
    return [c.id for c in all_checks() if c.visibility == "hidden"]


def _model():
    specs = all_checks()
    hidden = set(_hidden_ids())
    assert hidden, "the kit has hidden checks"
    verdicts = []
    for i, s in enumerate(specs):
        if s.id in hidden:
            verdicts.append(Verdict(s.id, s.title, "fail", f"{MARK} message", 1.0, 5, 0,
                                    sent={"task_id": f"{MARK}-sent"}, expected=f"{MARK}-expected",
                                    received=f"{MARK}-received", hint=f"{MARK} hint",
                                    log_lines={"orchestrator": [f"{MARK} log"]},
                                    timeline=[{"t": 0.1, "kind": "fault", "text": f"{MARK} fault"}]))
        else:
            verdicts.append(Verdict(s.id, s.title, "fail" if i % 3 == 0 else "pass", "visible failure",
                                    0.5, 5, 0, sent={"x": 1}, received={"y": 2}))
    result = RunResult(seed=5, runs=1, driver="process", submission="s", verdicts=verdicts, duration=3.0,
                       cleanup=[f"{h}: NOTE: {MARK} stray" for h in sorted(hidden)])
    rubric = load_rubric()
    sheet = score(credits_from_verdicts(verdicts), rubric, {s.id: s.weight for s in specs})
    return build_model(result, sheet, rubric, specs), hidden


def _student_visible(doc: dict) -> str:
    parts = [doc.get("output", "")]
    for t in doc["tests"]:
        if t.get("visibility", "visible") != "hidden":
            parts += [t.get("name", ""), t.get("output", "")]
    return "\n".join(parts)


def test_gradescope_student_view_shows_nothing_of_hidden_checks():
    model, hidden = _model()
    doc = results_json(model)
    visible = _student_visible(doc)
    assert MARK not in visible
    for cid in hidden:
        assert cid not in visible
        title = next(c.title for c in all_checks() if c.id == cid)
        assert title not in visible
    # the interviewer still sees everything
    everything = "\n".join(t.get("output", "") for t in doc["tests"])
    assert MARK in everything


def test_the_check_command_runs_visible_checks_only(monkeypatch, tmp_path):
    import graders.commands.check as check_cmd
    ran = []

    def run_checks(specs, **kw):
        ran.extend(s.id for s in specs)
        return RunResult(seed=kw["seed"], runs=1, driver="process", submission="s", verdicts=[], duration=0.0)

    monkeypatch.setattr(check_cmd, "run_checks", run_checks)
    assert cli.main(["check", str(ROOT / "reference_impl"), "--seed", "1", "--unsafe-no-sandbox"]) == 0
    assert ran and not set(ran) & set(_hidden_ids())
