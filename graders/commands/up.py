"""`faultdrill up [PATH]`: run a submission (the reference by default) on loopback, with a
fault proxy on every hop and a live control API.

One process per service, started from the submission's `faultdrill.toml` exactly as the
graders start it (same driver, same sandbox), on fixed, predictable ports so people can
type them:

    orchestrator  tcp BASE      http BASE+100
    collector     tcp BASE+1    http BASE+101
    analyzer      tcp BASE+2    http BASE+102
    reporter      tcp BASE+3    http BASE+103
    control API   http 127.0.0.1:BASE+1474 (8474, Toxiproxy's port, for BASE 7000)

(BASE defaults to 7000, the SPEC's default ports.) Each TCP port is a fault proxy named
after the service it fronts; the service itself listens on a free port behind it, and the
orchestrator reaches the agents through their proxies, so a fault can be put on any hop
(`faultdrill fault ...`, or the HTTP API in Toxiproxy's shape: graders/live/control.py).
The HTTP side ports are the services' own. `--traffic RATE` starts the seeded background
traffic generator. Service logs are relayed as `[orchestrator] ...` lines. Ctrl-C (or
SIGTERM, or `--for SECONDS` running out) stops every service with SIGTERM, then SIGKILL
after the grace period, and checks nothing is left. Memory lives in a temporary folder.

A service that exits (on its own or killed through the control API) is reported and `up`
keeps running, so it can be restarted or healed. Exit status: 0 stopped on request; 2 bad
arguments or manifest; 3 the system could not be started (e.g. no sandbox without
--unsafe-no-sandbox) or something was left running.
"""
from __future__ import annotations

import importlib.util
import os
import random
import secrets
import signal
import sys
import threading
import time
from pathlib import Path

from graders import paths
from graders.live.system import port_plan  # noqa: F401 - re-exported (tests, docs)
from graders.manifest import ROLES, ManifestError, load_manifest

HELP = "run the reference (or any submission) on loopback, a fault proxy on every hop, a control API"
CONTROL_OFFSET = 1474        # BASE 7000 -> 8474, Toxiproxy's default API port


def add_arguments(parser):
    parser.epilog = ("exit status: 0 stopped on request (Ctrl-C, SIGTERM, --for); 2 bad arguments or "
                     "manifest; 3 could not start (e.g. no sandbox) or something was left running")
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
    parser.add_argument("--control-port", type=int, default=None,
                        help="control API port on 127.0.0.1 (default BASE+1474, i.e. 8474); 0: any")
    parser.add_argument("--traffic", type=float, default=0.0, metavar="RATE",
                        help="background traffic, tasks per second (default 0: none)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed for the traffic and every random fault choice (printed)")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="run the services without the grader's sandbox (trusted code only)")


def _relay(deployment, stop: threading.Event) -> None:
    seen = {role: 0 for role in ROLES}
    while not stop.wait(0.3):
        for role in ROLES:
            lines = deployment.logs(role)
            for line in lines[seen[role]:]:
                print(f"[{role}] {line}", flush=True)
            seen[role] = len(lines)


def _start_error_status(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "SandboxUnavailable":
        return (f"the sandbox is unavailable: {exc}. Run `faultdrill up --unsafe-no-sandbox` "
                "only for code you trust.")
    return str(exc)


def run(args) -> int:
    from graders.live.session import LiveSession
    try:
        submission = load_manifest(Path(args.path))
        port_plan(args.port_base)
        control_port = (args.control_port if args.control_port is not None
                        else args.port_base + CONTROL_OFFSET)
        if not 0 <= control_port <= 65535:
            raise ValueError("--control-port must be between 0 and 65535")
        if args.traffic < 0 or args.traffic > 200:
            raise ValueError("--traffic must be between 0 and 200 tasks per second")
    except (ManifestError, ValueError) as exc:
        print(f"faultdrill up: {exc}", file=sys.stderr)
        return 2
    token = args.token or secrets.token_urlsafe(18)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    session = None
    relay = None
    status = 0
    try:
        try:
            session = LiveSession.start(submission, seed=seed, token=token, port_base=args.port_base,
                                        traffic_rate=args.traffic or None, api_port=control_port,
                                        write_state_file=True,
                                        unsafe_no_sandbox=args.unsafe_no_sandbox)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - report any start failure in plain words
            print(f"faultdrill up: could not start: {_start_error_status(exc)}", file=sys.stderr)
            return 3
        deployment = session.system.deployment
        if getattr(deployment, "sandboxed", None) is False:
            print("UNSANDBOXED: the services run without the grader's sandbox", flush=True)
        for role in ROLES:
            host, port = session.system.public_address(role)
            ep = deployment.endpoint(role)
            print(f"{role:<12} tcp {host}:{port}   http://{ep.host}:{ep.http_port}/livez",
                  flush=True)
        orch_http = deployment.endpoint("orchestrator")
        host, port = session.system.public_address("orchestrator")
        print(f"dashboard    http://{orch_http.host}:{orch_http.http_port}/")
        print(f"control API  {session.api_url}   (Toxiproxy-style; token {session.api_token})")
        if importlib.util.find_spec("graders.commands.fault") is not None:   # not in every bundle
            print("faults:      faultdrill fault list | add HOP TYPE -a key=value | heal | --help")
        print(f"seed         {seed}   (replay with --seed {seed})")
        if not args.token:
            print(f"token        {token}   (generated for this run)")
        if session.traffic is not None:
            print(f"traffic      {args.traffic:g} tasks/s through the orchestrator's hop")
        print(f"try:         FD_TOKEN=... faultdrill task --port {port} FILE.json")
        print("Ctrl-C stops everything.", flush=True)
        if not args.quiet:
            relay = threading.Thread(target=_relay, args=(deployment, stop), daemon=True)
            relay.start()
        deadline = None if args.duration is None else time.monotonic() + args.duration
        was_running = {role: True for role in ROLES}
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            # A service that exits (by itself, or killed by a fault) is reported and `up`
            # keeps running, so that it can be restarted or healed through the control API.
            for role in ROLES:
                running = deployment.running(role)
                if running != was_running[role]:
                    print(f"faultdrill up: {role} " + ("is running again" if running else
                          f"exited (status {deployment.exit_code(role)}); "
                          f"`faultdrill fault start {role}` or `faultdrill fault heal`"),
                          file=sys.stderr, flush=True)
                    was_running[role] = running
            stop.wait(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        signal.signal(signal.SIGTERM, previous)
        report = session.close() if session is not None else None
        if relay is not None:
            relay.join(timeout=2)
    if session is None:
        return status
    ok = report is None or report.ok
    print("stopped: " + ("nothing left running" if ok else f"could not stop {report.survivors}"),
          flush=True)
    return status if ok else 3
