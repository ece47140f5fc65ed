"""`faultdrill fault ...`: inject and heal faults on a running `faultdrill up` (or drill).

A thin client of the live control API (graders/live/control.py): it finds the API and its
token in the state file `faultdrill up` writes (or --api-port / --token / $FD_CONTROL_TOKEN)
and prints what the API answered. Toxics use Toxiproxy's names and units:

    faultdrill fault add analyzer latency -a latency=300 -a jitter=50
    faultdrill fault add collector reset_peer --toxicity 0.5
    faultdrill fault list            faultdrill fault remove analyzer latency_downstream
    faultdrill fault pause analyzer  faultdrill fault drift reporter --mode renamed_field
    faultdrill fault heal

Exit status: 0 done; 2 the request was wrong (unknown hop, bad attribute: the API's
message is printed); 3 the API could not be reached or failed.
"""
from __future__ import annotations

import json
import os
import sys

from graders.live.actions import FLOOD_KINDS, SERVICE_OPS
from graders.live.state import LiveClient, LiveClientError, read_state
from graders.live.toxics import TOXIC_TYPES
from graders.manifest import ROLES

HELP = "inject, list and heal faults on a running `faultdrill up` (Toxiproxy-style toxics and more)"
AGENT_ROLES = ("collector", "analyzer", "reporter")


def add_arguments(parser) -> None:
    parser.epilog = ("exit status: 0 done; 2 the request was wrong (the API's message is printed); "
                     "3 the control API could not be reached or failed")
    parser.add_argument("--api-port", type=int, default=None,
                        help="control API port (default: the running `faultdrill up`'s)")
    parser.add_argument("--token", default=os.environ.get("FD_CONTROL_TOKEN"),
                        help="control API token (default: from the state file, or $FD_CONTROL_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")
    sub = parser.add_subparsers(dest="fault_command", metavar="ACTION")
    sub.add_parser("list", help="hops and their toxics")
    sub.add_parser("status", help="services, drifted agents, running fault jobs, traffic")
    p = sub.add_parser("add", help="add a toxic: HOP TYPE [-a key=value ...]")
    p.add_argument("hop", choices=ROLES)
    p.add_argument("type", choices=sorted(TOXIC_TYPES))
    p.add_argument("--name", default=None)
    p.add_argument("--stream", choices=("upstream", "downstream"), default=None)
    p.add_argument("--toxicity", type=float, default=1.0)
    p.add_argument("-a", "--attribute", action="append", default=[], metavar="KEY=VALUE")
    p = sub.add_parser("remove", help="remove a toxic: HOP NAME")
    p.add_argument("hop", choices=ROLES)
    p.add_argument("name")
    sub.add_parser("reset", help="remove every toxic and enable every hop (Toxiproxy's reset)")
    for verb, what in (("disable", "refuse connections on a hop"), ("enable", "accept again")):
        p = sub.add_parser(verb, help=what)
        p.add_argument("hop", choices=ROLES)
    p = sub.add_parser("cut", help="close every open connection on a hop at once")
    p.add_argument("hop", choices=ROLES)
    for op in SERVICE_OPS:
        p = sub.add_parser(op, help=f"{op} a service")
        p.add_argument("role", choices=ROLES)
    for name, ttype in (("drop-reply", "drop_reply"), ("duplicate", "duplicate")):
        p = sub.add_parser(name, help=TOXIC_TYPES[ttype].summary)
        p.add_argument("hop", choices=ROLES)
        p.add_argument("--match", default=None, help="only this request type (e.g. collect)")
        p.add_argument("--toxicity", type=float, default=1.0)
    p = sub.add_parser("corrupt-memory", help="damage stored records of a service, then restart it")
    p.add_argument("role", choices=ROLES)
    p.add_argument("--kind", default="truncated")
    p.add_argument("--task-id", default=None)
    p.add_argument("--count", type=int, default=1)
    p = sub.add_parser("drift", help="replace an agent by a drifted or failing one")
    p.add_argument("role", choices=AGENT_ROLES)
    p.add_argument("--mode", default="renamed_field")
    p = sub.add_parser("overload", help="many concurrent clients")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seconds", type=float, default=600)
    p = sub.add_parser("flood", help="a stream of bad requests: " + ", ".join(FLOOD_KINDS))
    p.add_argument("--kind", choices=sorted(FLOOD_KINDS), default="bad_token")
    p.add_argument("--rate", type=float, default=10)
    p.add_argument("--seconds", type=float, default=600)
    p = sub.add_parser("leak", help="hold idle connections open")
    p.add_argument("--connections", type=int, default=40)
    p.add_argument("--hop", choices=ROLES, default="orchestrator")
    sub.add_parser("heal", help="undo every fault and wait for readiness")
    p = sub.add_parser("traffic", help="show the traffic generator, or set its rate")
    p.add_argument("--rate", type=float, default=None)


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def request_for(args) -> tuple[str, str, object]:
    """(method, path, body) for the parsed arguments (pure; tested)."""
    c = args.fault_command
    if c == "list":
        return "GET", "/proxies", None
    if c == "status":
        return "GET", "/faultdrill/status", None
    if c == "add":
        attrs = {}
        for item in args.attribute:
            key, sep, val = item.partition("=")
            if not sep or not key:
                raise ValueError(f"attribute {item!r} must look like KEY=VALUE")
            attrs[key] = _value(val)
        body = {"type": args.type, "toxicity": args.toxicity, "attributes": attrs}
        if args.name:
            body["name"] = args.name
        if args.stream:
            body["stream"] = args.stream
        return "POST", f"/proxies/{args.hop}/toxics", body
    if c == "remove":
        return "DELETE", f"/proxies/{args.hop}/toxics/{args.name}", None
    if c == "reset":
        return "POST", "/reset", None
    if c in ("disable", "enable"):
        return "POST", f"/proxies/{args.hop}", {"enabled": c == "enable"}
    if c == "cut":
        return "POST", "/faultdrill/faults", {"action": "cut", "hop": args.hop}
    if c in SERVICE_OPS:
        return "POST", f"/faultdrill/services/{args.role}/{c}", None
    if c in ("drop-reply", "duplicate"):
        ttype = c.replace("-", "_")
        return "POST", f"/proxies/{args.hop}/toxics", {
            "type": ttype, "toxicity": args.toxicity, "attributes": {"match": args.match}}
    if c == "corrupt-memory":
        fault = {"action": "corrupt_memory", "role": args.role, "kind": args.kind, "count": args.count}
        if args.task_id:
            fault["task_id"] = args.task_id
        return "POST", "/faultdrill/faults", fault
    if c == "drift":
        return "POST", "/faultdrill/faults", {"action": "drift", "role": args.role, "mode": args.mode}
    if c == "overload":
        return "POST", "/faultdrill/faults", {"action": "overload", "concurrency": args.concurrency,
                                              "seconds": args.seconds}
    if c == "flood":
        return "POST", "/faultdrill/faults", {"action": "flood", "kind": args.kind, "rate": args.rate,
                                              "seconds": args.seconds}
    if c == "leak":
        return "POST", "/faultdrill/faults", {"action": "leak", "connections": args.connections,
                                              "hop": args.hop}
    if c == "heal":
        return "POST", "/faultdrill/heal", None
    if c == "traffic":
        if args.rate is None:
            return "GET", "/faultdrill/traffic", None
        return "POST", "/faultdrill/traffic", {"rate": args.rate}
    raise ValueError("name an action (faultdrill fault --help)")


def _print_proxies(proxies: dict) -> None:
    for name, p in proxies.items():
        state = "enabled" if p["enabled"] else "DISABLED"
        print(f"{name:<13} {p['listen']:<21} -> {p['upstream']:<21} {state}")
        for t in p["toxics"]:
            attrs = " ".join(f"{k}={v}" for k, v in t["attributes"].items())
            print(f"    {t['name']}: {t['type']} {t['stream']} toxicity={t['toxicity']} {attrs}")


def run(args) -> int:
    try:
        method, path, body = request_for(args)
        state = read_state(args.api_port)
    except (ValueError, LiveClientError) as exc:
        print(f"faultdrill fault: {exc}", file=sys.stderr)
        return 2
    token = args.token or (state or {}).get("token")
    port = args.api_port or (state or {}).get("port")
    if not port or not token:
        print("faultdrill fault: no running control API found (start `faultdrill up`, or pass "
              "--api-port and --token)", file=sys.stderr)
        return 3
    try:
        answer = LiveClient(int(port), token).call(method, path, body)
    except LiveClientError as exc:
        print(f"faultdrill fault: {exc}", file=sys.stderr)
        return 2 if exc.status is not None and 400 <= exc.status < 500 else 3
    if args.json or not isinstance(answer, (dict, list)):
        print(json.dumps(answer, indent=1) if answer is not None else "done")
    elif path == "/proxies":
        _print_proxies(answer)
    else:
        print(json.dumps(answer, indent=1))
    return 0
