"""`faultdrill up [PATH]`: run a submission (the reference by default) on loopback.

One process per service, started from the submission's `faultdrill.toml` exactly as the
graders start it, on fixed, predictable ports so people can type them:

    orchestrator  tcp BASE      http BASE+100
    collector     tcp BASE+1    http BASE+101
    analyzer      tcp BASE+2    http BASE+102
    reporter      tcp BASE+3    http BASE+103

(BASE defaults to 7000, the SPEC's default ports.) Service logs are relayed as
`[orchestrator] ...` lines. Ctrl-C (or SIGTERM, or `--for SECONDS` running out) stops every
service with SIGTERM, then SIGKILL after the grace period, and checks nothing is left.
Memory lives in a temporary folder for the run.
"""
from __future__ import annotations

import os
import secrets
import signal
import sys
import threading
import time
from pathlib import Path

from graders import paths
from graders.drivers.process import ProcessDriver
from graders.manifest import ROLES, ManifestError, load_manifest

HELP = "run the reference (or any submission) on loopback, one process per service"
AGENTS = ("collector", "analyzer", "reporter")
ADDR_VARS = {"collector": "FD_COLLECTOR_ADDR", "analyzer": "FD_ANALYZER_ADDR",
             "reporter": "FD_REPORTER_ADDR"}


def add_arguments(parser):
    has_reference = (paths.REFERENCE / "faultdrill.toml").exists()
    parser.add_argument("path", nargs=None if not has_reference else "?",
                        default=str(paths.REFERENCE) if has_reference else None,
                        help="submission folder with a faultdrill.toml"
                        + (" (default: the reference)" if has_reference else ""))
    parser.add_argument("--port-base", type=int, default=7000,
                        help="orchestrator TCP port; the others follow (default 7000)")
    parser.add_argument("--token", default=os.environ.get("FD_TOKEN"),
                        help="shared token (default $FD_TOKEN, else a new random one)")
    parser.add_argument("--for", dest="duration", type=float, default=None,
                        help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--quiet", action="store_true", help="do not relay service logs")


def port_plan(base: int) -> dict[str, tuple[int, int]]:
    """Fixed (tcp, http) ports per role from one base port (pure; tested)."""
    if not 1 <= base <= 65535 - 103:
        raise ValueError(f"--port-base must be between 1 and {65535 - 103}")
    return {role: (base + i, base + 100 + i) for i, role in enumerate(ROLES)}


def _relay(deployment, stop: threading.Event) -> None:
    seen = {role: 0 for role in ROLES}
    while not stop.wait(0.3):
        for role in ROLES:
            lines = deployment.logs(role)
            for line in lines[seen[role]:]:
                print(f"[{role}] {line}", flush=True)
            seen[role] = len(lines)


def run(args) -> int:
    try:
        submission = load_manifest(Path(args.path))
        ports = port_plan(args.port_base)
    except (ManifestError, ValueError) as exc:
        print(f"faultdrill up: {exc}", file=sys.stderr)
        return 2
    token = args.token or secrets.token_urlsafe(18)
    base_env = {role: {"FD_TOKEN": token} for role in ROLES}
    for agent in AGENTS:
        base_env["orchestrator"][ADDR_VARS[agent]] = f"127.0.0.1:{ports[agent][0]}"
    deployment = ProcessDriver(ports=ports).deploy(submission, base_env=base_env)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    relay = None
    try:
        for role in (*AGENTS, "orchestrator"):
            deployment.start(role)
        for role in ROLES:
            ep = deployment.endpoint(role)
            print(f"{role:<12} tcp {ep.host}:{ep.port}   http://{ep.host}:{ep.http_port}/livez",
                  flush=True)
        orch = deployment.endpoint("orchestrator")
        print(f"dashboard    http://{orch.host}:{orch.http_port}/")
        if not args.token:
            print(f"token        {token}   (generated for this run)")
        print(f"try:         FD_TOKEN=... faultdrill task --port {orch.port} FILE.json")
        print("Ctrl-C stops everything.", flush=True)
        if not args.quiet:
            relay = threading.Thread(target=_relay, args=(deployment, stop), daemon=True)
            relay.start()
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            dead = [r for r in ROLES if not deployment.running(r)]
            if dead:
                print(f"faultdrill up: {', '.join(dead)} exited "
                      f"(status {deployment.exit_code(dead[0])}); stopping", file=sys.stderr)
                break
            stop.wait(0.2)
        failed = bool([r for r in ROLES if not deployment.running(r)])
    except KeyboardInterrupt:
        failed = False
    except Exception as exc:  # noqa: BLE001 - report any start failure in plain words
        print(f"faultdrill up: {exc}", file=sys.stderr)
        failed = True
    finally:
        stop.set()
        signal.signal(signal.SIGTERM, previous)
        report = deployment.close()
        if relay is not None:
            relay.join(timeout=2)
    print("stopped: " + ("nothing left running" if report.ok
                         else f"could not stop {report.survivors}"), flush=True)
    return 1 if failed or not report.ok else 0
