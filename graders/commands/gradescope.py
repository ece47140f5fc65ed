"""`faultdrill gradescope OUT.zip`: a Gradescope autograder package.

The zip holds `setup.sh` (installs the vendored kit into a virtual environment; fully
offline with `--wheelhouse`) and `run_autograder` (grades /autograder/submission with
`faultdrill grade` and always writes /autograder/results/results.json). Built
deterministically by graders/packaging.py: the same kit gives the same bytes.
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
    return 0
