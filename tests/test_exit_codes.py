"""One exit-status convention for grade, check and task (issue 12 §5, RULES.md):
0 all passed, 1 some failed, 2 usage error, 3 incomplete, 130 interrupted; no traceback
for any user mistake. Grades here are synthetic (run_checks replaced), so these tests
take seconds; the real grades are in test_grade_reference/starter and test_dead_submission."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from graders import cli
from graders.checks.registry import all_checks
from graders.harness import RunResult, Verdict

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "reference_impl"


def _result(statuses: dict[str, str], *, seed=5) -> RunResult:
    verdicts = [Verdict(cid, cid, status, "ok" if status == "pass" else f"{status}: why", 0.01, seed, 0,
                        trace="Traceback: grader bug" if status == "error" else None)
                for cid, status in statuses.items()]
    return RunResult(seed=seed, runs=1, driver="process", submission="synthetic", verdicts=verdicts, duration=0.1)


@pytest.fixture
def fake_grade(monkeypatch):
    """`faultdrill grade` with run_checks replaced by a function returning chosen verdicts."""
    import graders.commands.grade as grade_cmd
    state = {}

    def run_checks(specs, **kw):
        wanted = state["statuses"]
        return _result({s.id: wanted.get(s.id, wanted.get("*", "pass")) for s in specs}, seed=kw["seed"])

    monkeypatch.setattr(grade_cmd, "run_checks", run_checks)
    return state


def _grade(tmp_path, *extra):
    return cli.main(["grade", str(REFERENCE), "--seed", "5", "--out", str(tmp_path / "out"), "--quiet", *extra])


def test_all_passed_is_0(fake_grade, tmp_path, capsys):
    fake_grade["statuses"] = {"*": "pass"}
    assert _grade(tmp_path) == 0
    out = capsys.readouterr().out
    assert "INCOMPLETE" not in out and "suggested: Strong hire" in out


def test_some_failed_is_1(fake_grade, tmp_path, capsys):
    fake_grade["statuses"] = {"*": "pass", "pipeline.routes": "fail"}
    assert _grade(tmp_path) == 1


def test_a_grader_error_is_3_and_incomplete_everywhere(fake_grade, tmp_path, capsys):
    """Issue 12 §3: the console line, results.json, report.md, report.html, junit.xml all
    say INCOMPLETE; no suggested level anywhere; the error cannot read as full marks."""
    fake_grade["statuses"] = {"*": "pass", "tls.mutual": "error"}
    assert _grade(tmp_path) == 3
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("faultdrill grade: INCOMPLETE") and "tls.mutual" in line
    assert "Strong hire" not in line and "withheld" in line
    out = tmp_path / "out"
    data = json.loads((out / "results.json").read_text())
    extra = data["extra_data"]
    assert extra["incomplete"] is True and extra["partial"] is False
    assert extra["overall"]["suggested_level"] is None and extra["core"]["suggested_level"] is None
    assert all(a["suggested_level"] is None for a in extra["areas"].values())
    assert "INCOMPLETE" in data["output"]
    md = (out / "report.md").read_text()
    assert md.splitlines()[2].startswith("> **INCOMPLETE**") and "Strong hire" not in md
    html = (out / "report.html").read_text()
    assert html.index("INCOMPLETE") < html.index("<h2") and "Strong hire" not in html
    junit = (out / "junit.xml").read_text()
    assert 'name="incomplete" value="true"' in junit and "banner.incomplete" in junit


def test_partial_run_keeps_the_full_report_and_suggests_nothing(fake_grade, tmp_path, capsys):
    """Issue 12 §4: --only writes beside --out (never over a full report) and prints no
    overall score and no hiring suggestion."""
    fake_grade["statuses"] = {"*": "pass"}
    assert _grade(tmp_path) == 0
    full = (tmp_path / "out" / "results.json").read_bytes()
    capsys.readouterr()
    assert _grade(tmp_path, "--only", "pipeline.routes") == 0
    out = capsys.readouterr().out
    assert (tmp_path / "out" / "results.json").read_bytes() == full, "the full report was overwritten"
    replays = sorted(p for p in tmp_path.iterdir() if p.name.startswith("out-replay-"))
    assert len(replays) == 1 and str(replays[0]) in out
    line = out.splitlines()[0]
    assert "PARTIAL" in line and "overall" not in line.replace("no overall score", "") and "hire" not in line.lower()
    data = json.loads((replays[0] / "results.json").read_text())
    assert data["extra_data"]["partial"] is True
    assert data["extra_data"]["overall"]["score"] is None and data["extra_data"]["overall"]["suggested_level"] is None
    md = (replays[0] / "report.md").read_text()
    assert "**PARTIAL**" in md and "Strong hire" not in md and "Overall" not in md
    # a second replay in the same second gets its own directory
    assert _grade(tmp_path, "--only", "pipeline.routes") == 0
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("out-replay-")]) == 2


@pytest.mark.parametrize("argv,says", [
    (["grade", "/nonexistent/submission"], "does not exist"),
    (["grade", str(REFERENCE), "--only", "no.such.check"], "no.such.check"),
    (["grade", str(REFERENCE), "--runs", "0"], "--runs"),
    (["check", "/nonexistent/submission"], "does not exist"),
])
def test_usage_errors_are_2_without_traceback(argv, says, tmp_path, capsys):
    if argv[0] == "grade":
        argv = argv + ["--out", str(tmp_path / "out")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_grade_out_is_an_existing_file(tmp_path, capsys):
    target = tmp_path / "report"
    target.write_text("keep me")
    assert cli.main(["grade", str(REFERENCE), "--out", str(target)]) == 2
    assert "not a directory" in capsys.readouterr().err and target.read_text() == "keep me"


def test_grade_bad_manifest(tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "faultdrill.toml").write_text("this is [not toml")
    assert cli.main(["grade", str(tmp_path / "sub"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "cannot grade" in err and "Traceback" not in err


def _task(args, stdin=""):
    return subprocess.run([sys.executable, "-m", "graders.cli", "task", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize("args,stdin,says", [
    (["missing.json", "--token", "t"], "", "No such file"),
    (["--token", "t"], "{bad json", "cannot read the task"),
    (["--token", "t"], "[1, 2]", "must be an object"),
    (["--token", "t"], "[" * 100_000, "cannot read the task"),
    (["/", "--token", "t"], "", "Is a directory"),
    (["--token", "t", "--port", "70000"], "{}", "not a TCP port"),
    ([], '{"source": "a", "records": []}', "no token"),
])
def test_task_usage_errors_are_2_without_traceback(args, stdin, says, monkeypatch):
    monkeypatch.delenv("FD_TOKEN", raising=False)
    proc = _task(args, stdin)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr


def test_task_not_utf8(tmp_path):
    (tmp_path / "t.json").write_bytes(b"\xff\xfe")
    proc = _task([str(tmp_path / "t.json"), "--token", "t"])
    assert proc.returncode == 2 and "not UTF-8" in proc.stderr and "Traceback" not in proc.stderr


def test_task_without_a_listener_is_3():
    import socket
    with socket.socket() as s:                 # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _task(["--token", "t", "--port", str(port), "--timeout", "2"], '{"source": "a", "records": []}')
    assert proc.returncode == 3 and "no reply" in proc.stderr and "Traceback" not in proc.stderr


def test_argparse_errors_are_2():
    for argv in (["grade", str(REFERENCE), "--seed", "abc"], ["grade"], ["nope"]):
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        assert info.value.code == 2


def test_a_bug_in_the_kit_is_3_not_1(monkeypatch, capsys):
    import graders.commands.rubric as rubric_cmd

    def boom(args):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(rubric_cmd, "run", boom)
    assert cli.main(["rubric"]) == 3
    err = capsys.readouterr().err
    assert "internal error" in err and "ZeroDivisionError" in err


def test_ctrl_c_is_130(monkeypatch, capsys):
    import graders.commands.rubric as rubric_cmd

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(rubric_cmd, "run", interrupted)
    assert cli.main(["rubric"]) == 130


@pytest.mark.parametrize("command", [None, "grade", "check", "task"])
def test_exit_codes_are_in_help(command, capsys):
    with pytest.raises(SystemExit):
        cli.main(([command] if command else []) + ["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "exit status" in text and "3 incomplete" in text or "3 no usable reply" in text
    assert "2 usage error" in text


def test_an_incomplete_cleanup_is_3_and_junit_says_so(fake_grade, tmp_path, monkeypatch, capsys):
    """Incomplete for a reason no check carries (the grader could not clean up)."""
    import graders.commands.grade as grade_cmd
    fake = grade_cmd.run_checks

    def with_leftover(specs, **kw):
        result = fake(specs, **kw)
        result.leftovers = ["cleanup of Topology failed: boom"]
        return result
    monkeypatch.setattr(grade_cmd, "run_checks", with_leftover)
    fake_grade["statuses"] = {"*": "pass"}
    assert _grade(tmp_path) == 3
    assert "INCOMPLETE" in capsys.readouterr().out.splitlines()[0]
    junit = (tmp_path / "out" / "junit.xml").read_text()
    assert 'type="GradeIncomplete"' in junit and "cleanup of Topology failed" in junit


@pytest.mark.parametrize("statuses,code,says", [
    ({"*": "pass"}, 0, "visible checks passed"),
    ({"*": "pass", "pipeline.routes": "fail"}, 1, "1 failed"),
    ({"*": "pass", "pipeline.routes": "error"}, 3, "INCOMPLETE"),
])
def test_check_exit_statuses(monkeypatch, capsys, statuses, code, says):
    import graders.commands.check as check_cmd

    def run_checks(specs, **kw):
        return _result({s.id: statuses.get(s.id, statuses["*"]) for s in specs}, seed=kw["seed"])
    monkeypatch.setattr(check_cmd, "run_checks", run_checks)
    assert cli.main(["check", str(REFERENCE), "--challenge", "pipeline-basics", "--seed", "1"]) == code
    assert says in capsys.readouterr().out
