"""The Gradescope autograder package: its contents, its determinism, the results.json it
writes in every situation, and a full setup.sh + run_autograder run against a simulated
/autograder layout (FAULTDRILL_AUTOGRADER_ROOT) grading the starter with a few checks.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest

from graders import packaging as P
from graders.paths import REPO_ROOT, STARTER

# Gradescope's results.json (autograder specification): top level and per test.
GRADESCOPE_SCHEMA = {
    "type": "object",
    "anyOf": [{"required": ["score"]}, {"required": ["tests"]}],
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number"},
        "output": {"type": "string"},
        "output_format": {"enum": ["text", "simple_format", "html", "md", "ansi"]},
        "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "stdout_visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "extra_data": {"type": "object"},
        "leaderboard": {"type": "array"},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "status"],
                "additionalProperties": False,
                "properties": {
                    "score": {"type": "number"},
                    "max_score": {"type": "number"},
                    "status": {"enum": ["passed", "failed"]},
                    "name": {"type": "string", "minLength": 1},
                    "number": {"type": "string"},
                    "output": {"type": "string"},
                    "output_format": {"enum": ["text", "simple_format", "html", "md", "ansi"]},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
                    "extra_data": {"type": "object"},
                },
            },
        },
    },
}


def _extract(zip_path: Path, dest: Path) -> None:
    """Like `unzip`: contents and the Unix modes stored in the zip."""
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            zf.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                (dest / info.filename).chmod(mode)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    out = tmp_path_factory.mktemp("gs") / "autograder.zip"
    info = P.build_gradescope_zip(out)
    return out, info


def test_zip_layout(package):
    out, info = package
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in zf.infolist()}
        assert {"setup.sh", "run_autograder", "faultdrill/pyproject.toml", "faultdrill/graders/cli.py",
                "faultdrill/graders/commands/grade.py", "faultdrill/graders/packaging.py",
                "faultdrill/rubric/rubric.toml"} <= names
        assert modes["setup.sh"] == 0o755 and modes["run_autograder"] == 0o755
        # the starter's code ships so feedback can point at its CHALLENGE(...) lines
        assert "faultdrill/challenges/starter/orchestrator.py" in names
        assert not any(n.startswith("faultdrill/challenges/") and not n.startswith("faultdrill/challenges/starter/")
                       for n in names)
        assert not any(n.startswith(("reference_impl", "faultdrill/reference_impl")) for n in names)
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        pyproject = zf.read("faultdrill/pyproject.toml").decode()
        assert 'faultdrill = "graders.cli:main"' in pyproject
        for dep in info.deps:
            assert json.dumps(dep) in pyproject
        cli = zf.read("faultdrill/graders/cli.py").decode()
        assert "graders.commands.grade" in cli and "graders.commands.bundle" not in cli
    # hidden checks are graded here, so they must be present
    assert any("visibility=\"hidden\"" in (REPO_ROOT / "graders/checks" / f).read_text()
               for f in ("security.py", "lifecycle.py"))


def test_zip_is_deterministic_and_not_overwritten(package, tmp_path):
    out, _ = package
    second = tmp_path / "again.zip"
    P.build_gradescope_zip(second)
    assert second.read_bytes() == out.read_bytes()
    with pytest.raises(P.PackagingError, match="exists"):
        P.build_gradescope_zip(second)
    P.build_gradescope_zip(second, force=True)


def test_wheelhouse_must_hold_deps_and_build_backend(tmp_path):
    wh = tmp_path / "wheels"
    wh.mkdir()
    (wh / "wheel-0.45.0-py3-none-any.whl").write_bytes(b"not really")
    with pytest.raises(P.PackagingError, match="setuptools"):
        P.build_gradescope_zip(tmp_path / "x.zip", wheelhouse=wh)


def _manifest(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "faultdrill.toml").write_text("[submission]\n")
    return d


def _bundle(d: Path) -> None:
    """What a candidate bundle puts in a repository: the SPEC and the kit's starter."""
    (d / "challenges").mkdir(parents=True, exist_ok=True)
    (d / "challenges" / "SPEC.md").write_text("# SPEC\n")
    _manifest(d / "challenges" / "starter")


def test_find_submission_in_the_usual_upload_layouts(tmp_path):
    sub = tmp_path / "submission"
    sub.mkdir()
    with pytest.raises(P.SubmissionLayoutError, match="no faultdrill.toml"):
        P.find_submission(sub)
    # a zipped folder: the manifest one level down
    _manifest(sub / "myproj")
    assert P.find_submission(sub) == sub / "myproj"
    # two at one level: refused, naming both
    _manifest(sub / "other")
    with pytest.raises(P.SubmissionLayoutError, match=r"2 folders .*myproj/, other/"):
        P.find_submission(sub)
    # the manifest at the top wins over deeper ones
    _manifest(sub)
    assert P.find_submission(sub) == sub


def test_find_submission_in_a_repository_holding_the_bundle(tmp_path):
    repo = tmp_path / "submission"
    _bundle(repo)
    _manifest(repo / "submission")
    assert P.find_submission(repo) == repo / "submission"
    assert P.replay_path_for(repo / "submission", repo) == "submission"
    # the same repository zipped as a folder
    nested = tmp_path / "zipped"
    _bundle(nested / "repo-main")
    _manifest(nested / "repo-main" / "mine")
    assert P.find_submission(nested) == nested / "repo-main" / "mine"
    # the candidate edited the bundle's starter in place: it is the submission
    inplace = tmp_path / "inplace"
    _bundle(inplace)
    assert P.find_submission(inplace) == inplace / "challenges" / "starter"
    assert P.replay_path_for(inplace / "challenges" / "starter", inplace) == "challenges/starter"
    # a tie at one level is broken only by the bundle's `submission/` convention
    _manifest(repo / "notes")
    assert P.find_submission(repo) == repo / "submission"


def test_find_submission_follows_no_links_and_skips_tooling(tmp_path):
    outside = _manifest(tmp_path / "outside")
    sub = tmp_path / "submission"
    sub.mkdir()
    (sub / "link").symlink_to(outside, target_is_directory=True)
    (sub / "node_modules").mkdir()
    _manifest(sub / "node_modules" / "pkg")
    _manifest(sub / ".git" / "x")
    (sub / "faultdrill.toml").symlink_to(outside / "faultdrill.toml")
    with pytest.raises(P.SubmissionLayoutError, match="no faultdrill.toml"):
        P.find_submission(sub)
    with pytest.raises(P.SubmissionLayoutError, match="not a folder"):
        P.find_submission(tmp_path / "missing")


def test_seed_from_metadata_env_and_stability(tmp_path, monkeypatch):
    monkeypatch.delenv("FAULTDRILL_SEED", raising=False)
    (tmp_path / "submission_metadata.json").write_text(json.dumps({"id": 987654}))
    a = P.seed_for(tmp_path)
    assert a == P.seed_for(tmp_path) and 0 <= a < 1_000_000
    (tmp_path / "submission_metadata.json").write_text(json.dumps({"id": 987655}))
    assert P.seed_for(tmp_path) != a
    monkeypatch.setenv("FAULTDRILL_SEED", "31337")
    assert P.seed_for(tmp_path) == 31337


@pytest.mark.parametrize("kind", ["submission", "grader"])
def test_failure_results_are_valid_gradescope(kind):
    r = P.failure_results(kind, "boom", seed=5, elapsed=0.1234)
    jsonschema.validate(r, GRADESCOPE_SCHEMA)
    assert r["score"] == 0 and r["tests"][0]["status"] == "failed"
    # a grader error can never cost the candidate points
    assert (r["tests"][0]["max_score"] == 0) == (kind == "grader")
    assert ("GRADER ERROR" in r["output"]) == (kind == "grader")
    assert r["extra_data"]["incomplete"] == (kind == "grader")


def test_autograde_without_manifest_writes_results(tmp_path):
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "notes.txt").write_text("I forgot the manifest")
    assert P.autograde(tmp_path) == 0
    r = json.loads((tmp_path / "results" / "results.json").read_text())
    jsonschema.validate(r, GRADESCOPE_SCHEMA)
    assert r["score"] == 0 and "faultdrill.toml" in r["output"]


def test_autograde_bad_manifest_is_the_submissions_fault(tmp_path, monkeypatch):
    """`faultdrill grade` exits 2 on a broken manifest: reported as the submission's
    failure (with grade's own sentence), not as a grader error."""
    sub = tmp_path / "submission"
    sub.mkdir()
    (sub / "faultdrill.toml").write_text("[submission\nthis is not toml")
    monkeypatch.setenv("FAULTDRILL_SEED", "77")
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    assert P.autograde(tmp_path, timeout=120) == 0
    r = json.loads((tmp_path / "results" / "results.json").read_text())
    jsonschema.validate(r, GRADESCOPE_SCHEMA)
    assert r["extra_data"]["failure"] == "submission" and r["extra_data"]["seed"] == 77
    assert r["tests"][0]["max_score"] == 1.0 and "GRADER ERROR" not in r["output"]
    visible = json.dumps([r["output"]] + [t for t in r["tests"] if t["visibility"] != "hidden"])
    assert "faultdrill grade" not in visible, "candidates do not have that command"
    assert "faultdrill check ." in visible and "TOML" in visible


def test_the_grader_log_reaches_instructors_only():
    """The log of a grade names interviewer-only checks: a failure keeps it in a hidden
    test (and stdout), never in what candidates see."""
    log = "[grader:security.hostile_fuzz] stage 3: generated hostile frames\nTraceback ..."
    r = P.failure_results("grader", "the grader stopped before writing a report (exit status 3)",
                          seed=1, elapsed=0.5, detail=log)
    jsonschema.validate(r, GRADESCOPE_SCHEMA)
    visible = json.dumps([r["output"]] + [t for t in r["tests"] if t["visibility"] != "hidden"])
    assert "hostile_fuzz" not in visible and "Traceback" not in visible
    assert [t["output"] for t in r["tests"] if t["visibility"] == "hidden"] == [log]


@pytest.mark.slow
def test_setup_and_run_autograder_on_simulated_autograder(package, tmp_path):
    """The whole Gradescope life cycle in a temp dir: unzip to source/, setup.sh,
    run_autograder copied to the root, the starter as the submission."""
    out, _ = package
    root = tmp_path / "autograder"
    _extract(out, root / "source")
    (root / "run_autograder").write_bytes((root / "source" / "run_autograder").read_bytes())
    (root / "run_autograder").chmod(0o755)
    import shutil
    # a repository holding the candidate bundle's starter and the candidate's own folder
    shutil.copytree(STARTER, root / "submission" / "challenges" / "starter",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (root / "submission" / "challenges" / "SPEC.md").write_text("# SPEC\n")
    shutil.copytree(STARTER, root / "submission" / "mysub", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (root / "submission_metadata.json").write_text(json.dumps({"id": 424242}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(FAULTDRILL_AUTOGRADER_ROOT=str(root), FAULTDRILL_PYTHON=sys.executable,
               FAULTDRILL_VENV_ARGS="--system-site-packages", HOME=str(tmp_path),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("FAULTDRILL_SEED", None)
    setup = subprocess.run(["bash", str(root / "source" / "setup.sh")], cwd=root / "source", env=env,
                           capture_output=True, text=True, timeout=300)
    assert setup.returncode == 0, setup.stdout[-2000:] + setup.stderr[-3000:]
    assert (root / "faultdrill-venv" / "bin" / "faultdrill").exists()

    only = "pipeline.triage_oracle,api.status_list,security.token_refused,versioning.hello"
    env["FAULTDRILL_GRADE_ARGS"] = f"--only {only}"
    run = subprocess.run([str(root / "run_autograder")], cwd=root, env=env, capture_output=True, text=True,
                         timeout=180)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    results = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(results, GRADESCOPE_SCHEMA)
    # --only makes `faultdrill grade` write a replay folder beside results/faultdrill
    reports = ([root / "results" / "faultdrill"] + sorted((root / "results").glob("faultdrill-replay-*")))[-1]
    names = sorted(t["extra_data"]["check_id"] for t in results["tests"] if "check_id" in t["extra_data"])
    assert names == sorted(only.split(",")), (names, (reports / "grade.log").read_text()[-3000:])
    assert results["extra_data"]["partial"] is True and "PARTIAL" in results["output"]
    summary = [t for t in results["tests"] if t["extra_data"].get("kind") == "interviewer_summary"]
    assert len(summary) == 1 and summary[0]["visibility"] == "hidden" and "suggested" in summary[0]["output"]
    # instructors see the summary on stdout (hidden from students)
    assert results["stdout_visibility"] == "hidden"
    assert "faultdrill: score" in run.stdout and "suggested level" in run.stdout, run.stdout[-2000:]
    assert "grading " + str(root / "submission" / "mysub") in run.stdout
    total = sum(t["score"] for t in results["tests"])
    assert abs(results["score"] - total) < 1e-6
    assert all(0 <= t["score"] <= t["max_score"] for t in results["tests"])
    # the starter passes the first stage; its result must say so
    by = {t["name"].split(":")[0]: t for t in results["tests"]}
    assert by["pipeline.triage_oracle"]["status"] == "passed"
    # a failed visible check replays with the candidate's own folder and command
    failed = [t for t in results["tests"] if t["status"] == "failed" and t["visibility"] == "visible"]
    for t in failed:
        assert "replay: faultdrill check mysub --challenge " in t["output"], t["output"]
    # seed derived from the submission id, printed, reports kept
    seed = P.seed_for(root)
    assert results["extra_data"]["seed"] == seed and f"Seed {seed}" in results["output"]
    for name in ("report.html", "junit.xml", "report.md", "grade.log"):
        assert (reports / name).is_file()
    # run_autograder with no venv still leaves a results.json that says why
    shutil.rmtree(root / "faultdrill-venv")
    (root / "results" / "results.json").unlink()
    again = subprocess.run([str(root / "run_autograder")], cwd=root, env=env, capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 0
    broken = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(broken, GRADESCOPE_SCHEMA)
    assert "GRADER ERROR" in broken["output"]


def test_gradescope_cli(tmp_path):
    out = tmp_path / "ag.zip"
    proc = subprocess.run([sys.executable, "-m", "graders.cli", "gradescope", str(out)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert zipfile.is_zipfile(out) and stat.S_ISREG(out.stat().st_mode)
    again = subprocess.run([sys.executable, "-m", "graders.cli", "gradescope", str(out)], cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "exists" in again.stderr


# --- run_autograder as a non-root user --------------------------------------------------------
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
needs_setpriv = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                                   reason="needs root and setpriv to run the autograder as another user")


@pytest.fixture
def world_dir():
    """A temporary autograder root any user can enter (pytest's tmp_path is 0700)."""
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="fd-ag-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _as_nobody(args, root: Path, **kw):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO_ROOT), "HOME": str(root),
           "FAULTDRILL_AUTOGRADER_ROOT": str(root), "FAULTDRILL_SEED": "5"}
    return subprocess.run(NOBODY + args, env=env, capture_output=True, text=True, timeout=120, **kw)


def _autograde_as_nobody(root: Path):
    return _as_nobody([sys.executable, "-m", "graders.packaging", "autograde", "--root", str(root)], root)


def _upload(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / "submission" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for p in [root / "submission", *(root / "submission").rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


@needs_setpriv
def test_non_root_with_a_root_owned_results_dir_says_why_without_a_traceback(world_dir):
    _upload(world_dir, {"notes.txt": "no manifest"})
    (world_dir / "results").mkdir(mode=0o755)
    proc = _autograde_as_nobody(world_dir)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "cannot write" in proc.stderr and "uid 65534" in proc.stderr and "as root" in proc.stderr
    assert not (world_dir / "results" / "results.json").exists()
    # the bash entry point without an installed kit says the same kind of thing
    script = world_dir / "run_autograder"
    script.write_text(P.RUN_AUTOGRADER)
    script.chmod(0o755)
    sh = _as_nobody([str(script)], world_dir)
    assert sh.returncode == 1 and "cannot write" in sh.stderr and "Permission denied" not in sh.stderr


@needs_setpriv
def test_non_root_writes_into_an_existing_results_json(world_dir):
    """results/ owned by root but results.json writable: written in place; the full
    reports go to a temporary folder named in the output."""
    _upload(world_dir, {"notes.txt": "no manifest"})
    results = world_dir / "results"
    results.mkdir(mode=0o755)
    (results / "results.json").write_text("{}")
    (results / "results.json").chmod(0o666)
    proc = _autograde_as_nobody(world_dir)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    r = json.loads((results / "results.json").read_text())
    jsonschema.validate(r, GRADESCOPE_SCHEMA)
    assert r["extra_data"]["failure"] == "submission" and "faultdrill.toml" in r["output"]
    assert "cannot be written; the full reports are in" in proc.stdout
    for line in proc.stdout.splitlines():
        if "the full reports are in " in line:
            shutil.rmtree(line.rsplit(" ", 1)[1], ignore_errors=True)


def _nobody_can_grade(root: Path) -> bool:
    """Whether uid 65534 can run `faultdrill grade` with this interpreter (its packages may
    live where that user cannot read, e.g. under /root)."""
    probe = _as_nobody([sys.executable, "-c", "import graders.cli, graders.checks, hypothesis, jsonschema"], root)
    if probe.returncode != 0:
        return False
    # ... and whether that user can set up the sandbox with it (user mode re-executes this
    # interpreter inside a new user namespace, where a Python under a 0700 /root, as with
    # pyenv, cannot be executed; the grade then rightly refuses: INCOMPLETE).
    sandbox = _as_nobody([sys.executable, "-c", "import sys; from graders.sandbox import probe; "
                          "sys.exit(0 if probe().ok else 1)"], root)
    return sandbox.returncode == 0


@needs_setpriv
def test_non_root_with_its_own_results_dir_finds_the_submission_and_grades(world_dir):
    """As uid 65534 with a results/ it owns: an ambiguous upload is refused with both
    folders named; a repository holding the bundle is graded (`faultdrill grade` run as
    that user refuses the broken manifest: the submission's failure, shown on stdout)."""
    _upload(world_dir, {"challenges/SPEC.md": "# SPEC\n", "challenges/starter/faultdrill.toml": "[submission]\n",
                        "a/faultdrill.toml": "[submission]\n", "b/faultdrill.toml": "[submission]\n"})
    results = world_dir / "results"
    results.mkdir()
    os.chown(results, 65534, 65534)
    proc = _autograde_as_nobody(world_dir)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    r = json.loads((results / "results.json").read_text())
    jsonschema.validate(r, GRADESCOPE_SCHEMA)
    assert r["extra_data"]["failure"] == "submission" and "a/, b/" in r["output"]
    assert "a/, b/" in proc.stdout, "instructors see why on stdout"
    assert (results / "faultdrill").is_dir()
    if not _nobody_can_grade(world_dir):
        pytest.skip("uid 65534 cannot import the kit's dependencies or set up the sandbox with "
                    "this interpreter")
    shutil.rmtree(world_dir / "submission" / "b")
    (world_dir / "submission" / "a" / "faultdrill.toml").write_text("[submission\nnot toml")
    proc = _autograde_as_nobody(world_dir)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((results / "results.json").read_text())
    assert r["extra_data"]["failure"] == "submission", r
    assert f"grading {world_dir / 'submission' / 'a'}" in proc.stdout
    assert (results / "faultdrill" / "grade.log").is_file()


def _fake_grade(monkeypatch, code: int, *, report: dict | None = None, log: str = ""):
    """Stand in for the `faultdrill grade` subprocess: write its log (and reports) and
    exit with `code`."""
    def run(cmd, stdout, _timeout):
        out = Path(cmd[cmd.index("--out") + 1])
        stdout.write(log.encode())
        if report is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "results.json").write_text(json.dumps(report))
            (out / "report.md").write_text("# faultdrill grade: x\n")
        return code
    monkeypatch.setattr(P, "_run_bounded", run)


def test_autograde_an_incomplete_grade_without_a_report(tmp_path, monkeypatch, capsys):
    """`faultdrill grade` refused to start (preflight, exit 3): INCOMPLETE for everyone,
    the reason for instructors only."""
    _manifest(tmp_path / "submission")
    _fake_grade(monkeypatch, 3, log="[grader:tls.mutual] preflight: the sandbox cannot run here\n")
    assert P.autograde(tmp_path) == 0
    r = json.loads((tmp_path / "results" / "results.json").read_text())
    jsonschema.validate(r, GRADESCOPE_SCHEMA)
    assert r["output"].startswith("INCOMPLETE") and r["extra_data"]["incomplete"] is True
    visible = json.dumps([r["output"]] + [t for t in r["tests"] if t["visibility"] != "hidden"])
    assert "tls.mutual" not in visible and "exit status 3" in visible
    assert "sandbox cannot run here" in capsys.readouterr().out


def test_autograde_a_completed_grade_with_failures(tmp_path, monkeypatch, capsys):
    """Exit 1 (some checks failed) is a completed grade: its results go to Gradescope with
    the candidate's folder in the replay lines and the instructors' summary added."""
    repo = tmp_path / "submission"
    _bundle(repo)
    _manifest(repo / "mine")
    report = {"score": 40.0, "max_score": 100.0, "output": "**Score 40 / 100**", "tests": [
        {"name": "a.b: t", "number": "1.1", "score": 0.0, "max_score": 60.0, "status": "failed",
         "output": "m\nreplay: faultdrill check PATH --challenge idempotency --seed 5", "visibility": "visible",
         "extra_data": {"check_id": "a.b", "verdict": "fail"}},
        {"name": "c.d: t", "number": "1.h1", "score": 40.0, "max_score": 40.0, "status": "passed",
         "output": "passed", "visibility": "hidden", "extra_data": {"check_id": "c.d", "verdict": "pass"}}],
        "extra_data": {"seed": 5, "incomplete": False, "areas": {}, "overall": {"score": 0.4},
                       "verdict_counts": {"pass": 1, "fail": 1, "error": 0}}}
    _fake_grade(monkeypatch, 1, report=report)
    monkeypatch.setenv("FAULTDRILL_SEED", "5")
    assert P.autograde(tmp_path) == 0
    r = json.loads((tmp_path / "results" / "results.json").read_text())
    jsonschema.validate(r, GRADESCOPE_SCHEMA)
    assert r["score"] == 40.0
    assert "replay: faultdrill check mine --challenge idempotency --seed 5" in r["tests"][0]["output"]
    assert r["tests"][-1]["extra_data"] == {"kind": "interviewer_summary"}
    assert "Seed 5: `faultdrill check mine --seed 5` replays the visible checks" in r["output"]
    out = capsys.readouterr().out
    assert "faultdrill: score 40 / 100" in out and f"grading {repo / 'mine'}" in out


def test_a_grade_past_its_bound_is_stopped_with_its_process_group(tmp_path, monkeypatch):
    """FAULTDRILL_GRADE_TIMEOUT: the grade (and anything it started) is stopped, and the
    result says the grade did not finish: INCOMPLETE, not the candidate's 0."""
    monkeypatch.setattr(P, "_TERM_GRACE_S", 1.0)
    pidfile = tmp_path / "child.pid"
    # a "grade" that ignores SIGTERM and leaves a child in its process group
    script = ("import os, signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              f"c = subprocess.Popen(['sleep', '60']); open({str(pidfile)!r}, 'w').write(str(c.pid)); time.sleep(60)")
    t0 = __import__("time").monotonic()
    code = P._run_bounded([sys.executable, "-c", script], open(tmp_path / "log", "wb"), 1.0)
    assert code is None and __import__("time").monotonic() - t0 < 15
    child = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        __import__("time").sleep(0.1)
    else:
        pytest.fail("the grade's child outlived the time bound")
