"""`faultdrill grade PATH`: run every check (visible and hidden) and write the reports.

Exit status (pytest's convention, RULES.md; also in --help and the README):
0 = graded, every check passed; 1 = graded, some checks failed; 2 = usage error (bad
arguments, missing or unreadable manifest, unknown check id, an --out that is a file, a
link, inside the submission or holding files faultdrill did not write: graders/safefs.py);
3 = incomplete (a grader error, a failed preflight: missing dependency, no Docker
engine, no sandbox; candidate processes left over); 130 = interrupted. A candidate whose
services do not even start still gets a graded, failing report (exit 1).

`--only` is a replay: it never overwrites a full report (its reports go to a new
`<out>-replay-<UTC time>` directory beside `--out`), and a partial run prints no overall
score and no suggested level.
"""
from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from graders.checks.registry import all_checks
from graders.harness import Progress, run_checks, select_checks
from graders.safefs import prepare_out_dir
from graders.scoring import RubricError, credits_from_verdicts, load_rubric, score

HELP = "Grade a submission: all checks, scores per rubric area, reports (json, junit, md, html)."

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3
EXIT_CODES_EPILOG = ("exit status: 0 every check passed; 1 some checks failed; 2 usage error "
                     "(bad arguments, manifest, check id or --out); 3 incomplete (grader error, "
                     "failed preflight: missing dependency, no Docker engine, no sandbox; "
                     "leftover processes); 130 interrupted (Ctrl-C)")


def get_driver(name: str, *, sandbox: bool | None = None):
    """The driver by name (graders.drivers.get_driver); an unavailable one raises a
    RuntimeError (e.g. DockerUnavailable) whose message says why."""
    from graders.drivers import get_driver as lookup
    return lookup(name, sandbox=sandbox)


def add_common(parser) -> None:
    parser.add_argument("path", type=Path, help="submission directory (with faultdrill.toml)")
    parser.add_argument("--driver", default="process", choices=("process", "docker"))
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: random, printed)")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="run the candidate's services WITHOUT the sandbox (as your own user, "
                             "seeing your files, processes and network); every report says so. "
                             "Only where the sandbox cannot work: see docs/THREAT_MODEL.md")


def add_arguments(parser) -> None:
    add_common(parser)
    parser.add_argument("--runs", type=int, default=1, help="repeat the run N times (seeds N, N+1, ...): pass rates")
    parser.add_argument("--only", default=None,
                        help="comma-separated check ids: a replay (reports in <out>-replay-<time>, no overall score)")
    parser.add_argument("--out", type=Path, default=Path("grade-out"), help="report directory: new, empty or an earlier grade's (its reports are removed first); "
                             "never a symbolic link or inside the submission")
    parser.epilog = EXIT_CODES_EPILOG
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def prepare(args):
    """(submission, driver, seed) or raises with a clear message."""
    from graders.manifest import load_manifest
    submission = load_manifest(args.path)
    driver = get_driver(args.driver, sandbox=False if getattr(args, "unsafe_no_sandbox", False) else None)
    seed = args.seed if args.seed is not None else new_seed()
    return submission, driver, seed


def new_seed() -> int:
    """A random seed (printed; `--seed` replays it). Never the clock: a candidate can read
    the clock, and the seed fixes every input and fault of the grade."""
    return random.SystemRandom().randrange(1_000_000)


def replay_dir(out: Path) -> Path:
    """Where an `--only` run writes: beside `out`, never in it, so a full report survives
    every replay (`grade-out-replay-20261201T093012Z`, `-2`, ... if taken)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = out.parent / f"{out.name}-replay-{stamp}"
    candidate, n = base, 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def check_out_arg(out: Path) -> None:
    """A usage error for an --out that can never be a report directory."""
    if out.exists() and not out.is_dir() and not out.is_symlink():
        raise ValueError(f"--out {out} exists and is not a directory")


def load_checks(command: str):
    """all_checks(), or None after the one preflight line when a module the checks import
    is missing (a fresh machine without the kit's dependencies: exit 3, not a traceback)."""
    from graders import preflight
    try:
        return all_checks()
    except ImportError as exc:
        problems = preflight.missing_modules() or [
            preflight.Problem(f"the checks cannot be loaded ({exc})", "python3 -m pip install -e .")]
        print(preflight.one_line(command, problems), file=sys.stderr)
        return None


def run_preflight(args, command: str, selected) -> int | None:
    """None when this machine can run the selected checks, else the exit status (3) after
    one error line (graders/preflight.py)."""
    from graders import preflight
    problems = preflight.run(driver=args.driver, check_ids=[s.id for s in selected],
                             unsafe_no_sandbox=bool(getattr(args, "unsafe_no_sandbox", False)))
    if problems:
        print(preflight.one_line(command, problems), file=sys.stderr)
        return EXIT_INCOMPLETE
    return None


def preflight_then_prepare(args, command: str, selected, cannot: str):
    """The preflight (exit 3 when this machine cannot run `selected`), then `prepare`.
    Returns (submission, driver, seed) or the exit status after one line that starts
    `faultdrill <command>: <cannot>` (2 for the submission's fault, 3 for the machine's)."""
    from graders.manifest import ManifestError
    refused = run_preflight(args, command, selected)
    if refused is not None:
        return refused
    try:
        return prepare(args)
    except (ManifestError, ValueError) as exc:
        print(f"faultdrill {command}: {cannot}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (RuntimeError, ImportError) as exc:   # the driver cannot run here: environment
        print(f"faultdrill {command}: {cannot}{', nothing was graded' if command == 'grade' else ' here'}: {exc}",
              file=sys.stderr)
        return EXIT_INCOMPLETE


def run(args) -> int:
    from graders.manifest import ManifestError
    from graders.sandbox.entry import prepare_command
    refused = prepare_command(args, "grade")     # the sandbox works here; own namespaces
    if refused is not None:
        return refused
    try:
        rubric = load_rubric()
        specs = load_checks("grade")
        if specs is None:
            return EXIT_INCOMPLETE
        only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
        args.only = ",".join(only) if only else None     # `--only ","` is no selection
        selected = select_checks(specs, only=only)
        if args.runs < 1:
            raise ValueError("--runs must be at least 1")
        check_out_arg(args.out)
        from graders.manifest import load_manifest
        load_manifest(args.path)          # a usage error (2) before the preflight (3)
    except (ManifestError, RubricError, ValueError, OSError) as exc:
        print(f"faultdrill grade: cannot grade: {exc}", file=sys.stderr)
        return EXIT_USAGE
    prepared = preflight_then_prepare(args, "grade", selected, "cannot grade")
    if isinstance(prepared, int):
        return prepared
    submission, driver, seed = prepared
    try:
        if only:
            args.out = replay_dir(args.out)
        # Before any candidate code runs: the report directory is created or verified
        # and a previous grade's results removed (graders.safefs), and held open.
        out = prepare_out_dir(args.out, submission_root=submission.root)
    except (ValueError, OSError) as exc:
        print(f"faultdrill grade: cannot grade: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with out:
        return _grade(args, rubric, specs, selected, submission, driver, seed, out)


def _grade(args, rubric, specs, selected, submission, driver, seed, out) -> int:
    progress = Progress(quiet=args.quiet)
    progress.say("setup", f"faultdrill grade {submission.name} ({submission.root}) driver {args.driver} "
                          f"seed {seed} runs {args.runs}; {len(selected)} checks")
    try:
        result = run_checks(selected, submission=submission, driver=driver, seed=seed,
                            runs=args.runs, progress=progress, driver_name=args.driver)
        result.partial = bool(args.only)
    finally:
        # Drivers that build things once per grade (Docker images) remove them here,
        # rather than leaving it to an exit hook.
        closing = getattr(driver, "close", None)
        report = closing() if callable(closing) else None
        for error in getattr(report, "errors", []) or []:
            print(f"faultdrill grade: cleanup: {error}", file=sys.stderr)
    describe = getattr(driver, "sandbox_description", None)
    result.sandbox = describe() if callable(describe) else {"mode": args.driver}
    result.survivors = list(getattr(report, "survivors", []) or [])
    if result.survivors or getattr(report, "proven_gone", None) is False:
        # Reports are written only once no candidate process can touch them any more.
        print(f"faultdrill grade: INCOMPLETE: candidate processes {result.survivors} outlived "
              "the grade, so no report was written (a surviving process could alter it)",
              file=sys.stderr)
        return 3
    sheet = score(credits_from_verdicts(result.verdicts), rubric, {s.id: s.weight for s in specs},
                  partial=result.partial, incomplete=result.incomplete)
    from graders.report import write_reports
    paths = write_reports(result, sheet, rubric, specs, out)
    counts = {k: sum(1 for v in result.verdicts if v.status == k) for k in ("pass", "fail", "error")}
    lvl = sheet.level_note("overall", rubric["meta"]["level_titles"])
    flag = ("INCOMPLETE (not a grade: " + "; ".join(result.incomplete_reasons) + "): "
            if result.incomplete else "")
    if result.partial:
        print(f"faultdrill grade: {flag}PARTIAL (--only {args.only}): seed {seed}: {counts['pass']} passed, "
              f"{counts['fail']} failed, {counts['error']} grader errors; no overall score or suggested "
              f"level for a partial run; {result.duration:.1f} s")
    else:
        print(f"faultdrill grade: {flag}seed {seed}: {counts['pass']} passed, {counts['fail']} failed, "
              f"{counts['error']} grader errors; overall "
              f"{'—' if sheet.overall is None else f'{100 * sheet.overall:.0f}%'} (suggested: {lvl}); "
              f"{result.duration:.1f} s")
    for area in sheet.areas:
        if area.score is not None:
            print(f"  {area.title}: {100 * area.score:.0f}%")
    print(f"reports: {', '.join(str(p) for p in paths.values())}")
    for note in result.cleanup:
        print(f"faultdrill grade: cleanup: {note}", file=sys.stderr)
    if result.incomplete:
        return EXIT_INCOMPLETE
    return EXIT_FAILED if counts["fail"] else EXIT_PASSED
