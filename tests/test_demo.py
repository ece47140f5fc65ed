"""The README's main job: `faultdrill demo` runs every scenario and grades side by side."""
import re
import subprocess
import sys
from pathlib import Path

import pytest


def _processes_of_run(pid: int) -> list[str]:
    """Processes started by the demo run `pid`: its deployments' memory dirs are named
    /tmp/faultdrill-<pid>-..., and every service gets its memory dir in its environment."""
    marker = f"faultdrill-{pid}-".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes():
                found.append(entry.name)
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_demo_runs_scenarios_and_cleans_up(tmp_path):
    """The fault scenarios for real; the grading part is timed and tested apart, since the
    reference's and the starter's grades are already proven by test_grade_reference.py and
    test_grade_starter.py (a full demo adds about 45 s of the same grades)."""
    proc = subprocess.Popen([sys.executable, "-m", "graders.cli", "demo", "--seed", "4",
                             "--no-grade"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, out[-3000:] + err[-2000:]
    assert "seed 4" in out and "FAIL" not in out
    for phrase in ("drop_reply", "SIGKILL of the analyzer", "timeout toxic", "truncated",
                   "unauthorized", "replayed from memory", "nothing left running"):
        assert phrase in out, phrase
    assert _processes_of_run(proc.pid) == []
    assert list(Path("/tmp").glob(f"faultdrill-{proc.pid}-*")) == []


def _fake_results(score: float, passed: int, total: int) -> dict:
    tests = [{"status": "passed" if i < passed else "failed", "max_score": 1.0} for i in range(total)]
    return {"score": score, "tests": tests}


@pytest.mark.parametrize("starter_score,problems", [(3.0, 0), (0.0, 1), (10.0, 1)])
def test_demo_grades_side_by_side_and_judges_the_scores(monkeypatch, tmp_path, capsys,
                                                        starter_score, problems):
    from graders.commands import demo
    graded = []

    def fake_grade(root, seed, out):
        graded.append((Path(root).name, seed, out))
        if Path(root).name == "reference_impl":
            return _fake_results(10.0, 10, 10)
        return _fake_results(starter_score, int(starter_score), 10)

    monkeypatch.setattr(demo, "_grade", fake_grade)
    say = demo.Narrator()
    demo.grade_side_by_side(7, say, str(tmp_path))
    out = capsys.readouterr().out
    assert [(name, seed) for name, seed, _ in graded] == [("reference_impl", 7), ("starter", 7)]
    assert graded[0][2] == tmp_path / "reference" and graded[1][2] == tmp_path / "starter"
    assert re.search(r"reference\s+10.0 / 10.0 points, 10/10 checks passed", out)
    assert str(tmp_path / "starter" / "report.html") in out
    assert len(say.problems) == problems


def test_demo_grade_runs_the_real_grader(tmp_path):
    """_grade drives `faultdrill grade` in-process and returns its results.json."""
    from graders import paths
    from graders.commands import demo
    import graders.cli as cli
    calls = []
    real_main = cli.main

    def only_pipeline(argv):
        calls.append(argv)
        return real_main(argv + ["--only", "pipeline.routes"])

    import graders.commands.grade as grade_cmd
    real_replay_dir = grade_cmd.replay_dir
    cli.main = only_pipeline
    grade_cmd.replay_dir = lambda out: out      # an --only run writes beside --out otherwise
    try:
        results = demo._grade(paths.REFERENCE, 3, tmp_path / "g")
    finally:
        cli.main = real_main
        grade_cmd.replay_dir = real_replay_dir
    assert calls and calls[0][:2] == ["grade", str(paths.REFERENCE)]
    assert [t["status"] for t in results["tests"]] == ["passed"]
    assert (tmp_path / "g" / "report.html").exists()


@pytest.mark.parametrize("extra", [{"verdict_counts": {"pass": 9, "fail": 0, "error": 1}},
                                   {"incomplete": True, "verdict_counts": {"error": 0}},
                                   {"exit_status": 3}])
def test_demo_never_calls_an_incomplete_grade_full_marks(monkeypatch, tmp_path, capsys, extra):
    """Issue 12 §3: the reference with a grader error (e.g. a missing dependency) is not
    "full marks", whatever its points say."""
    from graders.commands import demo

    def fake_grade(root, seed, out):
        results = _fake_results(10.0 if Path(root).name == "reference_impl" else 3.0,
                                10 if Path(root).name == "reference_impl" else 3, 10)
        if Path(root).name == "reference_impl":
            results["extra_data"] = dict(extra)
        return results

    monkeypatch.setattr(demo, "_grade", fake_grade)
    say = demo.Narrator()
    demo.grade_side_by_side(7, say, str(tmp_path))
    out = capsys.readouterr().out
    assert "the reference scores full marks" not in out
    assert "INCOMPLETE" in out and len(say.problems) == 1 and "INCOMPLETE" in say.problems[0]


def test_demo_says_why_when_grading_cannot_run_here(monkeypatch, tmp_path, capsys):
    """A machine where `grade` refuses (a failed preflight, exit 3 without reports): one
    clear problem line, no traceback, no score claimed."""
    from graders.commands import demo
    import graders.cli as cli
    monkeypatch.setattr(cli, "main", lambda argv: print("faultdrill grade: preflight failed, nothing was "
                                                        "graded: bwrap missing (fix: install it)") or 3)
    say = demo.Narrator()
    demo.grade_side_by_side(7, say, str(tmp_path))
    out = capsys.readouterr().out
    assert len(say.problems) == 1 and "preflight failed" in say.problems[0] and "exit 3" in say.problems[0]
    assert "full marks" not in out and "Traceback" not in out


def test_demo_without_a_sandbox_says_so_and_goes_on_unsandboxed(monkeypatch, capsys):
    """README command 1 on a fresh machine without bubblewrap: no traceback; the demo (the
    kit's own code only) says why and runs unsandboxed; where the sandbox works it is used."""
    from graders import sandbox as sandboxing
    from graders.commands import demo
    from graders.sandbox.probe import Probe
    # setenv first: monkeypatch then restores the variable's original state at teardown,
    # although the demo sets it directly.
    monkeypatch.setenv(sandboxing.ENV_SWITCH, "1")
    monkeypatch.delenv(sandboxing.ENV_SWITCH)
    monkeypatch.setattr(sandboxing, "probe", lambda: Probe(False, "none", "bwrap is not installed"))
    demo._sandbox_or_say_why(demo.Narrator())
    assert sandboxing.enabled_by_default() is False
    out = capsys.readouterr().out
    assert "no sandbox on this machine (bwrap is not installed)" in out and "refuses" in out
    monkeypatch.delenv(sandboxing.ENV_SWITCH, raising=False)
    monkeypatch.setattr(sandboxing, "probe", lambda: Probe(True, "root", ""))
    demo._sandbox_or_say_why(demo.Narrator())
    assert sandboxing.enabled_by_default() is True and capsys.readouterr().out == ""
