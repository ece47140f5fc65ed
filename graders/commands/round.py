"""`faultdrill round SUBMISSIONS_DIR`: grade every submission in a folder, a few at a time.

Each subfolder with a faultdrill.toml is graded by its own `faultdrill grade` process
(isolated from the others: its own sandbox, ports and cleanup), all with the same seed,
into `<out>/<UTC timestamp>/<submission>/`; `<out>/latest` points at the newest round.
Prints a summary table and writes `summary.csv` and `summary.md` beside the grades.

Exit status (the kit's convention): 0 every grade completed and every check passed;
1 every grade completed, some checks failed; 2 usage error (no such folder, no
submission in it, bad arguments); 3 some grade is INCOMPLETE (grader errors, a failed
preflight, a grade that did not finish); 130 interrupted (every grade in flight is
stopped, and what finished is summarised).
"""
from __future__ import annotations

import random
import signal
import sys
from pathlib import Path

HELP = ("Grade a folder of submissions (a hiring round): several at a time, each in its own "
        "grader, into timestamped result folders with a summary table and CSV.")


def add_arguments(parser) -> None:
    parser.add_argument("submissions", type=Path, metavar="SUBMISSIONS_DIR",
                        help="a folder whose subfolders are submissions (each with faultdrill.toml)")
    parser.add_argument("--jobs", "-j", type=int, default=2,
                        help="grades run at the same time (default 2; each grade uses about one core)")
    parser.add_argument("--out", type=Path, default=Path("round-out"),
                        help="where rounds are kept: <out>/<UTC timestamp>/, <out>/latest (default round-out)")
    parser.add_argument("--seed", type=int, default=None,
                        help="one seed for every submission (default: random, printed)")
    parser.add_argument("--driver", default="process", choices=("process", "docker"))
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="stop a grade that runs longer than this (default 900)")
    parser.add_argument("--only", default=None, metavar="IDS",
                        help="comma-separated check ids, passed to every grade (a PARTIAL round: "
                             "no total is a verdict, no level is suggested)")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="passed to every grade: run candidates WITHOUT the sandbox (each report says so)")


def run(args) -> int:
    from graders import round as rnd
    from graders.scoring import load_rubric
    if args.jobs < 1:
        print("faultdrill round: --jobs must be at least 1", file=sys.stderr)
        return rnd.EXIT_USAGE
    if args.timeout is not None and args.timeout <= 0:
        print("faultdrill round: --timeout must be positive", file=sys.stderr)
        return rnd.EXIT_USAGE
    try:
        submissions = rnd.discover(args.submissions)
        if args.out.exists() and not args.out.is_dir():
            raise ValueError(f"--out {args.out} exists and is not a directory")
        round_dir = rnd.new_round_dir(args.out)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"faultdrill round: {exc}", file=sys.stderr)
        return rnd.EXIT_USAGE
    # Random, never the clock (a candidate can read the clock); printed, and --seed replays it.
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    areas = [(a["id"], a["title"]) for a in load_rubric()["areas"]]
    extra = (["--unsafe-no-sandbox"] if args.unsafe_no_sandbox else []) + \
        (["--only", args.only] if args.only else [])
    print(f"faultdrill round: {len(submissions)} submission(s) from {args.submissions}, seed {seed}, "
          f"driver {args.driver}, {args.jobs} at a time -> {round_dir}", flush=True)

    def done(g) -> None:
        state = "INCOMPLETE" if rnd.is_incomplete(g) else f"exit {g.exit_code}"
        print(f"  {g.name}: {state} in {g.duration_s:.0f} s" + (f" ({g.problem})" if g.problem else ""),
              flush=True)

    # SIGTERM (a CI job cancelled, `kill`) stops the round like Ctrl-C: its grades run in
    # their own sessions, so nothing else would stop them.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        outcome = rnd.run_round(submissions, round_dir, jobs=args.jobs, seed=seed, driver=args.driver,
                                extra=extra, timeout_s=args.timeout or rnd.DEFAULT_GRADE_TIMEOUT_S,
                                on_done=done)
    finally:
        signal.signal(signal.SIGTERM, previous)
    graded = outcome.graded
    rows = rnd.summary_rows(graded, [aid for aid, _ in areas], round_dir, partial_round=bool(args.only))
    columns = rnd.csv_columns([aid for aid, _ in areas])
    (round_dir / "summary.csv").write_text(rnd.csv_text(rows, columns), encoding="utf-8")
    (round_dir / "summary.md").write_text(
        rnd.markdown_text(rows, areas, seed=seed, driver=args.driver, stamp=round_dir.name,
                          only=args.only), encoding="utf-8")
    latest = rnd.point_latest(args.out, round_dir)
    print()
    print(rnd.console_table(rows, areas))
    print()
    if args.only:
        print(f"PARTIAL round (--only {args.only}): totals are not verdicts; no level is suggested.")
    print(f"summary: {round_dir / 'summary.md'}, {round_dir / 'summary.csv'} (latest round: {latest})")
    print(f"replay one grade: faultdrill grade <submission> --seed {seed} --driver {args.driver}"
          + (f" --only {args.only}" if args.only else ""))
    if outcome.leftovers:
        print(f"faultdrill round: the grades left {len(outcome.leftovers)} process(es) running; the round "
              "stopped them (a grader bug: report it): " + "; ".join(outcome.leftovers[:5]), file=sys.stderr)
    if outcome.interrupted:
        print("faultdrill round: interrupted; the grades in flight were stopped.", file=sys.stderr)
        return rnd.EXIT_INTERRUPTED
    return rnd.round_exit_code(graded, outcome.leftovers)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
