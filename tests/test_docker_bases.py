"""Docker grading without a registry is fair (SPEC §3's base-image convention), on a real engine.

- A Node.js submission (tests/fixtures/node-submission: `[docker] base = "node"`, standard
  library only) is built on the local Node.js base (docker/build-node-image.sh, built here
  if missing) and graded through the Docker driver: a real score, some checks passed and
  some failed, and no grader error.
- A submission whose base cannot be fetched (its Dockerfile ignores BASE_IMAGE and names
  an image this engine does not have, or its language's local base is missing) is never
  the candidate's 0: every check is a grader error whose message ends in the one-line
  fix, and the failing build is attempted once, not once per check.

Skipped only when no Docker engine can run here; FAULTDRILL_REQUIRE_DOCKER=1 (CI) makes
that a failure.
"""
from __future__ import annotations

import io
import os
import secrets
import shutil
from pathlib import Path

import pytest

from graders.manifest import load_manifest

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "tests" / "fixtures" / "node-submission"
STARTER = ROOT / "challenges" / "starter"
SEED = 20261201
FEW = ("pipeline.triage_oracle", "security.token_refused", "versioning.hello")


from tests.docker_engine import require_engine as _require_engine  # noqa: E402


def _grade(submission_dir: Path, driver, only=None):
    from graders.checks.registry import all_checks
    from graders.harness import Progress, run_checks, select_checks
    specs = select_checks(all_checks(), only=list(only) if only else None)
    out = io.StringIO()
    try:
        result = run_checks(specs, submission=load_manifest(submission_dir), driver=driver, seed=SEED,
                            progress=Progress(stream=out), driver_name="docker")
    finally:
        cleanup = driver.close()
    return result, specs, out.getvalue(), cleanup


def _leftovers(client, run_label_values) -> list[str]:
    from graders.drivers.docker import RUN_LABEL
    found = []
    for run_id in run_label_values:
        flt = {"label": f"{RUN_LABEL}={run_id}"}
        found += [f"container {c.name}" for c in client.containers.list(all=True, filters=flt)]
        found += [f"network {n.name}" for n in client.networks.list(filters=flt)]
        found += [f"volume {v.name}" for v in client.volumes.list(filters=flt)]
    return found


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_node_submission_is_graded_through_docker_on_the_local_node_base(monkeypatch):
    _require_engine()
    from graders.drivers import docker as dk
    client = dk.connect()
    assert dk.ensure_base_image(client, language="node") == dk.BASE_IMAGES["node"].local \
        or os.environ.get("FD_NODE_BASE_IMAGE")
    run_ids = []
    build_args = _count_builds(monkeypatch)

    class Recording(dk.DockerDriver):
        def deploy(self, submission, *, base_env):
            dep = super().deploy(submission, base_env=base_env)
            run_ids.append(dep.run_id)
            return dep

    driver = Recording()          # no override: the manifest's base = "node" picks the image
    result, specs, log, cleanup = _grade(NODE, driver)
    counts = {k: sum(1 for v in result.verdicts if v.status == k) for k in ("pass", "fail", "error")}
    errors = [(v.check_id, v.message) for v in result.verdicts if v.status == "error"]
    assert not errors, "\n".join(map(str, errors)) + "\n" + log[-4000:]
    from graders.checks.registry import runs_under
    assert len(result.verdicts) == len([s for s in specs if runs_under(s, "docker")])
    assert [n["id"] for n in result.not_run] == [s.id for s in specs if not runs_under(s, "docker")]
    # A real score: the protocol and the work are served (these pass), memory is not kept.
    passed = {v.check_id for v in result.verdicts if v.status == "pass"}
    assert {"pipeline.triage_oracle", "security.token_refused", "versioning.hello"} <= passed, counts
    assert counts["fail"] > 0, counts
    assert build_args and all(a == {"BASE_IMAGE": dk.base_image_name("node")} for a in build_args)
    assert cleanup.ok, cleanup
    assert _leftovers(client, run_ids) == []


def _unfetchable_copy(tmp_path: Path, dockerfile: str, manifest_extra: str = "") -> Path:
    sub = tmp_path / "sub"
    shutil.copytree(STARTER, sub, ignore=shutil.ignore_patterns("__pycache__"))
    (sub / "Dockerfile").write_text(dockerfile)
    if manifest_extra:
        toml = (sub / "faultdrill.toml").read_text().replace("[docker]\n", f"[docker]\n{manifest_extra}")
        (sub / "faultdrill.toml").write_text(toml)
    return sub


def _count_builds(monkeypatch) -> list[dict]:
    """Record the build args of every image build (the SDK's collection objects are made
    afresh on each access, so the method is wrapped on the class)."""
    from docker.models.images import ImageCollection
    builds: list[dict] = []
    real_build = ImageCollection.build

    def build(self, **kw):
        builds.append(dict(kw.get("buildargs") or {}))
        return real_build(self, **kw)
    monkeypatch.setattr(ImageCollection, "build", build)
    return builds


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_a_base_the_engine_cannot_fetch_is_an_environment_error_with_the_fix(tmp_path, monkeypatch):
    _require_engine()
    from graders.drivers import docker as dk
    dk.ensure_base_image(dk.connect())
    missing = f"faultdrill-test/not-here-{secrets.token_hex(4)}:1"
    sub = _unfetchable_copy(tmp_path, f"FROM {missing}\nWORKDIR /app\nCOPY *.py ./\n")
    builds = _count_builds(monkeypatch)
    result, specs, log, cleanup = _grade(sub, dk.DockerDriver(), FEW)
    assert [v.status for v in result.verdicts] == ["error"] * len(FEW), log[-3000:]
    for v in result.verdicts:
        assert "BuildEnvironmentError" in v.message and "not the candidate's failure" in v.message
        assert v.message.endswith(f"docker tag {dk.base_image_name('python')} {missing}"), v.message
    assert len(builds) == 1, f"the failing build ran {len(builds)} times"
    assert cleanup.ok, cleanup


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_a_missing_local_base_says_which_script_builds_it(tmp_path, monkeypatch):
    _require_engine()
    from graders.drivers import docker as dk
    wanted = f"faultdrill-test/no-node-{secrets.token_hex(4)}:1"
    monkeypatch.setenv("FD_NODE_BASE_IMAGE", wanted)
    sub = _unfetchable_copy(tmp_path, "ARG BASE_IMAGE=faultdrill-test/nowhere-node:20\nFROM ${BASE_IMAGE}\n",
                            manifest_extra='base = "node"\n')
    builds = _count_builds(monkeypatch)
    result, specs, log, cleanup = _grade(sub, dk.DockerDriver(), FEW[:1])
    (verdict,) = result.verdicts
    assert verdict.status == "error", log[-3000:]
    assert builds == [{}]     # the local base does not exist: the Dockerfile's default was tried
    assert "faultdrill-test/nowhere-node:20 cannot be fetched" in verdict.message
    assert verdict.message.endswith(f"Fix: run docker/build-node-image.sh (builds {wanted} "
                                    "from Debian packages for [docker] base = \"node\"), then grade again")
