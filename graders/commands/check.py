"""`faultdrill check PATH`: the candidate's own loop, CodeCrafters style.

Visible checks only, in stages, stopping after the first stage with a failure; each
failure prints what was sent, what was expected, what came back, a `Hint:` and the last
lines of the candidate's own stderr (`[your_<role>] ...`).

Exit status (the same convention as `grade`): 0 every check run passed; 1 a check failed;
2 usage error (bad arguments, missing or unreadable manifest); 3 incomplete (a grader
error, a failed preflight: missing dependency, no Docker engine, no sandbox); 130
interrupted.
"""
from __future__ import annotations

import sys

from graders.checks.registry import CHALLENGES
from graders.commands.grade import (EXIT_CODES_EPILOG, EXIT_FAILED, EXIT_INCOMPLETE, EXIT_PASSED, EXIT_USAGE,
                                     add_common, load_checks, preflight_then_prepare)
from graders.harness import Progress, run_checks, select_checks
from graders.feedback import CONTEXT_LIMIT, load_starter_markers, render_failure, replay_command

HELP = "Run the visible checks in stages and stop at the first failing stage (for candidates)."


def add_arguments(parser) -> None:
    add_common(parser)
    parser.add_argument("--challenge", choices=CHALLENGES, default=None,
                        help="only the checks of one challenge")
    parser.add_argument("--full", action="store_true",
                        help="print sent/expected/received whole (default: the differing fields, then the first 600 characters of each)")
    parser.epilog = EXIT_CODES_EPILOG.replace("(bad arguments, manifest, check id or --out)",
                                              "(bad arguments or manifest)")


def run(args) -> int:
    from graders.manifest import ManifestError
    from graders.sandbox.entry import prepare_command
    refused = prepare_command(args, "check")     # the sandbox works here; own namespaces
    if refused is not None:
        return refused
    try:
        every = load_checks("check")
        if every is None:
            return EXIT_INCOMPLETE
        specs = select_checks(every, visible_only=True, challenge=args.challenge)
        from graders.manifest import load_manifest
        load_manifest(args.path)          # a usage error (2) before the preflight (3)
    except (ManifestError, ValueError, OSError) as exc:
        print(f"faultdrill check: cannot run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    prepared = preflight_then_prepare(args, "check", specs, "cannot run")
    if isinstance(prepared, int):
        return prepared
    submission, driver, seed = prepared
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
    if result.incomplete:
        progress.say("summary", f"INCOMPLETE: {'; '.join(result.incomplete_reasons)}. "
                                f"{len(passed)} passed, {len(failed)} failed; the grader itself failed, "
                                "so this run says nothing final (please report it)")
        return EXIT_INCOMPLETE
    if failed:
        progress.say("summary", f"{len(passed)} passed, {len(failed)} failed"
                                + (f", stopped after stage {result.stopped_at_stage}" if result.stopped_at_stage else "")
                                + f". Replay: {replay_command(str(args.path), seed, args.challenge)}")
        return EXIT_FAILED
    progress.say("summary", f"all {len(passed)} visible checks passed"
                            + (f" ({len(errors)} grader errors, not counted)" if errors else "")
                            + f" (seed {seed})")
    return EXIT_PASSED
