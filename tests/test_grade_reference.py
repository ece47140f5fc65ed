"""The graders against the reference: full marks under two seeds with identical verdicts
(the library path and the CLI side by side);
plus the pieces of the harness and the strict metrics checker that need no services."""
import io
import json

import pytest

from graders import cli
from graders.checks import promtext
from graders.checks.registry import CheckFailed, CheckSpec, GraderError, all_checks
from graders.harness import Progress, _run_one, is_candidate_failure
from graders.paths import REFERENCE


# --- the strict 0.0.4 checker ------------------------------------------------------------
GOOD = """# HELP faultdrill_requests_total Requests handled.
# TYPE faultdrill_requests_total counter
faultdrill_requests_total{type="submit",outcome="ok"} 3
faultdrill_requests_total{type="a\\"b\\\\c\\nd",outcome="ok"} 1
# HELP faultdrill_task_duration_seconds Task durations.
# TYPE faultdrill_task_duration_seconds histogram
faultdrill_task_duration_seconds_bucket{le="0.1"} 1
faultdrill_task_duration_seconds_bucket{le="1"} 2
faultdrill_task_duration_seconds_bucket{le="+Inf"} 2
faultdrill_task_duration_seconds_sum 0.6
faultdrill_task_duration_seconds_count 2
"""


def test_promtext_accepts_valid_exposition():
    fams, problems = promtext.parse(GOOD)
    assert problems == []
    assert promtext.value(fams, "faultdrill_requests_total", outcome="ok") == 4
    assert fams["faultdrill_requests_total"].samples[1][1]["type"] == 'a"b\\c\nd'


@pytest.mark.parametrize("bad, words", [
    ("faultdrill_x_total 1\n", "no # TYPE"),
    ("# TYPE x counter\nx 1\n", "_total"),
    (GOOD.replace('le="+Inf"} 2', 'le="+Inf"} 3'), "!= _count"),
    (GOOD.replace('{le="0.1"} 1', '{le="5"} 1'), "ascending"),
    (GOOD.replace('a\\"b', 'a\\qb'), "invalid escape"),
    (GOOD.replace("# TYPE faultdrill_requests_total counter\n", "") + "# TYPE faultdrill_requests_total counter\n", "TYPE"),
    (GOOD + "faultdrill_requests_total{type=\"submit\",outcome=\"ok\"} 5\n", "not grouped"),
    (GOOD.rstrip("\n"), "newline"),
])
def test_promtext_rejects(bad, words):
    _fams, problems = promtext.parse(bad)
    assert any(words in p for p in problems), problems


# --- harness verdict classification ------------------------------------------------------
class _Env:
    t0 = 0.0
    token = "tok"
    dead = None                 # the submission is not known dead (harness liveness)
    hidden_ids: set = set()     # no hidden check has issued task ids
    progress = Progress(stream=io.StringIO())

    def logs_snapshot(self):
        return {}

    def logs_since(self, snap):
        return {}

    def drop_shared(self):
        self.dropped = True


def _spec(func, timeout=5.0):
    return CheckSpec("t.x", "t", func, ("orchestration.pipeline",), 1.0, "visible", 1, "pipeline-basics", timeout)


def test_verdicts_pass_fail_error():
    def ok(ctx):
        ctx.note("action", "did it")

    def bad(ctx):
        raise CheckFailed("wrong", sent={"a": 1}, expected=2, received=3, hint="h")

    def broken(ctx):
        raise KeyError("grader bug")

    def grader(ctx):
        raise GraderError("no docker")

    env = _Env()
    assert _run_one(env, _spec(ok), 0, 1).timeline[0]["text"] == "did it"
    v = _run_one(env, _spec(bad), 0, 1)
    assert (v.status, v.expected, v.received, v.hint) == ("fail", 2, 3, "h")
    v = _run_one(env, _spec(broken), 0, 1)
    assert v.status == "error" and "KeyError" in v.trace
    assert _run_one(env, _spec(grader), 0, 1).status == "error"


def test_a_check_that_overruns_fails_and_resets_the_deployment():
    import threading
    stop = threading.Event()

    def hang(ctx):
        stop.wait(3.0)

    env = _Env()
    v = _run_one(env, _spec(hang, timeout=0.2), 0, 1)
    stop.set()
    assert v.status == "fail" and "did not finish" in v.message and env.dropped


def test_candidate_failures_are_recognised():
    from graders.client import BadReply, ClientTimeout, ConnectionClosed
    for exc in (ClientTimeout("x"), ConnectionClosed(), BadReply(b"x"), ConnectionResetError()):
        assert is_candidate_failure(exc)
    assert not is_candidate_failure(ValueError("grader bug"))


# --- commands that cannot grade -------------------------------------------------------------
def test_grade_refuses_a_bad_manifest(tmp_path, capsys):
    (tmp_path / "faultdrill.toml").write_text("[submission]\nname = 'x'\n")
    assert cli.main(["grade", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "cannot grade" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_grade_refuses_unknown_check_ids(tmp_path, capsys):
    assert cli.main(["grade", str(REFERENCE), "--only", "no.such.check", "--out", str(tmp_path)]) == 2
    assert "no.such.check" in capsys.readouterr().err


def test_a_submission_that_cannot_start_is_graded_not_errored(tmp_path, capsys):
    cmd = '["{python}", "-c", "import sys; print(\'boom\', file=sys.stderr); sys.exit(3)"]'
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "faultdrill.toml").write_text(
        "[submission]\nname = 'dead'\nspec_version = 1\n"
        + "".join(f"[services.{r}]\ncommand = {cmd}\n" for r in ("orchestrator", "collector", "analyzer", "reporter")))
    out = tmp_path / "out"      # outside the submission (a report dir inside it is refused)
    assert cli.main(["grade", str(sub), "--seed", "3", "--out", str(out), "--quiet"]) == 1  # graded, every check failed
    data = json.loads((out / "results.json").read_text())
    assert data["extra_data"]["verdict_counts"] == {"pass": 0, "fail": len(all_checks()), "error": 0}
    assert data["score"] == 0 and data["max_score"] > 0
    assert "boom" in data["tests"][0]["output"] and "exited with status 3" in data["tests"][0]["output"]
    assert data["execution_time"] < 30, "a dead submission must not cost a start timeout per check"


# --- the reference scores full marks ----------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_reference_full_marks_under_two_seeds(tmp_path, capsys):
    """Seed 11 in-process (the library path) while seed 12 runs beside it as the CLI in its
    own namespaces (the interviewer's path): both full marks, the same verdicts. Side by
    side because a grade mostly waits (timeouts, backoffs, drains): the two fit in the
    time of one."""
    import os
    import subprocess
    import sys
    from graders.paths import REPO_ROOT
    other = tmp_path / "seed12"
    cli_grade = subprocess.Popen([sys.executable, "-m", "graders.cli", "grade", str(REFERENCE), "--seed", "12",
                                  "--out", str(other), "--quiet"], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True,
                                 env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    try:
        rc = cli.main(["grade", str(REFERENCE), "--seed", "11", "--out", str(tmp_path / "seed11"), "--quiet"])
        cli_out, _ = cli_grade.communicate(timeout=180)
    finally:
        if cli_grade.poll() is None:
            cli_grade.kill()
            cli_grade.wait(10)
    data = json.loads((tmp_path / "seed11" / "results.json").read_text())
    out = capsys.readouterr().out
    failing = [t["name"] + "\n" + t["output"] for t in data["tests"] if t["status"] != "passed"]
    assert rc == 0 and failing == [], "\n\n".join(failing) + out
    assert data["extra_data"]["verdict_counts"]["error"] == 0
    assert data["score"] == data["max_score"] > 0
    assert data["extra_data"]["overall"]["suggested_level"] == "strong_hire"
    assert data["execution_time"] <= 60.0, f"a full grade must take <= 60 s, took {data['execution_time']}"
    seed11 = {t["extra_data"]["check_id"]: t["extra_data"]["verdict"] for t in data["tests"]}

    assert cli_grade.returncode == 0, cli_out[-3000:]
    data12 = json.loads((other / "results.json").read_text())
    seed12 = {t["extra_data"]["check_id"]: t["extra_data"]["verdict"] for t in data12["tests"]}
    assert seed12 == seed11, "verdicts must not depend on the seed"
    assert data12["extra_data"]["sandbox"].get("network", "").startswith("the grade's own network namespace"), \
        data12["extra_data"]["sandbox"]
    assert "killed with the grader" in data12["extra_data"]["sandbox"].get("lifetime", ""), \
        data12["extra_data"]["sandbox"]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_check_command_stages_on_reference(capsys):
    assert cli.main(["check", str(REFERENCE), "--challenge", "pipeline-basics", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    n = len([c for c in all_checks() if c.challenge == "pipeline-basics" and c.visibility == "visible"])
    assert "[grader:pipeline.triage_oracle]" in out and f"all {n} visible checks passed" in out
    assert "seed 5" in out

