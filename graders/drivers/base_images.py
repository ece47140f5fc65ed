"""The base-image convention of `--driver docker` (SPEC §3), and telling a build that failed
because its base could not be fetched (the machine's fault) from one the candidate broke.

Why: graders run where no image registry is reachable (this kit's own CI, air-gapped
interview laptops). A Dockerfile that says `FROM python:3.11-slim` then cannot build, and
before this module every check failed with the engine's DNS error as "evidence": a
correct submission scored 0. Now:

- the manifest's `[docker] base` (`"python"`, the default, or `"node"`) names the
  language; the grader passes the local image built for it from Debian packages
  (`BASE_IMAGES`) as the `BASE_IMAGE` build arg, which a Dockerfile consumes with
  `ARG BASE_IMAGE=<its usual registry image>` / `FROM ${BASE_IMAGE}`;
- a build that fails at a `FROM` step for any reason other than a malformed reference is
  an environment error (`BuildEnvironmentError`, a `GraderError`: the grade is
  INCOMPLETE, never the candidate's 0), whose message ends in the one-line fix.

The classification is pure (build log, Dockerfile text, build args in; a verdict out) and
tested without an engine.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..checks.registry import GraderError


@dataclass(frozen=True)
class BaseImage:
    """One language's local base: the image, the variable that overrides it, the script
    that builds it from Debian packages, and what Dockerfiles usually say instead."""
    language: str
    local: str
    env: str
    script: str
    registry_default: str


BASE_IMAGES: dict[str, BaseImage] = {
    "python": BaseImage("python", "faultdrill/python-base:bookworm", "FD_BASE_IMAGE",
                        "docker/build-base-image.sh", "python:3.11-slim"),
    "node": BaseImage("node", "faultdrill/node-base:bookworm", "FD_NODE_BASE_IMAGE",
                      "docker/build-node-image.sh", "node:20-slim"),
}


class BuildEnvironmentError(GraderError):
    """The submission's image could not be built because this machine cannot fetch its
    base image (no registry reachable, local base image missing). Not the candidate's
    failure: every check it stops is a grader error and the grade is INCOMPLETE."""


def base_image_name(language: str, *, override: str | None = None, environ=os.environ) -> str:
    """The image the grader passes as BASE_IMAGE for `language` (whether or not it exists):
    an explicit override, else the language's variable (`FD_BASE_IMAGE`,
    `FD_NODE_BASE_IMAGE`), else the local image's name."""
    spec = BASE_IMAGES[language]
    return override or environ.get(spec.env) or spec.local


_STEP = re.compile(r"^Step \d+/\d+ : (.*)$")
_ARG = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?\s*$", re.IGNORECASE)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
#: A FROM that fails with one of these is a malformed Dockerfile (the candidate's), not a
#: base that could not be fetched.
_SYNTAX = ("invalid reference format", "failed to parse", "unable to parse", "unknown flag",
           "invalid containerport", "dockerfile parse error")
_BLANK = "should not be blank"


def _arg_defaults(dockerfile_text: str) -> dict[str, str]:
    """`ARG NAME=default` lines before the first FROM (the ones a FROM may use)."""
    out: dict[str, str] = {}
    for line in dockerfile_text.splitlines():
        if re.match(r"^\s*FROM\s", line, re.IGNORECASE):
            break
        m = _ARG.match(line)
        if m and m.group(2) is not None:
            out[m.group(1)] = m.group(2).strip("\"'")
    return out


def consumes_base_image_arg(dockerfile_text: str) -> bool:
    """Whether the Dockerfile declares `ARG BASE_IMAGE` before a FROM that uses it."""
    before_from = []
    for line in dockerfile_text.splitlines():
        if re.match(r"^\s*FROM\s", line, re.IGNORECASE):
            return any(_ARG.match(x) and _ARG.match(x).group(1) == "BASE_IMAGE" for x in before_from) \
                and re.search(r"\$\{?BASE_IMAGE\b", line) is not None
        before_from.append(line)
    return False


def from_reference(instruction: str, build_args: dict[str, str], dockerfile_text: str) -> str:
    """The image a `FROM ...` instruction names once ARGs are substituted (flags such as
    `--platform=` and an `AS name` are dropped)."""
    words = [w for w in instruction.split()[1:] if not w.startswith("--")]
    raw = words[0] if words else ""
    values = dict(_arg_defaults(dockerfile_text), **build_args)

    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(3)
        return values.get(name) or (m.group(2) or "")
    return _VAR.sub(sub, raw)


@dataclass(frozen=True)
class FetchFailure:
    """A build stopped at a FROM: which image, and the engine's error."""
    reference: str
    error: str


def failed_fetch(build_log: list, error: str, *, build_args: dict[str, str],
                 dockerfile_text: str) -> FetchFailure | None:
    """A FetchFailure when the build failed at a FROM step for a reason other than a
    malformed reference; None when it failed anywhere else (the candidate's build)."""
    last_step = None
    for chunk in build_log:
        if not isinstance(chunk, dict):
            continue
        if chunk.get("error") or chunk.get("errorDetail"):
            break
        m = _STEP.match(str(chunk.get("stream") or "").strip())
        if m:
            last_step = m.group(1).strip()
    if last_step is None or not re.match(r"^FROM\s", last_step, re.IGNORECASE):
        return None
    lowered = error.lower()
    if any(marker in lowered for marker in _SYNTAX):
        return None
    reference = from_reference(last_step, build_args, dockerfile_text)
    if _BLANK in lowered and build_args.get("BASE_IMAGE"):
        return None  # the grader passed a base and the Dockerfile still named none: its bug
    return FetchFailure(reference=reference, error=" ".join(error.split())[:300])


def environment_error(failure: FetchFailure, *, language: str, passed_base: str | None,
                      local_exists: bool, dockerfile_text: str) -> BuildEnvironmentError:
    """The grader error for a base that could not be fetched, ending in the one-line fix."""
    spec = BASE_IMAGES[language]
    if not local_exists:
        fix = (f"run {spec.script} (builds {base_image_name(language)} from Debian packages for "
               f"[docker] base = \"{language}\"), then grade again")
    elif not consumes_base_image_arg(dockerfile_text):
        fix = (f"the Dockerfile ignores the BASE_IMAGE build arg (SPEC §3); to grade it as it is, "
               f"docker tag {passed_base or spec.local} {failure.reference or spec.registry_default}")
    else:
        fix = (f"docker tag {passed_base or spec.local} {failure.reference}  (or pull it where a "
               "registry is reachable)")
    what = failure.reference or "(none)"
    return BuildEnvironmentError(
        f"the image could not be built because its base image {what} cannot be fetched on this "
        f"machine ({failure.error}); not the candidate's failure. Fix: {fix}")
