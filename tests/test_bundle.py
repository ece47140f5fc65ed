"""The candidate bundle: hidden checks are absent from the shipped code, the reference and
the rubric are not shipped, and the bundle installs into a fresh virtual environment
and self-checks the bundled starter from there.

Why test the transforms on synthetic sources as well as the real bundle: the real check
modules change under other people's hands; the synthetic cases pin down the rules
(hidden removed, shared helpers kept, computed visibility refused) whatever they contain.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from graders import packaging as P
from graders.checks.registry import CHALLENGES, all_checks
from graders.paths import REPO_ROOT

SYNTH = textwrap.dedent('''\
    from graders.checks.registry import check


    def _shared(x):
        return x + 1


    def _only_hidden(x):
        return _only_hidden_inner(x) * 2


    def _only_hidden_inner(x):
        return x


    @check(id="a.visible", title="visible one", items=["i"], stage=1, challenge="pipeline-basics")
    def visible(ctx):
        return _shared(1)


    @check(id="a.secret", title="the secret one", items=["i"], stage=1,
           challenge="pipeline-basics", visibility="hidden")
    def secret(ctx):
        """Secret strategy."""
        return _shared(_only_hidden(2))


    def public_helper():
        return 3
    ''')


def test_strip_hidden_removes_hidden_and_its_private_helpers_only():
    out, removed = P.strip_hidden_checks(SYNTH)
    assert removed == ["a.secret"]
    assert "a.secret" not in out and "Secret strategy" not in out and "def secret" not in out
    assert "_only_hidden" not in out and "_only_hidden_inner" not in out
    assert "def _shared" in out and "def visible" in out and "def public_helper" in out
    compile(out, "<synth>", "exec")  # still valid Python
    assert [c["id"] for c in P.registered_checks(out)] == ["a.visible"]


def test_strip_hidden_without_hidden_checks_is_identity():
    src = SYNTH.replace(', visibility="hidden"', "")
    assert P.strip_hidden_checks(src) == (src, [])


def test_computed_visibility_is_refused():
    src = SYNTH.replace('visibility="hidden"', "visibility=VIS")
    with pytest.raises(P.PackagingError, match="literal"):
        P.strip_hidden_checks(src)


def test_filter_subcommands_keeps_order_and_only_allowed():
    cli = (REPO_ROOT / "graders" / "cli.py").read_text()
    out = P.filter_subcommands(cli, ["clean", "check", "nonexistent"])
    tables = [ast.literal_eval(n.value) for n in ast.parse(out).body
              if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "SUBCOMMANDS"]
    assert tables == [(("check", "graders.commands.check"), ("clean", "graders.commands.clean"))]
    with pytest.raises(P.PackagingError):
        P.filter_subcommands("X = 1\n", ["check"])


def test_module_imports_resolves_relative_and_from_imports():
    src = "from ..client import a\nfrom . import base\nimport json\nfrom graders.checks import (x, y)\n" \
          "def f():\n    from graders.topology import T\n"
    got = P.module_imports(src, "graders.drivers.docker", False)
    assert {"graders.client", "graders.client.a", "graders.drivers", "graders.drivers.base", "json",
            "graders.checks", "graders.checks.x", "graders.topology"} <= got
    assert "graders.drivers.base" in P.module_imports("from .base import X\n", "graders.drivers", True)


def test_import_closure_and_requirements():
    sources = {
        "graders": ("", True),
        "graders.a": ("import graders.b\nimport prometheus_client\n", False),
        "graders.b": ("from . import c\n", False),
        "graders.c": ("import os\n", False),
        "graders.unused": ("import hypothesis\n", False),
    }
    mods, third = P.import_closure(sources, ["graders.a"])
    assert mods == {"graders", "graders.a", "graders.b", "graders.c"}
    assert third == {"prometheus_client"}
    assert P.requirements_for({"prometheus_client", "docker"}) == (["prometheus-client>=0.17"],
                                                                   {"docker": ["docker>=7"]})
    with pytest.raises(P.PackagingError, match="no known distribution"):
        P.requirements_for({"leftpad"})
    with pytest.raises(P.PackagingError):
        P.import_closure({"graders": ("", True), "graders.a": ("import graders.zzz\n", False)}, ["graders.a"])


def test_committed_workflow_is_the_generated_one():
    """One source of truth: challenges/ci/github-actions.yml equals the renderer's output,
    parses as YAML, and grades every challenge with the classroom reporter."""
    text = (REPO_ROOT / "challenges" / "ci" / "github-actions.yml").read_text()
    assert text == P.render_github_workflow(CHALLENGES)
    wf = yaml.safe_load(text)
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` key as true
    assert "push" in on
    runs = [s["run"] for s in wf["jobs"]["self-check"]["steps"] if "run" in s]
    assert any("faultdrill check \"$FAULTDRILL_SUBMISSION\"" in r for r in runs)
    grading = [s for s in wf["jobs"]["autograding"]["steps"]
               if s.get("uses", "").startswith("classroom-resources/autograding-command-grader")]
    assert [s["with"]["test-name"] for s in grading] == list(CHALLENGES)
    reporter = wf["jobs"]["autograding"]["steps"][-1]
    ids = [s["id"] for s in grading]
    assert reporter["with"]["runners"].split(",") == ids
    assert set(reporter["env"]) == {f"{i.upper()}_RESULTS" for i in ids}


# --------------------------------------------------------------------------- the real bundle

def _hidden_and_visible():
    specs = all_checks()
    hidden = [c for c in specs if c.visibility == "hidden"]
    visible = sorted(c.id for c in specs if c.visibility == "visible")
    return hidden, visible


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "candidate"
    info = P.build_candidate_bundle(out)
    return out, info


def test_bundle_contents(bundle):
    out, info = bundle
    hidden, visible = _hidden_and_visible()
    assert hidden, "the kit is expected to have interviewer-only checks"
    for rel in ("challenges/SPEC.md", "challenges/CANDIDATE_GUIDE.md", "challenges/starter/faultdrill.toml",
                "challenges/schemas/submit.json", "challenges/ci/github-actions.yml", "pyproject.toml",
                "README.md", "graders/commands/check.py", ".github/workflows/faultdrill.yml", "BUNDLE.json"):
        assert (out / rel).is_file(), rel
    for name in CHALLENGES:
        assert (out / "challenges" / name / "README.md").is_file()
    assert not (out / "reference_impl").exists() and not (out / "rubric").exists()
    for rel in ("graders/commands/grade.py",):  # shipped as a helper module of check ...
        assert (out / rel).is_file()
    for rel in ("graders/commands/rubric.py", "graders/commands/calibrate.py", "graders/commands/demo.py",
                "graders/commands/bundle.py", "graders/commands/gradescope.py", "graders/packaging.py",
                "graders/report/rubric_md.py"):
        assert not (out / rel).exists(), rel
    assert not list(out.rglob("__pycache__")) and not list(out.rglob("*.pyc"))
    # No trace of a hidden check anywhere (ids, titles), nor its docstring.
    everything = "\n".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    for c in hidden:
        assert c.id not in everything
        assert c.title not in everything
        if c.doc:
            assert c.doc.splitlines()[0] not in everything
    manifest = json.loads((out / "BUNDLE.json").read_text())
    assert manifest["checks"] == visible == info.checks
    assert manifest["interviewer_only_checks_removed"] == len(hidden)
    assert "check" in manifest["commands"] and "grade" not in manifest["commands"]
    assert (out / ".github/workflows/faultdrill.yml").read_text() == \
        (REPO_ROOT / "challenges/ci/github-actions.yml").read_text()
    assert P.verify_candidate_bundle(out, [m for c in hidden for m in (c.id, c.title)]) == []


def test_verification_catches_leaks(tmp_path, bundle):
    out, _ = bundle
    hidden, _ = _hidden_and_visible()
    leak = tmp_path / "leaky"
    (leak / "graders").mkdir(parents=True)
    (leak / "graders" / "x.py").write_text(f"# {hidden[0].id}\nfrom reference_impl.work import collect\n")
    (leak / "reference_impl").mkdir()
    (leak / "notes").mkdir()
    (leak / "notes" / "rubric.toml").write_text("")
    problems = P.verify_candidate_bundle(leak, [hidden[0].id])
    text = "\n".join(problems)
    assert "mentions interviewer-only check" in text and "imports reference_impl" in text
    assert "reference_impl/ is in the bundle" in text and "rubric.toml" in text


def test_bundle_refuses_to_overwrite(tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(P.PackagingError, match="not empty"):
        P.build_candidate_bundle(out)
    with pytest.raises(P.PackagingError, match="not an earlier faultdrill bundle"):
        P.build_candidate_bundle(out, force=True)
    assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    P.build_candidate_bundle(out)                      # an empty folder is fine
    (out / "stale.txt").write_text("old")
    P.build_candidate_bundle(out, force=True)          # an earlier bundle is replaced
    assert not (out / "stale.txt").exists() and (out / "BUNDLE.json").is_file()


def test_bundle_cli(tmp_path):
    out = tmp_path / "cli-bundle"
    proc = subprocess.run([sys.executable, "-m", "graders.cli", "bundle", "--for", "candidate", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "interviewer-only checks removed" in proc.stdout
    again = subprocess.run([sys.executable, "-m", "graders.cli", "bundle", str(out)],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "not empty" in again.stderr


def _clean_env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_"))}
    env.update(HOME=str(tmp), PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")
    return env


@pytest.mark.slow
def test_bundle_installs_in_fresh_venv_and_self_checks_the_starter(bundle, tmp_path):
    """python3 -m venv (system site packages give it the dependencies offline), pip
    install the bundle (not editable, no index), then run the candidate's commands from
    the venv with the working directory outside the repository."""
    out, _ = bundle
    _hidden, visible = _hidden_and_visible()
    venv = tmp_path / "venv"
    env = _clean_env(tmp_path)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=120, env=env, cwd=tmp_path)
    py = venv / "bin" / "python"
    # Offline when the build backend's own needs (setuptools, wheel) are already present;
    # otherwise pip fetches only those for the isolated build (the runtime dependencies
    # come from the system site packages either way).
    offline = subprocess.run([str(py), "-c", "import setuptools, wheel"], capture_output=True,
                             timeout=60, env=env, cwd=tmp_path).returncode == 0
    flags = ["--no-index", "--no-build-isolation"] if offline else []
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", *flags, str(out)],
                         capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert pip.returncode == 0, pip.stdout + pip.stderr

    probe = subprocess.run([str(py), "-c", textwrap.dedent("""\
        import json, graders
        from graders.checks.registry import all_checks
        print(json.dumps({"file": graders.__file__,
                          "checks": sorted(c.id for c in all_checks()),
                          "hidden": [c.id for c in all_checks() if c.visibility != "visible"]}))
        """)], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    got = json.loads(probe.stdout)
    assert got["file"].startswith(str(venv)), got["file"]   # the bundle's copy, not the repo's
    assert got["checks"] == visible and got["hidden"] == []

    fd = venv / "bin" / "faultdrill"
    helptext = subprocess.run([str(fd), "--help"], capture_output=True, text=True, timeout=60, env=env,
                              cwd=tmp_path).stdout
    assert " check " in helptext or "check" in helptext.split("COMMAND")[-1]
    for absent in ("grade", "rubric", "calibrate", "demo", "bundle", "gradescope"):
        assert f"\n    {absent} " not in helptext, helptext

    check = subprocess.run([str(fd), "check", str(out / "challenges" / "starter"), "--challenge",
                            "pipeline-basics", "--seed", "4242"],
                           capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-2000:]
    assert "visible checks passed" in check.stdout and "seed 4242" in check.stdout

    # The CI template's own steps, run as GitHub runs them (bash -e), from the bundle root.
    wf = yaml.safe_load((out / ".github/workflows/faultdrill.yml").read_text())
    steps = {s.get("name"): s for s in wf["jobs"]["self-check"]["steps"]}
    ci_env = dict(env, PATH=f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}", GITHUB_RUN_NUMBER="7",
                  FAULTDRILL_SUBMISSION="challenges/starter")
    find = subprocess.run(["bash", "-e", "-c", steps["Find the submission"]["run"]], cwd=out,
                          env=dict(ci_env, FAULTDRILL_SUBMISSION="submission"), capture_output=True,
                          text=True, timeout=30)
    assert find.returncode == 1 and "::error::" in find.stdout
    selfcheck = subprocess.run(["bash", "-e", "-c", steps["faultdrill check (all visible checks, staged)"]["run"]],
                               cwd=out, env=ci_env, capture_output=True, text=True, timeout=240)
    log = (out / "faultdrill-check.txt").read_text()
    assert "seed 7" in log and "[grader:summary]" in log, log[-2000:]
    # red exactly when the check says a stage failed (the starter stops at an early stage)
    assert (selfcheck.returncode != 0) == ("failed" in log.splitlines()[-1]), log[-1500:]
