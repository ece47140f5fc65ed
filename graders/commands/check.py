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
from graders.feedback import CONTEXT_LIMIT, load_starter_markers, render_failure, replay_command

HELP = "Run the visible checks in stages and stop at the first failing stage (for candidates)."


def add_arguments(parser) -> None:
    add_common(parser)
    parser.add_argument("--challenge", choices=CHALLENGES, default=None,
                        help="only the checks of one challenge")
    parser.add_argument("--full", action="store_true",
                        help="print sent/expected/received whole (default: the differing fields, then the first 600 characters of each)")


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

    spec_by_id = {s.id: s for s in specs}
    markers = load_starter_markers()

    def explain(v):
        if v.status == "pass":
            return
        tag = v.check_id
        if v.status == "error":
            progress.say(tag, "the grader itself failed here (not your fault); please report it:")
            progress.say(tag, v.trace or v.message)
            return
        # The differing fields first, then the evidence (capped unless --full), the
        # replay line (with --challenge) and where to read (graders/feedback.py).
        spec = spec_by_id.get(v.check_id)
        for line in render_failure(v, challenge=spec.challenge if spec else args.challenge,
                                   path=str(args.path), markers=markers, include_message=False,
                                   context_limit=0 if args.full else CONTEXT_LIMIT):
            progress.say(tag, line)

    result = run_checks(specs, submission=submission, driver=driver, seed=seed, progress=progress,
                        stop_at_failing_stage=True, driver_name=args.driver, on_verdict=explain)
    failed = [v for v in result.verdicts if v.status == "fail"]
    errors = [v for v in result.verdicts if v.status == "error"]
    passed = [v for v in result.verdicts if v.status == "pass"]
    if failed:
        progress.say("summary", f"{len(passed)} passed, {len(failed)} failed"
                                + (f", stopped after stage {result.stopped_at_stage}" if result.stopped_at_stage else "")
                                + f". Replay: {replay_command(str(args.path), seed, args.challenge)}")
        return 1
    progress.say("summary", f"all {len(passed)} visible checks passed"
                            + (f" ({len(errors)} grader errors, not counted)" if errors else "")
                            + f" (seed {seed})")
    return 0
