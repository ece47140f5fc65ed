"""`faultdrill round`: a folder of submissions graded side by side, each in its own grader.

The pure parts (discovery, names, the round folder and its `latest` link, summary rows,
CSV, exit status) on made-up grades; then real rounds, kept cheap with `--only`: the
reference, the starter and a hostile submission that exits at once, graded two at a time,
and a grade stopped at its time bound (INCOMPLETE, exit 3, nothing left running).
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from graders import round as rnd
from graders.paths import REFERENCE, REPO_ROOT

STARTER = REPO_ROOT / "challenges" / "starter"
EXITS_AT_ONCE = REPO_ROOT / "tests" / "fixtures" / "hostile" / "exits-at-once"
ONLY = "pipeline.triage_oracle,security.token_refused"
AREAS = ["orchestration", "security"]


def _results(score: float, *, errors: int = 0, fails: int = 0, incomplete: bool = False, partial=False) -> dict:
    return {"score": score, "max_score": 100.0,
            "extra_data": {"incomplete": incomplete, "partial": partial,
                           "verdict_counts": {"pass": 3, "fail": fails, "error": errors},
                           "level_titles": {"strong_hire": "Strong hire", "leaning_no_hire": "Leaning no hire"},
                           "overall": {"suggested_level": "strong_hire" if score > 90 else "leaning_no_hire"},
                           "areas": {"orchestration": {"score": score / 100}, "security": {"score": None}}}}


def _graded(tmp_path: Path, name: str, results: dict | None, exit_code: int | None = 0,
            problem: str | None = None) -> rnd.Graded:
    out = tmp_path / name
    (out / "report").mkdir(parents=True, exist_ok=True)
    (out / "report" / "report.html").write_text("<html></html>")
    (out / "report" / "results.json").write_text(json.dumps(results))
    return rnd.Graded(name=name, path=tmp_path, out_dir=out, exit_code=exit_code, results=results,
                      problem=problem, duration_s=1.25)


def _link_submissions(tmp_path: Path, **subs: Path) -> Path:
    folder = tmp_path / "submissions"
    folder.mkdir()
    for name, path in subs.items():
        (folder / name).symlink_to(path, target_is_directory=True)
    (folder / "notes").mkdir()                     # no manifest: not a submission
    (folder / "README.txt").write_text("candidates of the week")
    return folder


# -- pure parts ---------------------------------------------------------------------------

def test_discover_takes_subfolders_with_a_manifest_only(tmp_path):
    folder = _link_submissions(tmp_path, b=REFERENCE, a=STARTER)
    (folder / ".hidden").symlink_to(REFERENCE, target_is_directory=True)
    assert [p.name for p in rnd.discover(folder)] == ["a", "b"]
    with pytest.raises(ValueError, match="no submission in"):
        rnd.discover(folder / "notes")
    with pytest.raises(ValueError, match="is not a directory"):
        rnd.discover(folder / "README.txt")


def test_names_are_safe_and_unique():
    assert rnd.unique_names([Path("x/Alice Smith"), Path("y/alice smith"), Path("z/Alice Smith"), Path("..")]) == \
        ["Alice-Smith", "alice-smith", "Alice-Smith-2", "submission"]


def test_round_dirs_are_timestamped_unique_and_latest_follows(tmp_path):
    when = datetime(2026, 12, 1, 9, 5, 7, tzinfo=timezone.utc)
    first = rnd.new_round_dir(tmp_path, when)
    second = rnd.new_round_dir(tmp_path, when)
    assert (first.name, second.name) == ("20261201T090507Z", "20261201T090507Z-2")
    link = rnd.point_latest(tmp_path, first)
    assert os.readlink(link) == "20261201T090507Z"      # relative: the folder can be moved
    rnd.point_latest(tmp_path, second)
    assert link.resolve() == second.resolve()
    link.unlink()
    link.mkdir()                                        # someone's own folder called latest
    with pytest.raises(RuntimeError, match="not a symlink"):
        rnd.point_latest(tmp_path, second)
    assert link.is_dir() and not link.is_symlink()      # left alone


def test_summary_rows_csv_and_exit_status(tmp_path):
    graded = [_graded(tmp_path, "alice", _results(100.0)),
              _graded(tmp_path, "bob", _results(42.5, fails=4), exit_code=1),
              _graded(tmp_path, "carol", _results(55.0, errors=2, incomplete=True), exit_code=3),
              _graded(tmp_path, "dave", None, exit_code=None, problem="the grade did not finish within 5 s")]
    rows = rnd.summary_rows(graded, AREAS, tmp_path)
    by = {r["submission"]: r for r in rows}
    assert by["alice"]["orchestration"] == "100" and by["alice"]["security"] == ""  # unscored area
    assert by["alice"]["suggested_level"] == "Strong hire" and by["alice"]["incomplete"] == "no"
    assert (by["bob"]["total"], by["bob"]["percent"], by["bob"]["failed"]) == ("42.5", "42", 4)
    # An incomplete grade never suggests a level, whatever its score.
    assert by["carol"]["incomplete"] == "yes" and by["carol"]["suggested_level"] == ""
    assert by["carol"]["grader_errors"] == 2 and by["carol"]["percent"] == ""  # points are not a score
    assert by["dave"]["incomplete"] == "yes" and by["dave"]["problem"].startswith("the grade did not finish")
    assert by["alice"]["report"] == "alice/report/report.html"
    parsed = list(csv.DictReader(rnd.csv_text(rows, rnd.csv_columns(AREAS)).splitlines()))
    assert [r["submission"] for r in parsed] == ["alice", "bob", "carol", "dave"]
    assert rnd.round_exit_code(graded) == 3
    assert rnd.round_exit_code(graded[:2]) == 1
    assert rnd.round_exit_code(graded[:1]) == 0
    partial = rnd.summary_rows([_graded(tmp_path, "erin", _results(100.0, partial=True))], AREAS, tmp_path)[0]
    assert partial["partial"] == "yes" and partial["suggested_level"] == ""
    md = rnd.markdown_text(rows, [(a, a.title()) for a in AREAS], seed=7, driver="process", stamp="S")
    assert "| carol |" in md and "INCOMPLETE" in md and "[report.html](alice/report/report.html)" in md


def test_the_child_graders_run_this_kit():
    env = rnd.grade_env({"PYTHONPATH": "/elsewhere"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(REPO_ROOT), "/elsewhere"]


# -- real rounds ----------------------------------------------------------------------------

def _round(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "graders.cli", "round", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO_ROOT)


@pytest.mark.slow
def test_a_round_of_the_reference_the_starter_and_a_hostile_submission(tmp_path):
    folder = _link_submissions(tmp_path, reference=REFERENCE, starter=STARTER, **{"exits-at-once": EXITS_AT_ONCE})
    out = tmp_path / "rounds"
    proc = _round(str(folder), "--out", str(out), "--seed", "31", "--jobs", "2", "--only", ONLY)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]   # some checks failed
    assert "seed 31" in proc.stdout and "2 at a time" in proc.stdout
    latest = out / "latest"
    assert latest.is_symlink()
    round_dir = latest.resolve()
    assert round_dir.parent == out.resolve() and round_dir.name.endswith("Z")
    rows = {r["submission"]: r for r in csv.DictReader((round_dir / "summary.csv").read_text().splitlines())}
    assert sorted(rows) == ["exits-at-once", "reference", "starter"]   # "notes" is not a submission
    for name, row in rows.items():
        results = json.loads(rnd.find_results(round_dir / name).read_text())
        assert results["extra_data"]["seed"] == 31                      # one seed for every candidate
        assert row["incomplete"] == "no" and row["grader_errors"] == "0", row
        assert row["partial"] == "yes" and row["suggested_level"] == ""  # --only: no level
        assert (round_dir / row["report"]).is_file()
        assert (round_dir / name / "grade.log").is_file()
    assert int(rows["reference"]["failed"]) == 0 and int(rows["reference"]["passed"]) == 2
    assert int(rows["exits-at-once"]["passed"]) == 0
    assert rows["reference"]["orchestration"] == "100" and rows["exits-at-once"]["orchestration"] == "0"
    md = (round_dir / "summary.md").read_text()
    assert "PARTIAL round" in md and "| reference |" in md
    table = proc.stdout[proc.stdout.index("submission"):]
    assert "reference" in table and "exits-at-once" in table


@pytest.mark.slow
def test_a_grade_past_its_bound_is_incomplete_and_stopped(tmp_path):
    # A submission that starts and never listens: its grade waits out the start bound,
    # far past the round's 1.5 s (a quick grade would finish inside it).
    hangs = REPO_ROOT / "tests" / "fixtures" / "hostile" / "hangs-at-start"
    folder = _link_submissions(tmp_path, reference=hangs)
    out = tmp_path / "rounds"
    started = time.monotonic()
    proc = _round(str(folder), "--out", str(out), "--seed", "5", "--timeout", "1.5", "--only", ONLY)
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert time.monotonic() - started < 60
    row = next(csv.DictReader((out / "latest" / "summary.csv").read_text().splitlines()))
    assert row["incomplete"] == "yes" and "did not finish within 2 s" in row["problem"]
    # Nothing of that grade is left: no process still runs the reference from this test.
    time.sleep(0.5)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(out) not in ps


def test_usage_errors_exit_2(tmp_path):
    proc = _round(str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "is not a directory" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = _round(str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "no submission in" in proc.stderr
    proc = _round(str(tmp_path / "empty"), "--jobs", "0")
    assert proc.returncode == 2 and "--jobs" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_an_interrupted_round_stops_its_grades(tmp_path, sig):
    """Ctrl-C and SIGTERM stop the grades in flight, stop whatever those grades left behind,
    and summarise (exit 130). A SIGKILLed round cannot clean up, but its grades die with
    it (each gets SIGTERM) and do their own cleanup."""
    import shutil
    import signal
    copies = tmp_path / "copies"                  # copies, so their processes can be found by cwd
    for name, src in (("reference", REFERENCE), ("starter", STARTER)):
        shutil.copytree(src, copies / name, ignore=shutil.ignore_patterns("__pycache__", "state"))
    folder = _link_submissions(tmp_path, reference=copies / "reference", starter=copies / "starter")
    out = tmp_path / "rounds"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "graders.cli", "round", str(folder), "--out", str(out),
                             "--seed", "9"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list(out.glob("*/*/grade.log")):
            time.sleep(0.2)
        time.sleep(2.0)                               # the grades are running
        proc.send_signal(getattr(signal, sig))
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    if sig == "SIGKILL":
        deadline = time.monotonic() + 30          # the grades end after their SIGTERM
        while time.monotonic() < deadline and _grades_under(tmp_path):
            time.sleep(0.5)
        assert _grades_under(tmp_path) == [], "grades outlived the SIGKILLed round"
        for line in _processes_under(tmp_path):   # what a grade itself failed to stop
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
        return
    assert _processes_under(tmp_path) == [], "grades or candidate services outlived the round"
    assert proc.returncode == 130, stdout[-2000:] + stderr[-2000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    rows = list(csv.DictReader((out / "latest" / "summary.csv").read_text().splitlines()))
    assert {r["submission"] for r in rows} == {"reference", "starter"}
    assert all(r["incomplete"] == "yes" for r in rows), rows


def _grades_under(path: Path) -> list[str]:
    return [line for line in _processes_under(path) if "graders.cli grade" in line]


def _processes_under(path: Path) -> list[str]:
    """Processes whose command line or working directory names `path` (grades of this
    test name their --out in it; the candidate services run with cwd in its copies)."""
    found, needle = [], str(path)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if needle in args or cwd.startswith(needle):
            found.append(f"{entry.name}: {args[:200]} (cwd {cwd})")
    return found
