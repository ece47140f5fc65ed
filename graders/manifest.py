"""Reading a submission's `faultdrill.toml` (SPEC §3).

Why strict: the manifest is the only thing the graders know about a submission, so every
mistake in it must become one clear `ManifestError` sentence before any process starts,
rather than a confusing failure in the middle of a grading run.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ROLES", "SPEC_VERSION", "Submission", "ManifestError", "load_manifest",
           "expand_command"]

ROLES = ("orchestrator", "collector", "analyzer", "reporter")
SPEC_VERSION = 1
MANIFEST_NAME = "faultdrill.toml"


class ManifestError(Exception):
    """The manifest is missing or invalid; the message says what and where."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


#: `[docker] base`: the language whose local base image the grader passes to the
#: Dockerfile as the `BASE_IMAGE` build arg (SPEC §3; images in graders/drivers/docker.py).
DOCKER_BASES = ("python", "node")
DEFAULT_DOCKER_BASE = "python"


@dataclass(frozen=True)
class Submission:
    root: Path
    name: str
    spec_version: int
    commands: dict[str, list[str]]
    docker: dict = field(default_factory=dict)
    raw_commands: dict[str, list[str]] = field(default_factory=dict)

    def command(self, role: str) -> list[str]:
        return list(self.commands[role])


def expand_command(argv: list[str], root: Path) -> list[str]:
    """Replace `{python}` / `{root}` and resolve a relative executable against the root.

    `{python}` is the grader's *base* interpreter (behind any venv): inside the sandbox it
    sees the standard library only (graders.sandbox.layout.base_python)."""
    from graders.sandbox.layout import base_python
    python = base_python()
    out = [a.replace("{python}", python).replace("{root}", str(root)) for a in argv]
    exe = out[0]
    if not Path(exe).is_absolute() and ("/" in exe or (root / exe).is_file()):
        out[0] = str((root / exe).resolve())
    return out


def _require_table(doc: dict, key: str, where: str) -> dict:
    value = doc.get(key)
    if value is None:
        raise ManifestError(f"{where}: missing [{key}] table")
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: [{key}] must be a table")
    return value


def load_manifest(root: Path | str) -> Submission:
    root = Path(root).resolve()
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise ManifestError(f"submission directory {root} does not exist")
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found (a submission needs {MANIFEST_NAME} "
                            "at its root)")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: invalid TOML: {exc}") from None
    sub = _require_table(doc, "submission", str(path))
    name = sub.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ManifestError(f"{path}: submission.name must be a non-empty string")
    version = sub.get("spec_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ManifestError(f"{path}: submission.spec_version must be an integer "
                            f"(this grader implements SPEC version {SPEC_VERSION})")
    if version != SPEC_VERSION:
        raise ManifestError(f"{path}: submission.spec_version is {version}, but this grader "
                            f"implements SPEC version {SPEC_VERSION}")
    services = _require_table(doc, "services", str(path))
    commands: dict[str, list[str]] = {}
    raw: dict[str, list[str]] = {}
    for role in ROLES:
        table = services.get(role)
        if not isinstance(table, dict):
            raise ManifestError(f"{path}: missing role [services.{role}] (required: "
                                f"{', '.join(ROLES)})")
        argv = table.get("command")
        if (not isinstance(argv, list) or not argv
                or not all(isinstance(a, str) and a for a in argv)):
            raise ManifestError(f"{path}: services.{role}.command must be a non-empty list of "
                                "non-empty strings (an argv, no shell)")
        raw[role] = list(argv)
        commands[role] = expand_command(argv, root)
    unknown = sorted(set(services) - set(ROLES))
    if unknown:
        raise ManifestError(f"{path}: unknown service role(s) {unknown}; roles are "
                            f"{', '.join(ROLES)}")
    docker = doc.get("docker", {})
    if not isinstance(docker, dict):
        raise ManifestError(f"{path}: [docker] must be a table")
    base = docker.get("base", DEFAULT_DOCKER_BASE)
    if base not in DOCKER_BASES:
        raise ManifestError(f"{path}: docker.base must be one of {', '.join(map(repr, DOCKER_BASES))} "
                            f"(the language of the image's base, SPEC §3), not {base!r}")
    return Submission(root=root, name=name, spec_version=version, commands=commands,
                      docker=dict(docker), raw_commands=raw)
