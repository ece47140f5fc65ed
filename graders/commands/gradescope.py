"""`faultdrill gradescope OUT.zip`: a Gradescope autograder package.

The zip holds `setup.sh` (installs the vendored kit into a virtual environment; fully
offline with `--wheelhouse`) and `run_autograder` (grades /autograder/submission with
`faultdrill grade` and always writes /autograder/results/results.json). Built
deterministically by graders/packaging.py: the same kit gives the same bytes.

Scores are 100 x the report's overall score, so the assignment's autograder points should
be 100. Who sees what (candidates: visible checks at once, the total after publication;
instructors: stdout and an Interviewer summary test) is decided in
graders/report/gradescope.py and described in rubric/INTERVIEWER_GUIDE.md ("Gradescope").
"""
from __future__ import annotations

import sys
from pathlib import Path

HELP = "Build a Gradescope autograder zip (setup.sh, run_autograder, the vendored kit)."


def add_arguments(parser) -> None:
    parser.add_argument("out", type=Path, help="the zip to write, e.g. autograder.zip")
    parser.add_argument("--wheelhouse", type=Path, default=None,
                        help="a folder of .whl files (the kit's dependencies) to vendor for an offline setup")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")


def run(args) -> int:
    from graders.packaging import PackagingError, build_gradescope_zip
    try:
        info = build_gradescope_zip(args.out, wheelhouse=args.wheelhouse, force=args.force)
    except (PackagingError, OSError) as exc:
        print(f"faultdrill gradescope: {exc}", file=sys.stderr)
        return 2
    print(f"faultdrill gradescope: {info.path}: {len(info.entries)} files"
          + (f", {info.wheels} vendored wheels" if info.wheels else "")
          + f"; setup.sh installs {', '.join(info.deps)}"
          + ("" if info.wheels else " (from the package index)"))
    print("faultdrill gradescope: set the assignment's autograder points to 100 "
          "(the score is 100 x the report's overall score)")
    return 0
