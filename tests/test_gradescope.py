"""The Gradescope autograder package: its contents, its determinism, the results.json it
writes in every situation, and a full setup.sh + run_autograder run against a simulated
/autograder layout (FAULTDRILL_AUTOGRADER_ROOT) grading the starter with a few checks.
"""
from __future__ import annotations

import json
import os
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


def test_find_submission(tmp_path):
    sub = tmp_path / "submission"
    sub.mkdir()
    assert P.find_submission(sub) is None
    (sub / "myproj").mkdir()
    (sub / "myproj" / "faultdrill.toml").write_text("")
    assert P.find_submission(sub) == sub / "myproj"
    (sub / "other").mkdir()
    (sub / "other" / "faultdrill.toml").write_text("")
    assert P.find_submission(sub) is None  # ambiguous: refuse to guess
    (sub / "faultdrill.toml").write_text("")
    assert P.find_submission(sub) == sub


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
    shutil.copytree(STARTER, root / "submission", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
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
    names = sorted(t["name"].split(":")[0] for t in results["tests"])
    assert names == sorted(only.split(",")), (names, (root / "results/faultdrill/grade.log").read_text()[-3000:])
    total = sum(t["score"] for t in results["tests"])
    assert abs(results["score"] - total) < 1e-6
    assert all(0 <= t["score"] <= t["max_score"] for t in results["tests"])
    # the starter passes the first stage; its result must say so
    by = {t["name"].split(":")[0]: t for t in results["tests"]}
    assert by["pipeline.triage_oracle"]["status"] == "passed"
    # seed derived from the submission id, printed, reports kept
    seed = P.seed_for(root)
    assert results["extra_data"]["seed"] == seed and f"Seed {seed}" in results["output"]
    for name in ("report.html", "junit.xml", "report.md", "grade.log"):
        assert (root / "results" / "faultdrill" / name).is_file()
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
