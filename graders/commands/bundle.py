"""`faultdrill bundle --for candidate OUT`: the folder a candidate receives.

SPEC, schemas, challenges, starter, the CI template and the self-check (`faultdrill
check`) with the visible checks only: interviewer-only checks are removed from the
shipped source, and neither the reference system nor the rubric is included. The
builder verifies this before it leaves the folder in place (graders/packaging.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

HELP = "Build what a candidate receives (visible checks only; no reference, no rubric)."

AUDIENCES = ("candidate",)


def add_arguments(parser) -> None:
    parser.add_argument("out", type=Path, help="output folder (must not exist or be empty)")
    parser.add_argument("--for", dest="audience", choices=AUDIENCES, default="candidate",
                        help="who the bundle is for (only: candidate)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")


def run(args) -> int:
    from graders.packaging import PackagingError, build_candidate_bundle
    try:
        info = build_candidate_bundle(args.out, force=args.force)
    except (PackagingError, OSError) as exc:
        print(f"faultdrill bundle: {exc}", file=sys.stderr)
        return 2
    print(f"faultdrill bundle: {info.root}: {len(info.files)} files, {len(info.checks)} visible checks "
          f"({info.removed_checks} interviewer-only checks removed), requires {', '.join(info.deps) or 'nothing'}")
    print(f"  try it: cd {info.root} && python3 -m venv .venv && . .venv/bin/activate && "
          f"python -m pip install . && faultdrill check challenges/starter --challenge pipeline-basics")
    return 0
