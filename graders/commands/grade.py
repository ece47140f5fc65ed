"""`faultdrill grade PATH`: run every check (visible and hidden) and write the reports.

Exit status: 0 when grading completed, whatever the score; 2 with one clear sentence when
the grader could not grade (bad manifest, unknown check id, driver unavailable). A
candidate whose services do not even start still gets a graded, failing report.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from graders.checks.registry import all_checks
from graders.harness import Progress, run_checks, select_checks
from graders.scoring import RubricError, credits_from_verdicts, load_rubric, score

HELP = "Grade a submission: all checks, scores per rubric area, reports (json, junit, md, html)."


def get_driver(name: str):
    """The driver by name (graders.drivers.get_driver); an unavailable one raises a
    RuntimeError (e.g. DockerUnavailable) whose message says why."""
    from graders.drivers import get_driver as lookup
    return lookup(name)


def add_common(parser) -> None:
    parser.add_argument("path", type=Path, help="submission directory (with faultdrill.toml)")
    parser.add_argument("--driver", default="process", choices=("process", "docker"))
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: from the clock, printed)")


def add_arguments(parser) -> None:
    add_common(parser)
    parser.add_argument("--runs", type=int, default=1, help="repeat the run N times (seeds N, N+1, ...): pass rates")
    parser.add_argument("--only", default=None, help="comma-separated check ids")
    parser.add_argument("--out", type=Path, default=Path("grade-out"), help="report directory")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def prepare(args):
    """(submission, driver, seed) or raises with a clear message."""
    from graders.manifest import load_manifest
    submission = load_manifest(args.path)
    driver = get_driver(args.driver)
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    return submission, driver, seed


def run(args) -> int:
    from graders.manifest import ManifestError
    try:
        rubric = load_rubric()
        specs = all_checks()
        only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
        selected = select_checks(specs, only=only)
        submission, driver, seed = prepare(args)
        if args.runs < 1:
            raise ValueError("--runs must be at least 1")
    except (ManifestError, RubricError, ValueError, RuntimeError, ImportError) as exc:
        print(f"faultdrill grade: cannot grade: {exc}", file=sys.stderr)
        return 2
    progress = Progress(quiet=args.quiet)
    progress.say("setup", f"faultdrill grade {submission.name} ({submission.root}) driver {args.driver} "
                          f"seed {seed} runs {args.runs}; {len(selected)} checks")
    try:
        result = run_checks(selected, submission=submission, driver=driver, seed=seed,
                            runs=args.runs, progress=progress, driver_name=args.driver)
    finally:
        # Drivers that build things once per grade (Docker images) remove them here,
        # rather than leaving it to an exit hook.
        closing = getattr(driver, "close", None)
        report = closing() if callable(closing) else None
        for error in getattr(report, "errors", []) or []:
            print(f"faultdrill grade: cleanup: {error}", file=sys.stderr)
    sheet = score(credits_from_verdicts(result.verdicts), rubric, {s.id: s.weight for s in specs})
    from graders.report import write_reports
    paths = write_reports(result, sheet, rubric, specs, args.out)
    counts = {k: sum(1 for v in result.verdicts if v.status == k) for k in ("pass", "fail", "error")}
    lvl = sheet.level_note("overall", rubric["meta"]["level_titles"])
    print(f"faultdrill grade: seed {seed}: {counts['pass']} passed, {counts['fail']} failed, "
          f"{counts['error']} grader errors; overall "
          f"{'—' if sheet.overall is None else f'{100 * sheet.overall:.0f}%'} (suggested: {lvl}); "
          f"{result.duration:.1f} s")
    for area in sheet.areas:
        if area.score is not None:
            print(f"  {area.title}: {100 * area.score:.0f}%")
    print(f"reports: {', '.join(str(p) for p in paths.values())}")
    for note in result.cleanup:
        print(f"faultdrill grade: cleanup: {note}", file=sys.stderr)
    return 0
