"""Assemble a defect into a self-contained submission folder that can be graded.

Why a folder is built rather than graded in place: the grader sandboxes candidate code,
and inside the sandbox only the submission folder is visible (the kit's checkout, and so
``reference_impl`` at the repository root, is hidden on purpose). A defect is "the
reference with one mistake", so its folder must carry its own copy of the reference:

    <dest>/<name>/
      faultdrill.toml      commands ``["{python}", "launch_common.py", "<role>"]``
      launch_common.py     the shared launcher (applies defect.py, runs the reference)
      defect.py            the one mistake
      reference_impl/      a copy of the reference package (no caches, no manifest)

Every command names only files inside the folder, and the folder keeps the defect's name
(the launcher names the defect after its working directory).

Usage (to replay one row of docs/DEFECT_MATRIX.md by hand)::

    python3 -m tests.defects.assemble no-backoff /tmp/defects     # prints the folder
    faultdrill grade /tmp/defects/no-backoff --seed 20261129
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REFERENCE = ROOT / "reference_impl"
LAUNCHER = HERE / "launch_common.py"
ROLES = ("orchestrator", "collector", "analyzer", "reporter")

# The reference's own manifest and Dockerfile would make the copied package look like a
# second submission; caches are machine-specific.
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "faultdrill.toml", "Dockerfile")


class AssembleError(ValueError):
    """The named defect does not exist (no tests/defects/<name>/defect.py)."""


def defect_names() -> list[str]:
    return sorted(p.name for p in HERE.iterdir() if (p / "defect.py").is_file())


def manifest_text(name: str) -> str:
    lines = ["# A deliberately broken submission (tests/defects), assembled by",
             "# tests/defects/assemble.py: the reference with one defect, see defect.py.",
             "[submission]",
             f'name = "defect: {name}"',
             "spec_version = 1",
             ""]
    for role in ROLES:
        lines += [f"[services.{role}]",
                  f'command = ["{{python}}", "launch_common.py", "{role}"]']
    return "\n".join(lines) + "\n"


def assemble(name: str, dest: Path) -> Path:
    """Build ``dest/<name>/`` (replacing an earlier assembly there) and return it."""
    source = HERE / name / "defect.py"
    if not source.is_file():
        raise AssembleError(f"no defect named {name!r} (known: {', '.join(defect_names())})")
    folder = Path(dest) / name
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copytree(REFERENCE, folder / "reference_impl", ignore=_SKIP)
    shutil.copy2(LAUNCHER, folder / "launch_common.py")
    shutil.copy2(source, folder / "defect.py")
    (folder / "faultdrill.toml").write_text(manifest_text(name), encoding="utf-8")
    return folder


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python3 -m tests.defects.assemble NAME DEST_DIR", file=sys.stderr)
        return 2
    try:
        print(assemble(argv[0], Path(argv[1])))
    except AssembleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
