"""`faultdrill drill [PATH]`: a live incident drill, scored by the interviewer.

    faultdrill drill --list                          # the incident catalogue
    faultdrill drill --incident version-drift        # this incident (else the seed picks)
    faultdrill drill --seed 42 --script marks.txt    # scripted console (tests, rehearsals)

Starts the submission (the reference by default; a candidate's own runs in the grader's
sandbox) behind a fault proxy on every hop with seeded background traffic, waits a healthy
warm-up, injects the incident on its seeded schedule and opens the interviewer's console
on stdin (or --script): the answer key, a clock, and commands to record hints given and
when the candidate detected, diagnosed and mitigated (`help` lists them). The candidate
gets the candidate view printed at the start (dashboard, metrics, health, log files): it
never names the incident. At the end (`end`, end of input, --time-limit, Ctrl-C) every
fault is healed, the symptoms are watched until they are gone, and OUT/drill.html and
OUT/drill.json are written: the incident timeline against the system's own metrics and
the interviewer's marks against the incident's levels.

Exit status: 0 drill completed and report written; 2 usage error (unknown incident, bad
file); 3 incomplete (the system could not start, the sandbox is unavailable without
--unsafe-no-sandbox, something was left running); 130 interrupted (the report is still
written).
"""
from __future__ import annotations

import json
import random
import secrets
import sys
from pathlib import Path

from graders import paths

HELP = "a live incident drill: inject an incident, the interviewer's console records the candidate"


def add_arguments(parser) -> None:
    parser.epilog = ("exit status: 0 drill completed, report written; 2 usage error; 3 incomplete "
                     "(could not start, no sandbox, something left running); 130 interrupted "
                     "(the report is still written)")
    parser.add_argument("path", nargs="?", default=str(paths.REFERENCE),
                        help="submission folder with a faultdrill.toml (default: the reference)")
    parser.add_argument("--incident", default=None, help="incident id (default: chosen by the seed)")
    parser.add_argument("--seed", type=int, default=None, help="replay a drill (printed)")
    parser.add_argument("--optional", action="store_true",
                        help="let the seed pick optional-area incidents too (TLS, back-pressure, ...)")
    parser.add_argument("--list", action="store_true", help="list the incidents and exit")
    parser.add_argument("--rubric", action="store_true",
                        help="print rubric/INCIDENTS.md (generated from the incident files) and exit")
    parser.add_argument("--script", type=Path, default=None,
                        help="read console commands from this file instead of stdin")
    parser.add_argument("--out", type=Path, default=Path("drill-out"), help="report folder (default drill-out)")
    parser.add_argument("--traffic", type=float, default=6.0, help="background tasks per second (default 6)")
    parser.add_argument("--port-base", type=int, default=7000,
                        help="orchestrator port, others follow as in `faultdrill up` (0: free ports)")
    parser.add_argument("--warmup", type=float, default=2.0, help="healthy seconds before the injection")
    parser.add_argument("--control-port", type=int, default=None,
                        help="also serve the live control API here (0: any free port), so that "
                             "`faultdrill fault ...` can add faults by hand; they are recorded")
    parser.add_argument("--time-limit", type=float, default=3600.0, help="end the drill after this many seconds")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="run the services without the grader's sandbox (trusted code only)")


def _list() -> int:
    from graders.drills.catalogue import load_incidents
    for inc in load_incidents():
        print(f"{inc.id:<22} {'optional' if inc.optional else 'core    '} {inc.challenge}: {inc.title}")
    return 0


def run(args) -> int:
    from graders.drills.catalogue import IncidentError, incident_by_id, pick
    from graders.manifest import ManifestError, load_manifest
    if args.list:
        return _list()
    if args.rubric:
        from graders.drills.rubric_md import render
        sys.stdout.write(render())
        return 0
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    try:
        incident = incident_by_id(args.incident) if args.incident else pick(seed, include_optional=args.optional)
        submission = load_manifest(Path(args.path))
        if args.script is not None and not args.script.is_file():
            raise ValueError(f"no script file {args.script}")
        if not 0 < args.traffic <= 200:
            raise ValueError("--traffic must be within (0, 200]")
        if args.port_base:
            from graders.live.system import port_plan
            port_plan(args.port_base)
    except (IncidentError, ManifestError, ValueError) as exc:
        print(f"faultdrill drill: {exc}", file=sys.stderr)
        return 2
    print(f"faultdrill drill (seed {seed}; replay with --seed {seed}"
          + (f" --incident {incident.id}" if args.incident else "") + ")", flush=True)
    from graders.drills.report import write_report
    from graders.drills.runner import Drill, run_console
    from graders.live.session import LiveSession
    from graders.live.system import LIVE_SETTINGS
    try:
        session = LiveSession.start(submission, seed=seed, token=secrets.token_urlsafe(18),
                                    port_base=args.port_base or None, settings=LIVE_SETTINGS,
                                    traffic_rate=args.traffic, api_port=args.control_port,
                                    write_state_file=args.control_port is not None,
                                    unsafe_no_sandbox=args.unsafe_no_sandbox)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, incomplete
        why = str(exc)
        if type(exc).__name__ == "SandboxUnavailable":
            why = f"the sandbox is unavailable: {exc}; --unsafe-no-sandbox runs trusted code without it"
        print(f"faultdrill drill: could not start the system: {why}", file=sys.stderr)
        return 3
    status = 0
    # SIGTERM (a CI timeout, `kill`) ends the drill like Ctrl-C: healed, reported, stopped.
    import signal

    def _term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    previous_term = signal.signal(signal.SIGTERM, _term)
    drill = Drill(session, incident, seed=seed, out=args.out, stream=sys.stdout,
                  warmup_s=max(0.0, args.warmup), submission_name=submission.name,
                  sandbox={"enabled": getattr(session.system.deployment, "sandboxed", None)})
    script = None
    session.api.on_change = lambda method, path, data: drill.record.add(
        "fault", f"by hand: {method} {path} {json.dumps(data) if data else ''}".strip(), by_hand=True)
    try:
        if drill.record.sandbox.get("enabled") is False:
            print("UNSANDBOXED: the services run without the grader's sandbox", flush=True)
        print("\n".join(drill.candidate_view()), flush=True)
        drill.show_key()
        if session.api_url:
            print(f"control API (interviewer only): {session.api_url}  faultdrill fault "
                  f"--api-port {session.server.address[1]} ...  (recorded on the timeline)", flush=True)
        print("console: `help` lists the commands; `end` finishes the drill", flush=True)
        drill.start()
        script = open(args.script, encoding="utf-8") if args.script else None
        reason = run_console(drill, script if script is not None else sys.stdin,
                             time_limit_s=args.time_limit)
    except KeyboardInterrupt:
        reason, status = "interrupted (Ctrl-C or SIGTERM)", 130
    finally:
        if script is not None:
            script.close()
        try:
            drill.finish(reason if "reason" in locals() else "error")
        except KeyboardInterrupt:
            status = 130
        finally:
            report = session.close()
            drill.record.cleanup_ok = report is None or report.ok
            signal.signal(signal.SIGTERM, previous_term)
    js, html = write_report(drill.record.as_json(), args.out)
    marks = drill.record.marks()
    print(f"drill ended ({drill.record.end_reason}); marks after injection: "
          + ", ".join(f"{k} {'-' if v is None else f'{v:.1f} s'}" for k, v in marks.items()), flush=True)
    print(f"report: {html}  (JSON: {js})")
    if not drill.record.cleanup_ok:
        print(f"faultdrill drill: could not stop everything: {report.survivors}", file=sys.stderr)
        return 3
    return status
