"""Helpers shared by the checks: the SPEC §6 error table (the grader's own copy), reply
assertions that produce sent/expected/received evidence, metrics and HTTP access.

Why a grader-side copy of the error table: checks must never import reference_impl, and
the table is the contract's, so it is written down here from SPEC §6 alone.
"""
from __future__ import annotations

import json
import time

from graders.checks import promtext
from graders.checks.registry import CheckFailed
from graders.client import Connection, http_get, make_request
from graders.decode import CandidateDataError, decode_json, decode_text

#: Bounds of the one decoder (graders/decode.py) for what checks read from the candidate:
#: HTTP bodies (http_get's own cap), memory records (SPEC §11.1: at most 16 MiB), log lines.
HTTP_BODY_MAX = 16 * 1024 * 1024
RECORD_MAX = 16 * 1024 * 1024
LOG_LINE_MAX = 4 * 1024 * 1024


def text_of(data: bytes, what: str = "candidate text", *, max_bytes: int = HTTP_BODY_MAX) -> str:
    """Candidate text the grader only searches or parses itself (the metrics exposition):
    bounded, invalid UTF-8 shown as U+FFFD (the format checker reports what is wrong)."""
    return decode_text(data, what=what, max_bytes=max_bytes, strict=False)


def loads(data, what: str = "candidate JSON", *, max_bytes: int = HTTP_BODY_MAX):
    """Candidate JSON (an HTTP body, a record, a log line) through the bounded decoder.

    Raises CandidateDataError, a ValueError: `except ValueError` around a read keeps
    meaning "the candidate sent something that is not the JSON we need", and a line of
    `[` x 3000 or a 10 MB body can no longer make the grader's own parsing crash (which
    would have been a grader error, not counted against the candidate)."""
    return decode_json(data, what=what, max_bytes=max_bytes)

ERRORS = {  # name: (code, definite, retryable, required detail keys)
    "timeout": (1, False, True, ("step", "timeout_ms")),
    "not_supported": (10, True, False, ("type",)),
    "busy": (11, True, True, ("retry_after_ms",)),
    "malformed_frame": (12, True, False, ("reason",)),
    "frame_too_large": (13, True, False, ("limit_bytes",)),
    "internal_error": (14, False, True, ()),
    "unauthorized": (20, True, False, ()),
    "schema_violation": (21, True, False, ("path", "expected")),
    "unsupported_version": (22, True, False, ("supported",)),
    "idempotency_conflict": (30, True, False, ("task_id",)),
    "in_progress": (31, True, True, ("task_id", "retry_after_ms")),
    "upstream_failed": (40, True, True, ("step", "agent", "attempts", "cause")),
    "not_found": (41, True, False, ("task_id",)),
}
CODE_TO_NAME = {v[0]: k for k, v in ERRORS.items()}


def redact(obj, token: str):
    """Evidence must never print the token itself; replace it everywhere."""
    if isinstance(obj, str):
        return obj.replace(token, "<TOKEN>") if token else obj
    if isinstance(obj, dict):
        return {k: redact(v, token) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v, token) for v in obj]
    return obj


def error_problems(reply: dict, name: str) -> list[str]:
    """What is wrong with `reply` as a SPEC §6 error of kind `name` ([] = fine)."""
    code, definite, retryable, keys = ERRORS[name]
    probs = []
    if not isinstance(reply, dict) or reply.get("type") != "error":
        return [f"expected an error reply ({code} {name}), got type {reply.get('type')!r}"]
    err = reply.get("error")
    if not isinstance(err, dict):
        return ["error reply without an `error` object"]
    if err.get("code") != code or err.get("name") != name:
        return [f"expected error {code} {name}, got {err.get('code')} {err.get('name')}"]
    if err.get("definite") is not definite:
        probs.append(f"error.definite must be {str(definite).lower()}")
    if err.get("retryable") is not retryable:
        probs.append(f"error.retryable must be {str(retryable).lower()}")
    if not isinstance(err.get("message"), str):
        probs.append("error.message must be a string")
    details = err.get("details")
    if not isinstance(details, dict):
        probs.append("error.details must be an object")
    else:
        missing = [k for k in keys if k not in details]
        if missing:
            probs.append(f"error.details lacks {missing}")
    if reply.get("v") != 1:
        probs.append("reply v must be 1")
    if "token" in reply:
        probs.append("a reply must never contain the token field")
    return probs


def dig(value, *path, default=None):
    """Walk a candidate's JSON value by keys (dicts) and indexes (lists); `default` as soon
    as the shape is not what the path assumes.

    Why: a check reads members of replies the candidate built. A reply of the wrong shape
    is the candidate's failure, so a check must compare it and fail with evidence, never
    crash on it with AttributeError/TypeError (which the harness reports as a grader
    error, excluded from the score)."""
    for key in path:
        if isinstance(key, int) and not isinstance(key, bool):
            if not isinstance(value, list) or not -len(value) <= key < len(value):
                return default
            value = value[key]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return default
    return value


def as_dict(value) -> dict:
    """`value` when it is a JSON object, else {} (so `.get` on candidate data is safe)."""
    return value if isinstance(value, dict) else {}


def as_list(value) -> list:
    """`value` when it is a JSON array, else []."""
    return value if isinstance(value, list) else []


def read_record(ctx, role: str, task_id: str, *, what: str = "") -> tuple[bytes, dict]:
    """The raw bytes and the parsed object of `role`'s record for `task_id`.

    SPEC §11.1 fixes the layout and the record's shape, so a missing, unreadable or
    non-object record is the candidate's failure: CheckFailed naming the expected file
    and the files found, not an OSError/ValueError escaping as a grader error."""
    dep = ctx.deployment
    rel = f"records/{task_id}.json"
    prefix = f"{role}: " + (what + ": " if what else "")
    files = dep.memory_files(role)
    hint = ("SPEC §11.1: one record per task at $FD_MEMORY_DIR/records/<task_id>.json, "
            "a JSON object, durable before the reply.")
    if rel not in files:
        raise CheckFailed(prefix + f"the record must be at $FD_MEMORY_DIR/{rel}",
                          expected=rel, received={"files found": files[:20], "count": len(files)},
                          hint=hint)
    try:
        data = dep.read_memory(role, rel)
    except OSError as exc:
        raise CheckFailed(prefix + f"$FD_MEMORY_DIR/{rel} cannot be read", expected="a readable file",
                          received=f"{type(exc).__name__}: {exc}", hint=hint) from None
    try:
        obj = loads(data, f"record {rel}", max_bytes=RECORD_MAX)
        why = ""
    except CandidateDataError as exc:
        obj, why = None, f" ({exc.reason})"
    if not isinstance(obj, dict):
        raise CheckFailed(prefix + f"$FD_MEMORY_DIR/{rel} must hold one JSON object{why}",
                          expected="a UTF-8 JSON object", received=data[:300], hint=hint)
    return data, obj


def expect_error(reply: dict, name: str, *, sent=None, token: str = "", hint: str | None = None,
                 what: str = "") -> dict:
    probs = error_problems(reply, name)
    if probs:
        code = ERRORS[name][0]
        raise CheckFailed((what + ": " if what else "") + "; ".join(probs),
                          sent=redact(sent, token), expected=f"error {code} {name}",
                          received=redact(reply, token), hint=hint)
    return reply["error"]


def expect_ok(reply: dict, rtype: str, *, sent=None, token: str = "", what: str = "",
              hint: str | None = None) -> dict:
    if not isinstance(reply, dict) or reply.get("type") != rtype + "_ok" or not isinstance(reply.get("payload"), dict):
        raise CheckFailed((what + ": " if what else "") + f"expected a {rtype}_ok reply with a payload",
                          sent=redact(sent, token), expected=f"{rtype}_ok",
                          received=redact(reply, token), hint=hint)
    return reply["payload"]


def send(ctx, role: str, rtype: str, payload, *, task_id=None, direct=True, timeout=5.0,
         traceparent=None, token="__ctx__", v=1) -> tuple[dict, dict]:
    """One request to a service on a fresh connection; returns (sent, reply)."""
    req = make_request(rtype, payload, token=ctx.token if token == "__ctx__" else token,
                       task_id=task_id, traceparent=traceparent, v=v)
    with connect(ctx, role, direct=direct, timeout=timeout) as c:
        reply = c.request(req, timeout=timeout)
    return req, reply


def connect(ctx, role: str, *, direct=True, timeout=5.0) -> Connection:
    topo = ctx.topo
    if role == "orchestrator":
        return topo.connect(direct=direct)
    if direct:
        ep = topo.deployment.endpoint(role)
        return Connection(ep.host, ep.port, timeout=timeout)
    host, port = topo.agent_proxy[role].address
    return Connection(host, port, timeout=timeout)


def submit(ctx, task_id: str, task_input: dict, *, task_type="triage", wait=True,
           timeout=8.0, direct=False, traceparent=None) -> tuple[dict, dict]:
    payload = {"task_type": task_type, "input": task_input}
    if not wait:
        payload["wait"] = False
    return send(ctx, "orchestrator", "submit", payload, task_id=task_id, direct=direct,
                timeout=timeout, traceparent=traceparent)


def http(ctx, role: str, path: str, timeout=3.0):
    ep = ctx.topo.deployment.endpoint(role)
    return http_get(ep.host, ep.http_port, path, timeout=timeout)


def wait_unready_naming(ctx, agent: str, *, timeout: float = 4.0, keep: int = 500):
    """Poll the orchestrator's /readyz until it answers 503 naming `agent` (SPEC §13).
    Returns None when it did, else the last (status, body) seen, for the evidence."""
    last = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _h, body = http(ctx, "orchestrator", "/readyz")
        last = (status, body[:keep].decode("utf-8", "replace"))
        if status == 503 and agent.encode() in body:
            return None
        time.sleep(0.2)
    return last


def metrics(ctx, role: str) -> dict:
    status, headers, body = http(ctx, role, "/metrics")
    if status != 200:
        raise CheckFailed(f"GET /metrics on {role} answered {status}", expected=200, received=status)
    families, _problems = promtext.parse(text_of(body, f"{role} /metrics"))
    return families


def metric(ctx, role: str, name: str, **labels) -> float:
    return promtext.value(metrics(ctx, role), name, **labels)


def poll_status(ctx, task_id: str, *, until=("succeeded", "failed"), timeout=8.0) -> dict:
    """Poll `status` until the task reaches one of `until`; returns the last payload."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        req, reply = send(ctx, "orchestrator", "status", {}, task_id=task_id, direct=True)
        if reply.get("type") == "status_ok":
            last = reply["payload"]
            if last.get("status") in until:
                return last
        time.sleep(0.05)
    raise CheckFailed(f"task {task_id} did not reach {'/'.join(until)} within {timeout:.0f} s",
                      expected=list(until), received=last)


def first_difference(expected, got, path="$") -> str | None:
    """Where two JSON values first differ (key order ignored, array order kept)."""
    if isinstance(expected, dict) and isinstance(got, dict):
        for k in sorted(set(expected) | set(got)):
            if k not in got:
                return f"{path}.{k}: missing"
            if k not in expected:
                return f"{path}.{k}: unexpected member"
            d = first_difference(expected[k], got[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(expected, list) and isinstance(got, list):
        for i, (x, y) in enumerate(zip(expected, got)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        if len(expected) != len(got):
            return f"{path}: expected {len(expected)} items, got {len(got)}"
        return None
    if type(expected) is not type(got) or expected != got:
        return f"{path}: expected {json.dumps(expected)[:200]}, got {json.dumps(got, default=str)[:200]}"
    return None


def log_records(ctx, role: str, start: int = 0) -> list[dict]:
    """The service's stderr lines from index `start` that parse as JSON objects."""
    out = []
    for line in ctx.deployment.logs(role, "stderr")[start:]:
        try:
            obj = loads(line, "log line", max_bytes=LOG_LINE_MAX)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def log_count(ctx, role: str) -> int:
    return len(ctx.deployment.logs(role, "stderr"))


def wait_for_logs(ctx, role: str, start: int, pred, want: int = 1, timeout: float = 2.0) -> list[dict]:
    """Log lines arrive through a pipe and a reader thread: poll (bounded) until at least
    `want` JSON lines from index `start` satisfy `pred`; returns those lines."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in log_records(ctx, role, start) if pred(r)]
        if len(found) >= want or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def optional_metric(ctx, role: str, name: str, **labels) -> float | None:
    """A metric used as SECONDARY evidence: its value, or None (with a timeline note) when
    /metrics does not answer 200 or the family `name` is not exposed.

    Why: every SPEC requirement is evidenced by one check. Whether the required metrics
    exist is observability.metrics_format's question; a check about idempotency, memory or
    authentication judges its own subject from primary evidence (proxy-recorded frames,
    memory files, replies) and reads a counter only when it is there, so one missing
    /metrics endpoint costs the metrics check and nothing else."""
    try:
        status, _headers, body = http(ctx, role, "/metrics")
    except Exception as exc:  # noqa: BLE001 - an unreadable side port: fall back, noted
        ctx.note("note", f"{role} /metrics unreadable ({type(exc).__name__}); {name} not used as evidence")
        return None
    if status != 200:
        ctx.note("note", f"{role} GET /metrics answered {status}; {name} not used as evidence "
                         "(the metrics check judges the endpoint)")
        return None
    families, _problems = promtext.parse(text_of(body, f"{role} /metrics"))
    if promtext._family_of(name, families) not in families and \
            not any(s == name for fam in families.values() for s, _lab, _v in fam.samples):
        ctx.note("note", f"{role} does not expose {name}; not used as evidence "
                         "(the metrics check judges required metrics)")
        return None
    return promtext.value(families, name, **labels)


def metric_delta(before: float | None, after: float | None) -> float | None:
    """after - before when both were readable, else None."""
    if before is None or after is None:
        return None
    return after - before


def work_frames(proxy, start: int, task_id: str, *, direction: str = "upstream") -> list[dict]:
    """Frames about `task_id` recorded by an agent proxy since event index `start`, other
    than hello: work requests (upstream) or their replies (downstream)."""
    out = []
    for e in proxy.events[start:]:
        if e.kind == "frame" and e.direction == direction and isinstance(e.frame, dict) \
                and e.frame.get("task_id") == task_id and e.frame.get("type") not in ("hello", "hello_ok"):
            out.append(e.frame)
    return out


def executed_again(ctx, starts: dict, task_id: str) -> dict:
    """Per agent, the replies to work for `task_id` since `starts` (proxy event indexes)
    that were NOT replays: each one is an execution (SPEC §10.4, `replay` on _ok replies).
    An error reply is no execution; an agent that answered nothing executed nothing seen."""
    out = {}
    for role, start in starts.items():
        fresh = [f for f in work_frames(ctx.topo.agent_proxy[role], start, task_id, direction="downstream")
                 if str(f.get("type", "")).endswith("_ok") and f.get("replay") is not True]
        if fresh:
            out[role] = [{"type": f.get("type"), "replay": f.get("replay")} for f in fresh]
    return out
