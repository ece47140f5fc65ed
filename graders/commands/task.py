"""`faultdrill task`: submit one task to a running orchestrator and print the reply.

Reads JSON from a file or stdin. Accepted shapes, so that the examples in SPEC.md can be
pasted as they are:
- a whole `submit` envelope (it is sent unchanged except for the token, if absent);
- a submit payload `{"task_type": ..., "input": {...}}`;
- a bare task input `{"source": ..., "records": [...]}` (task type from --type).

Exit status (the convention of `grade` and `check`): 0 the reply is `submit_ok`; 1 the
reply is an error (printed); 2 usage error (a missing or unreadable file, not a JSON
object, no token); 3 no usable reply (nothing listens, no reply in time, a reply that is
not one JSON object): the task's outcome is unknown; 130 interrupted.
"""
from __future__ import annotations

import json
import os
import sys
import uuid

from graders.client import ClientError, Connection, make_request

HELP = "submit a task (JSON from a file or stdin) to a running orchestrator and print the reply"
EPILOG = ("exit status: 0 submit_ok; 1 an error reply; 2 usage error (missing or unreadable file, "
          "not a JSON object, no token); 3 no usable reply (outcome unknown); 130 interrupted")


def add_arguments(parser):
    parser.add_argument("file", nargs="?", default="-", help="JSON file, or - for stdin (default)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("FD_LISTEN_PORT") or 7000),
                        help="orchestrator TCP port (default $FD_LISTEN_PORT or 7000)")
    parser.add_argument("--token", default=os.environ.get("FD_TOKEN"),
                        help="shared token (default $FD_TOKEN)")
    parser.add_argument("--task-id", help="task_id (default: a new random id)")
    parser.add_argument("--type", default="triage", help="task type for a bare input (default triage)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the reply")
    parser.epilog = EPILOG


def build_envelope(doc: dict, *, token: str | None, task_id: str | None, task_type: str) -> dict:
    """Turn any accepted input shape into a submit envelope (pure; tested)."""
    if not isinstance(doc, dict):
        raise ValueError("the task JSON must be an object")
    if "type" in doc and "payload" in doc:
        envelope = dict(doc)
        if token is not None:
            envelope.setdefault("token", token)
        if task_id:
            envelope["task_id"] = task_id
        envelope.setdefault("task_id", f"task-{uuid.uuid4().hex[:12]}")
        return envelope
    payload = doc if "input" in doc else {"task_type": task_type, "input": doc}
    payload.setdefault("task_type", task_type)
    return make_request("submit", payload, token=token,
                        task_id=task_id or f"task-{uuid.uuid4().hex[:12]}")


def read_task(name: str) -> str:
    """The task text from a file or stdin ('-'); OSError/ValueError say why not."""
    if name == "-":
        return sys.stdin.read()
    with open(name, "rb") as fh:
        return fh.read(64 * 1024 * 1024 + 1).decode("utf-8")


def run(args) -> int:
    if args.timeout <= 0:
        print("faultdrill task: --timeout must be positive", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"faultdrill task: --port {args.port} is not a TCP port (1-65535)", file=sys.stderr)
        return 2
    try:
        raw = read_task(args.file)
    except OSError as exc:
        print(f"faultdrill task: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"faultdrill task: {args.file} is not UTF-8 text: {exc}", file=sys.stderr)
        return 2
    try:
        doc = json.loads(raw)
        envelope = build_envelope(doc, token=args.token, task_id=args.task_id, task_type=args.type)
    except (ValueError, RecursionError) as exc:
        print(f"faultdrill task: cannot read the task: {exc}", file=sys.stderr)
        return 2
    if not envelope.get("token"):
        print("faultdrill task: no token: pass --token or set FD_TOKEN", file=sys.stderr)
        return 2
    try:
        with Connection(args.host, args.port, timeout=min(args.timeout, 10.0)) as conn:
            reply = conn.request(envelope, timeout=args.timeout)
    except (ClientError, OSError) as exc:
        print(f"faultdrill task: no reply from {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(reply, indent=2, ensure_ascii=False))
    return 0 if reply.get("type") == "submit_ok" else 1
