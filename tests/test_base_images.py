"""The Docker driver's base-image convention and build-failure classification, without an engine.

A build that stops at FROM because the base cannot be fetched is the machine's fault (a
grader error, the grade INCOMPLETE, the fix in one line); a build that fails anywhere else,
or at a malformed FROM, stays the candidate's. Build logs below have the shape the engine's
build API streams (checked against a real engine with no registry reachable).
"""
from __future__ import annotations

import pytest

from graders.checks.registry import GraderError
from graders.drivers.base_images import (BASE_IMAGES, BuildEnvironmentError, base_image_name,
                                         consumes_base_image_arg, environment_error, failed_fetch,
                                         from_reference)
from graders.manifest import DOCKER_BASES, ManifestError, load_manifest
from graders.paths import REPO_ROOT

DNS_ERROR = ('Get "https://registry.example/v2/": dial tcp: lookup registry.example on 10.0.0.53:53: '
             "no such host")
CONVENTION = "ARG BASE_IMAGE=node:20-slim\nFROM ${BASE_IMAGE}\nWORKDIR /app\nCOPY . .\n"
HARDCODED = "FROM python:3.11-slim\nRUN echo hi\n"


def _log(*steps: str, error: str = DNS_ERROR) -> list[dict]:
    out = []
    for i, step in enumerate(steps, 1):
        out += [{"stream": f"Step {i}/{len(steps) + 2} : {step}"}, {"stream": "\n"}]
    return out + [{"errorDetail": {"message": error}, "error": error}]


def test_every_manifest_base_has_a_local_image_and_a_script():
    assert set(DOCKER_BASES) == set(BASE_IMAGES)
    for spec in BASE_IMAGES.values():
        assert (REPO_ROOT / spec.script).is_file(), spec.script
        assert spec.local.startswith("faultdrill/") and spec.env.startswith("FD_")


def test_base_image_name_override_order():
    assert base_image_name("node", environ={}) == "faultdrill/node-base:bookworm"
    assert base_image_name("node", environ={"FD_NODE_BASE_IMAGE": "mine/node"}) == "mine/node"
    assert base_image_name("python", environ={"FD_NODE_BASE_IMAGE": "mine/node"}) == \
        "faultdrill/python-base:bookworm"
    assert base_image_name("python", override="x/y", environ={"FD_BASE_IMAGE": "z"}) == "x/y"


def test_from_reference_substitutes_args_and_drops_flags():
    assert from_reference("FROM ${BASE_IMAGE}", {"BASE_IMAGE": "a/b:1"}, CONVENTION) == "a/b:1"
    assert from_reference("FROM ${BASE_IMAGE}", {}, CONVENTION) == "node:20-slim"
    assert from_reference("FROM --platform=linux/amd64 $BASE_IMAGE AS build", {}, CONVENTION) == "node:20-slim"
    assert from_reference("FROM python:3.11-slim", {"BASE_IMAGE": "x"}, HARDCODED) == "python:3.11-slim"


def test_consumes_base_image_arg():
    assert consumes_base_image_arg(CONVENTION)
    assert not consumes_base_image_arg(HARDCODED)
    assert not consumes_base_image_arg("ARG BASE_IMAGE=x\nFROM python:3.11-slim\n")
    assert consumes_base_image_arg("# base\nARG BASE_IMAGE\nFROM $BASE_IMAGE\n")


def test_a_failed_fetch_at_from_is_recognised():
    got = failed_fetch(_log("FROM python:3.11-slim"), DNS_ERROR, build_args={"BASE_IMAGE": "local/py"},
                       dockerfile_text=HARDCODED)
    assert got is not None and got.reference == "python:3.11-slim" and "no such host" in got.error
    got = failed_fetch(_log("ARG BASE_IMAGE=node:20-slim", "FROM ${BASE_IMAGE}",
                            error="pull access denied for node, repository does not exist"),
                       "pull access denied for node, repository does not exist", build_args={},
                       dockerfile_text=CONVENTION)
    assert got is not None and got.reference == "node:20-slim"


@pytest.mark.parametrize("steps,error,args", [
    (("FROM python:3.11-slim", "RUN exit 3"), "The command '/bin/sh -c exit 3' returned a non-zero code: 3", {}),
    (("FROM python:3.11-slim", "COPY missing.txt ."), "COPY failed: file not found in build context", {}),
    (("FROM Bad Ref!!",), "invalid reference format: repository name must be lowercase", {}),
    (("FROM ${NOPE}",), "base name (${NOPE}) should not be blank", {"BASE_IMAGE": "local/py"}),
])
def test_other_build_failures_stay_the_candidates(steps, error, args):
    assert failed_fetch(_log(*steps, error=error), error, build_args=args, dockerfile_text=HARDCODED) is None


def test_no_log_at_all_is_not_an_environment_verdict():
    assert failed_fetch([], DNS_ERROR, build_args={}, dockerfile_text=HARDCODED) is None


def test_environment_errors_are_grader_errors_with_a_one_line_fix():
    fetch = failed_fetch(_log("FROM ${BASE_IMAGE}"), DNS_ERROR, build_args={}, dockerfile_text=CONVENTION)
    missing_local = environment_error(fetch, language="node", passed_base=None, local_exists=False,
                                      dockerfile_text=CONVENTION)
    assert isinstance(missing_local, BuildEnvironmentError) and isinstance(missing_local, GraderError)
    text = str(missing_local)
    assert "\n" not in text and "not the candidate's failure" in text
    assert text.endswith("Fix: run docker/build-node-image.sh (builds faultdrill/node-base:bookworm from "
                         "Debian packages for [docker] base = \"node\"), then grade again")
    fetch = failed_fetch(_log("FROM python:3.11-slim"), DNS_ERROR, build_args={"BASE_IMAGE": "fd/py"},
                         dockerfile_text=HARDCODED)
    ignored = str(environment_error(fetch, language="python", passed_base="fd/py", local_exists=True,
                                    dockerfile_text=HARDCODED))
    assert "ignores the BASE_IMAGE build arg" in ignored and ignored.endswith(
        "docker tag fd/py python:3.11-slim")


def test_manifest_docker_base(tmp_path):
    def manifest(extra: str) -> str:
        roles = "".join(f'[services.{r}]\ncommand = ["node", "main.js"]\n'
                        for r in ("orchestrator", "collector", "analyzer", "reporter"))
        return f'[submission]\nname = "n"\nspec_version = 1\n{roles}[docker]\ndockerfile = "Dockerfile"\n{extra}'
    (tmp_path / "faultdrill.toml").write_text(manifest('base = "node"\n'))
    assert load_manifest(tmp_path).docker["base"] == "node"
    (tmp_path / "faultdrill.toml").write_text(manifest('base = "cobol"\n'))
    with pytest.raises(ManifestError, match="docker.base must be one of 'python', 'node'"):
        load_manifest(tmp_path)
    (tmp_path / "faultdrill.toml").write_text(manifest(""))
    assert "base" not in load_manifest(tmp_path).docker  # the driver's default: python


def test_the_starter_and_reference_follow_the_convention():
    for path in ("challenges/starter/Dockerfile", "reference_impl/Dockerfile"):
        assert consumes_base_image_arg((REPO_ROOT / path).read_text()), path
