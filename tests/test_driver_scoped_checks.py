"""Checks that only one driver can observe (CheckSpec.drivers) are not run under another
driver, and every report says so: never a pass, never a grader error (which would make
every Docker grade INCOMPLETE), never silently missing."""
from __future__ import annotations

from graders.checks.registry import all_checks, runs_under
from graders.harness import RunResult, Verdict
from graders.report import write_reports
from graders.scoring import credits_from_verdicts, load_rubric, score


def test_power_loss_needs_the_process_driver_and_nothing_else_is_scoped():
    scoped = {c.id: c.drivers for c in all_checks() if c.drivers is not None}
    assert scoped == {"memory.power_loss": ("process",)}
    spec = next(c for c in all_checks() if c.id == "memory.power_loss")
    assert runs_under(spec, "process") and not runs_under(spec, "docker")


def test_reports_name_what_was_not_run(tmp_path):
    specs = [c for c in all_checks() if runs_under(c, "docker")]
    verdicts = [Verdict(s.id, s.title, "pass", "ok", 0.1, 7, 0) for s in specs]
    result = RunResult(seed=7, runs=1, driver="docker", submission="sub", verdicts=verdicts,
                       duration=1.0, cleanup=[])
    result.not_run = [{"id": "memory.power_loss", "reason": "cannot be observed under the docker "
                       "driver (needs the process driver)"}]
    rubric = load_rubric()
    sheet = score(credits_from_verdicts(verdicts), rubric, {s.id: s.weight for s in all_checks()})
    assert not sheet.incomplete and sheet.overall == 1.0
    paths = write_reports(result, sheet, rubric, all_checks(), tmp_path)
    for name in ("report.md", "report.html"):
        text = paths[name].read_text(encoding="utf-8")
        assert "NOT RUN" in text and "memory.power_loss" in text, name
    assert "NOT RUN" in paths["junit.xml"].read_text(encoding="utf-8")


def test_the_harness_leaves_them_out_for_every_caller():
    """run_checks itself (used by grade, check, round, bughunt, the tests) filters them."""
    from graders.harness import Progress, run_checks
    import io
    spec = [c for c in all_checks() if c.id == "memory.power_loss"]
    out = io.StringIO()
    result = run_checks(spec, submission=None, driver=None, seed=1, driver_name="docker",
                        progress=Progress(stream=out))
    assert result.verdicts == []
    assert result.not_run == [{"id": "memory.power_loss", "reason": "cannot be observed under the "
                               "docker driver (needs the process driver)"}]
    assert "not run under the docker driver: memory.power_loss" in out.getvalue()
