"""`faultdrill bughunt start|verify|status|key`: a planted-bug interview on the reference.

    faultdrill bughunt start OUT [--seed N] [--defects K]   # the candidate's copy in OUT
    faultdrill bughunt key OUT                              # interviewer: what was planted
    faultdrill bughunt verify OUT                           # does the fix hold? (recorded)
    faultdrill bughunt hint OUT                             # the next hint (recorded)
    faultdrill bughunt status OUT                           # elapsed time, hints, attempts

The answer key stays outside OUT (this user's private state directory, or --key FILE)
and never enters the candidate bundle. Verify grades the copy with the grader's own
checks, in the grader's sandbox: the planted defects' checks first, then everything else.

Exit status: start/key/status 0, or 2 on a usage error; verify 0 fixed, 1 not fixed or
something else regressed, 2 usage error, 3 incomplete (a grader error, no sandbox).
"""
from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

HELP = "a bug hunt: hand out the reference with planted defects, verify the candidate's fix"


def add_arguments(parser) -> None:
    parser.epilog = ("exit status: verify 0 fixed, 1 not fixed or regressed, 3 incomplete (grader "
                     "error, no sandbox); every action 2 on a usage error; 130 interrupted")
    sub = parser.add_subparsers(dest="hunt_command", metavar="ACTION")
    p = sub.add_parser("start", help="write the candidate's copy (defects chosen by seed)")
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=None, help="which defects (printed; default random)")
    p.add_argument("--defects", type=int, default=1, help="how many defects (default 1)")
    p.add_argument("--defect", action="append", default=None, metavar="ID",
                   help="plant this defect (repeatable) instead of choosing by seed")
    p.add_argument("--key", type=Path, default=None, help="answer key file (default: private state dir)")
    p.add_argument("--force", action="store_true", help="replace an earlier bug-hunt copy in OUT")
    p = sub.add_parser("verify", help="grade the copy: fixed, not fixed, or regressed (recorded)")
    p.add_argument("out", type=Path)
    p.add_argument("--key", type=Path, default=None)
    p.add_argument("--all", action="store_true", help="run every check even when the defect's fail")
    p.add_argument("--json", action="store_true", help="print the attempt as JSON")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run the copy without the grader's sandbox (trusted code only)")
    for name, what in (("status", "elapsed time and verify attempts"),
                       ("key", "the answer key: defects, symptom to read out, hints, fix")):
        p = sub.add_parser(name, help=what)
        p.add_argument("out", type=Path)
        p.add_argument("--key", type=Path, default=None)
        p.add_argument("--json", action="store_true")
    p = sub.add_parser("hint", help="the next hint of the ladder, recorded with its time")
    p.add_argument("out", type=Path)
    p.add_argument("--key", type=Path, default=None)
    p.add_argument("--defect", default=None, metavar="ID", help="which planted defect (when several)")
    sub.add_parser("list", help="every defect in the catalogue (interviewer only)")


def _start(args) -> int:
    from graders.bughunt.hunt import prepare
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    key_path, key = prepare(args.out, seed=seed, count=args.defects, ids=args.defect,
                            key_file=args.key, force=args.force)
    print(f"bug hunt prepared in {args.out} (seed {seed}; replay with --seed {seed})")
    print(f"answer key (interviewer only): {key_path}")
    print("read this to the candidate:")
    for d in key["defects"]:
        print(f"  \"{d['symptom']}\"")
    print(f"then: faultdrill bughunt key {args.out}   |   faultdrill bughunt verify {args.out}")
    return 0


def _verify(args) -> int:
    from graders.bughunt.hunt import verify
    # The same preparation as `faultdrill grade`: the sandbox must work here, and the
    # checks run in the grade's own network namespace.
    from graders.sandbox.entry import prepare_command
    refused = prepare_command(args, "bughunt")
    if refused is not None:
        return refused
    print(f"verifying {args.out} (the planted defects' checks first) ...", file=sys.stderr)
    attempt = verify(args.out, key_file=args.key, run_all=args.all,
                     unsafe_no_sandbox=args.unsafe_no_sandbox)
    if args.json:
        print(json.dumps(attempt.as_dict(), indent=1))
    else:
        words = {"fixed": "FIXED: the defect's checks pass and nothing else regressed",
                 "not_fixed": "NOT FIXED: a planted defect's check still fails",
                 "regressed": "REGRESSED: the defect's checks pass but other checks now fail",
                 "incomplete": "INCOMPLETE: the grader could not run some checks (not a verdict)"}
        print(f"attempt {attempt.number} after {attempt.elapsed_s / 60:.1f} min: {words[attempt.outcome]}")
        for cid, status in sorted(attempt.defect_checks.items()):
            print(f"  {status:<5} {cid}")
        for cid in attempt.other_failures:
            print(f"  fail  {cid} (was passing before the hunt)")
        for cid in attempt.errors:
            print(f"  error {cid}")
        if attempt.baseline_failing:
            print(f"  not counted (fail on the untouched reference too, on this machine): "
                  f"{', '.join(attempt.baseline_failing)}")
        if attempt.skipped_rest:
            print("  (the other checks were not run; --all runs them anyway)")
        print(f"  files changed since hand-out: {', '.join(attempt.changed_files) or 'none'}")
    return {"fixed": 0, "not_fixed": 1, "regressed": 1, "incomplete": 3}[attempt.outcome]


def _status(args, show_key: bool) -> int:
    from graders.bughunt.hunt import changed_files, load_key
    path, key = load_key(args.out, args.key)
    if args.json:
        print(json.dumps(key if show_key else {k: key[k] for k in ("seed", "started_at", "attempts")},
                         indent=1))
        return 0
    elapsed = time.time() - key["started_at"]
    print(f"bug hunt {key['copy']} (seed {key['seed']}), started {elapsed / 60:.1f} min ago; key {path}")
    if show_key:
        for d in key["defects"]:
            print(f"\n{d['id']}: {d['title']} [{d['area']}]")
            print(f"  where:   reference_impl/{d['file']}")
            print(f"  planted: {d['replace'].strip()}")
            print(f"  was:     {d['find'].strip()}")
            print(f"  symptom: {d['symptom']}")
            for i, h in enumerate(d["hints"], 1):
                print(f"  hint {i}:  {h}")
            print(f"  fix:     {d['fix']}")
            print(f"  checks:  {', '.join(d['checks'])}")
    print(f"\nfiles changed since hand-out: "
          f"{', '.join(changed_files(Path(args.out), key.get('handed_out', {}))) or 'none'}")
    for h in key.get("hints", []):
        print(f"hint {h['number']} for {h['defect']} at {h['elapsed_s'] / 60:.1f} min")
    for a in key["attempts"]:
        print(f"attempt {a['number']} at {a['elapsed_s'] / 60:.1f} min: {a['outcome']}")
    if not key["attempts"]:
        print("no verify attempts yet")
    return 0


def _hint(args) -> int:
    from graders.bughunt.hunt import HuntError, record_hint
    try:
        hint = record_hint(args.out, key_file=args.key, defect_id=args.defect)
    except HuntError as exc:
        print(f"faultdrill bughunt: {exc}", file=sys.stderr)
        return 2
    if hint is None:
        print("no hints left for this defect")
        return 0
    print(f"hint {hint['number']}/{hint['of']} for {hint['defect']} at {hint['elapsed_s'] / 60:.1f} min "
          f"(read it out): {hint['text']}")
    return 0


def _list() -> int:
    from graders.bughunt.catalogue import load_defects
    for d in load_defects():
        print(f"{d.id:<24} [{d.area}] {d.title}")
    return 0


def run(args) -> int:
    from graders.bughunt.catalogue import DefectError
    from graders.bughunt.hunt import HuntError
    try:
        if args.hunt_command == "start":
            return _start(args)
        if args.hunt_command == "verify":
            return _verify(args)
        if args.hunt_command in ("status", "key"):
            return _status(args, show_key=args.hunt_command == "key")
        if args.hunt_command == "list":
            return _list()
        if args.hunt_command == "hint":
            return _hint(args)
        print("faultdrill bughunt: name an action: start, verify, hint, status, key, list", file=sys.stderr)
        return 2
    except (HuntError, DefectError, OSError) as exc:
        print(f"faultdrill bughunt: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - e.g. the sandbox is unavailable: incomplete
        if type(exc).__name__ == "SandboxUnavailable":
            print(f"faultdrill bughunt: the sandbox is unavailable: {exc}; "
                  "--unsafe-no-sandbox runs the copy without it (trusted code only)", file=sys.stderr)
            return 3
        raise
