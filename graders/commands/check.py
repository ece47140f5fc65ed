"""`faultdrill check PATH`: the candidate's own loop, CodeCrafters style.

Visible checks only, in stages, stopping after the first stage with a failure; each
failure prints what was sent, what was expected, what came back, a `Hint:` and the last
lines of the candidate's own stderr (`[your_<role>] ...`). Exit 0 when every check run
passed, 1 when one failed, 2 when the grader could not run at all.
"""
from __future__ import annotations

import sys

from graders.checks.registry import CHALLENGES, all_checks
from graders.commands.grade import add_common, prepare
from graders.harness import Progress, run_checks, select_checks
from graders.report.model import show

HELP = "Run the visible checks in stages and stop at the first failing stage (for candidates)."


def add_arguments(parser) -> None:
    add_common(parser)
    parser.add_argument("--challenge", choices=CHALLENGES, default=None,
                        help="only the checks of one challenge")
    parser.add_argument("--full", action="store_true",
                        help="print sent/expected/received whole (default: first 600 characters)")


def run(args) -> int:
    from graders.manifest import ManifestError
    try:
        specs = select_checks(all_checks(), visible_only=True, challenge=args.challenge)
        submission, driver, seed = prepare(args)
    except (ManifestError, ValueError, RuntimeError, ImportError) as exc:
        print(f"faultdrill check: cannot run: {exc}", file=sys.stderr)
        return 2
    progress = Progress()
    progress.say("setup", f"checking {submission.name}: {len(specs)} visible checks, seed {seed} "
                          f"(replay with --seed {seed})")

    def explain(v):
        if v.status == "pass":
            return
        tag = v.check_id
        if v.status == "error":
            progress.say(tag, "the grader itself failed here (not your fault); please report it:")
            progress.say(tag, v.trace or v.message)
            return
        for label, value in (("sent", v.sent), ("expected", v.expected), ("received", v.received)):
            if value is not None:
                # Short by default so a failure reads at a glance; --full for the rest.
                progress.say(tag, f"{label}: {show(value, 10**9 if args.full else 600)}")
        if v.hint:
            progress.say(tag, f"Hint: {v.hint}")

    result = run_checks(specs, submission=submission, driver=driver, seed=seed, progress=progress,
                        stop_at_failing_stage=True, driver_name=args.driver, on_verdict=explain)
    failed = [v for v in result.verdicts if v.status == "fail"]
    errors = [v for v in result.verdicts if v.status == "error"]
    passed = [v for v in result.verdicts if v.status == "pass"]
    if failed:
        progress.say("summary", f"{len(passed)} passed, {len(failed)} failed"
                                + (f", stopped after stage {result.stopped_at_stage}" if result.stopped_at_stage else "")
                                + f". Replay: faultdrill check {args.path} --seed {seed}")
        return 1
    progress.say("summary", f"all {len(passed)} visible checks passed"
                            + (f" ({len(errors)} grader errors, not counted)" if errors else "")
                            + f" (seed {seed})")
    return 0
