"""Stage 3, bad-tokens: authentication, secrets, hostile frames.

Why "and does nothing": an unauthorized reply is only half the contract; the other half
(SPEC §7 step 2) is that nothing was executed, stored or echoed. So each refused work
request is followed by looking for its record on disk (and, for the orchestrator, its
status); the agents' execution counter is read too when it is exposed, as secondary
evidence (a missing /metrics is the metrics check's finding, not this one's).
"""
from __future__ import annotations

import json

from graders import oracle
from graders.faults import hostile
from graders.checks.common import (CODE_TO_NAME, dig, error_problems, expect_error, expect_ok, http,
                                   loads, metric_delta, optional_metric, redact, send)
from graders.decode import CandidateDataError, decode_object
from graders.checks.registry import CheckFailed, check
from graders.client import FRAME_LIMITS, Connection, ConnectionClosed, make_request

ROLES = ("orchestrator", "collector", "analyzer", "reporter")
WORK = {"orchestrator": "submit", "collector": "collect", "analyzer": "analyze", "reporter": "report"}


def _work_payload(ctx, role: str) -> dict:
    task_input = oracle.generate_input(ctx.rng, 5)
    if role == "orchestrator":
        return {"task_type": "triage", "input": task_input}
    collect = oracle.collect({"source": task_input["source"], "records": task_input["records"]})
    if role == "collector":
        return {"source": task_input["source"], "records": task_input["records"]}
    analysis = oracle.analyze({"source": collect["source"], "events": collect["events"]})
    if role == "analyzer":
        return {"source": collect["source"], "events": collect["events"]}
    return {"analysis": analysis, "thresholds": {"error_permille": 50, "p95_latency_ms": 1000}}


def _bad_token_frames(ctx, role: str, tid: str, payload: dict):
    good = make_request(WORK[role], payload, token=ctx.token, task_id=tid)
    wrong = "x" * len(ctx.token) if ctx.token[0] != "x" else "y" * len(ctx.token)
    cases = []
    for label, token in (("missing", None), ("wrong", wrong), ("empty", ""),
                         ("long", ctx.token * 3000), ("prefix", ctx.token[:-1]),
                         ("not a string", 12345), ("null", None)):
        frame = dict(good)
        frame.pop("token")
        if label == "null":
            frame["token"] = None
        elif token is not None:
            frame["token"] = token
        cases.append((label, frame))
    misplaced = dict(good)
    misplaced.pop("token")
    misplaced["payload"] = dict(payload, token=ctx.token)
    cases.append(("in the payload instead of the envelope", misplaced))
    return cases


@check(id="security.token_refused", title="every service refuses bad tokens and does nothing",
       items=["security.auth"], weight=3, stage=3, challenge="bad-tokens")
def token_refused(ctx):
    """Missing, wrong, empty, 200 KB long, truncated, non-string, null and misplaced tokens on
    a work request to each service: unauthorized (20) whose message says unauthorized; no
    record appears for the task and no step executes."""
    dep = ctx.deployment
    for role in ROLES:
        tid = ctx.task_id()
        payload = _work_payload(ctx, role)
        executed0 = optional_metric(ctx, role, "faultdrill_steps_executed_total") if role != "orchestrator" else None
        with Connection(dep.endpoint(role).host, dep.endpoint(role).port, timeout=5.0) as conn:
            for label, frame in _bad_token_frames(ctx, role, tid, payload):
                try:
                    reply = conn.request(frame, timeout=5.0)
                except ConnectionClosed as exc:
                    raise CheckFailed(f"{role} closed the connection on a {label} token instead of "
                                      "answering unauthorized", sent=redact(frame, ctx.token),
                                      expected="error 20 unauthorized", received=str(exc),
                                      hint="Refuse with a reply and keep the connection open.")
                err = expect_error(reply, "unauthorized", sent=frame, token=ctx.token,
                                   what=f"{role}: {label} token",
                                   hint="Authenticate right after framing, before version, schema or type checks.")
                if "unauthorized" not in str(err.get("message", "")).lower():
                    raise CheckFailed(f"{role}: the unauthorized message must contain the word unauthorized",
                                      received=err)
                if reply.get("in_reply_to") != frame["msg_id"]:
                    raise CheckFailed(f"{role}: in_reply_to must echo the readable msg_id even when unauthorized",
                                      expected=frame["msg_id"], received=reply.get("in_reply_to"))
        ctx.note("action", f"{role}: 8 bad-token {WORK[role]} requests refused")
        leftovers = [f for f in dep.memory_files(role) if tid in f]
        if leftovers:
            raise CheckFailed(f"{role} stored something for an unauthenticated request",
                              expected="no file naming the task", received=leftovers,
                              hint="Nothing about an unauthenticated frame may be stored.")
        if role != "orchestrator":
            executed = metric_delta(executed0, optional_metric(ctx, role, "faultdrill_steps_executed_total"))
            if executed:
                raise CheckFailed(f"{role} executed work for an unauthenticated request",
                                  expected=0, received=executed)
        else:
            req, reply = send(ctx, "orchestrator", "status", {}, task_id=tid)
            expect_error(reply, "not_found", sent=req, token=ctx.token,
                         what="status of a task submitted only with bad tokens")


@check(id="security.no_token_leak", title="the token never appears in logs, replies, metrics, dashboard or memory",
       items=["security.secrets"], weight=2, stage=3, challenge="bad-tokens")
def no_token_leak(ctx):
    """After the run so far plus a wrong-token request per service, search every captured
    stderr/stdout line, every memory file, /metrics, the dashboard and /api/tasks for the
    real token and for the wrong token a client sent. (Whether the wrong token is refused
    is security.token_refused's question; this check only looks for the secrets.)"""
    dep = ctx.deployment
    wrong = "WRONGtok-" + "".join(ctx.rng.choice("abcdef0123456789") for _ in range(24))
    for role in ROLES:
        req, reply = send(ctx, role, "hello", {"versions": [1], "role": "orchestrator"}, token=wrong)
        if not isinstance(reply, dict) or reply.get("in_reply_to") != req["msg_id"]:
            raise CheckFailed(f"{role}: the wrong-token probe was not answered as a reply to it, so the "
                              "leak search would prove nothing", sent=redact(req, ctx.token),
                              expected={"in_reply_to": req["msg_id"]}, received=redact(reply, ctx.token),
                              hint="Every request gets one reply whose in_reply_to is its msg_id.")
        if dig(reply, "error", "name") != "unauthorized":
            ctx.note("note", f"{role} did not refuse the wrong token (security.token_refused judges that)")
        if wrong in json.dumps(reply):
            raise CheckFailed(f"{role} echoed the wrong token in its reply", received=reply)
    found = []
    for role in ROLES:
        for stream in ("stderr", "stdout"):
            for line in dep.logs(role, stream):
                for secret, name in ((ctx.token, "the token"), (wrong, "a wrong token a client sent")):
                    if secret in line:
                        found.append(f"{role} {stream}: {name}: {line.replace(ctx.token, '<TOKEN>')[:300]}")
        for rel in dep.memory_files(role):
            try:
                data = dep.read_memory(role, rel)
            except OSError:
                continue
            for secret, name in ((ctx.token, "the token"), (wrong, "a wrong token")):
                if secret.encode() in data:
                    found.append(f"{role} memory file {rel}: {name}")
        paths = ["/metrics"] + (["/", "/api/tasks", "/api/alerts"] if role == "orchestrator" else [])
        for path in paths:
            status, _h, body = http(ctx, role, path)
            for secret, name in ((ctx.token, "the token"), (wrong, "a wrong token")):
                if secret.encode() in body:
                    found.append(f"{role} GET {path}: {name}")
    if found:
        raise CheckFailed("the token leaked", expected="no occurrence anywhere",
                          received=found[:20],
                          hint="Redact secrets in the logger itself; log a token's length, never its value.")


def _depth_frame(depth: int, token: str) -> bytes:
    """An otherwise valid hello whose deepest value sits at `depth` (envelope = 1)."""
    inner: object = 1
    for _ in range(depth - 2):
        inner = [inner]
    req = make_request("hello", {"versions": [1], "role": "orchestrator", "x": inner}, token=token)
    return json.dumps(req, separators=(",", ":")).encode() + b"\n"


@check(id="security.malformed_frames", title="malformed, oversized and deep frames get 12/13; service stays up",
       items=["security.input_validation", "security.resource_hygiene"], weight=2, stage=3,
       challenge="bad-tokens")
def malformed_frames(ctx):
    """On each service: invalid UTF-8, not JSON, a JSON array, NaN, depth 33 -> malformed_frame
    (12) with in_reply_to null and the connection still usable; empty lines ignored; \\r\\n
    accepted; a line one byte over the service's limit (SPEC §4: 1 MiB on the orchestrator,
    16 MiB on agents) -> frame_too_large (13) naming that limit, then close; the service
    still answers."""
    dep = ctx.deployment
    hello = make_request("hello", {"versions": [1], "role": "orchestrator"}, token=ctx.token)
    hello_line = json.dumps(hello, separators=(",", ":")).encode()
    cases = [("invalid UTF-8", b"\xff\xfe{{{\n"), ("not JSON", b"hello there\n"),
             ("a JSON array", b"[1,2,3]\n"), ("NaN", b'{"v":1,"x":NaN}\n'),
             ("nesting depth 33", _depth_frame(33, ctx.token))]
    for role in ROLES:
        ep = dep.endpoint(role)
        with Connection(ep.host, ep.port, timeout=5.0) as conn:
            for label, raw in cases:
                conn.send_raw(raw)
                reply = conn.recv(timeout=5.0)
                probs = error_problems(reply, "malformed_frame")
                if probs or reply.get("in_reply_to") is not None:
                    raise CheckFailed(f"{role}: {label} must get malformed_frame (12) with in_reply_to null"
                                      + (": " + "; ".join(probs) if probs else ""),
                                      sent=raw[:200], expected="error 12 malformed_frame",
                                      received=redact(reply, ctx.token))
            conn.send_raw(_depth_frame(32, ctx.token))
            reply = conn.recv(timeout=5.0)
            if reply.get("type") == "error" and dig(reply, "error", "code") == 12:
                raise CheckFailed(f"{role}: depth 32 is allowed (the envelope is depth 1)",
                                  expected="not malformed_frame", received=reply)
            conn.send_raw(b"\n\r\n" + hello_line + b"\r\n")
            reply = conn.recv(timeout=5.0)
            expect_ok(reply, "hello", sent=hello, token=ctx.token,
                      what=f"{role}: after malformed frames, empty lines and \\r\\n, hello on the same connection",
                      hint="After malformed_frame the connection stays open; empty lines are ignored.")
        limit = FRAME_LIMITS[role]
        with Connection(ep.host, ep.port, timeout=10.0) as conn:
            chunk = b"a" * 65536
            try:
                for _ in range(limit // len(chunk)):
                    conn.send_raw(chunk)
                conn.send_raw(b"a")
                reply = conn.recv(timeout=10.0)
            except ConnectionClosed as exc:
                raise CheckFailed(f"{role}: a line over its {limit}-byte limit must be answered "
                                  "frame_too_large before closing",
                                  sent=f"{limit + 1} bytes without a newline", expected="error 13 frame_too_large",
                                  received=str(exc))
            probs = error_problems(reply, "frame_too_large")
            if probs or reply["error"]["details"].get("limit_bytes") != limit:
                raise CheckFailed(f"{role}: an oversized line must get frame_too_large with limit_bytes {limit}",
                                  sent=f"{limit + 1} bytes without a newline", expected=f"error 13, limit_bytes {limit}",
                                  received=reply)
            if not conn.wait_closed(5.0):
                raise CheckFailed(f"{role}: after frame_too_large the connection must be closed",
                                  expected="EOF", received="connection still open after 5 s")
        req, reply = send(ctx, role, "hello", {"versions": [1], "role": "orchestrator"})
        expect_ok(reply, "hello", sent=req, token=ctx.token, what=f"{role} after hostile frames")
    ctx.note("action", "malformed, deep and oversized frames sent to all four services")


SERVED = {"orchestrator": {"hello", "submit", "status", "list"}, "collector": {"hello", "collect"},
          "analyzer": {"hello", "analyze"}, "reporter": {"hello", "report"}}
KNOWN_TYPES = {"hello", "submit", "status", "list", "collect", "analyze", "report"}
TASK_TYPES = {"submit", "status", "collect", "analyze", "report"}
# After the envelope (§7 steps 6-9) a served request may still be refused for its payload,
# back-pressure, idempotency or its outcome; those are other checks' subjects.
LATER_ERRORS = {"schema_violation", "busy", "idempotency_conflict", "in_progress", "not_found",
                "upstream_failed", "timeout", "unsupported_version"}


class _Malformed(Exception):
    pass


def _check_value(obj) -> None:
    """Raise _Malformed for a lone surrogate anywhere or nesting deeper than 32 (the
    envelope is depth 1). Iterative: a hostile frame may nest thousands of levels."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
                raise _Malformed("lone surrogate")
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth > 32:
            raise _Malformed("too deep")
        items = list(value.items()) if isinstance(value, dict) else [(None, v) for v in value]
        for k, v in items:
            if k is not None:
                stack.append((k, depth))
            stack.append((v, depth + 1))


def _decode_line(raw: bytes):
    """The frame as SPEC §4 reads it: a dict, or _Malformed (not UTF-8, not JSON, not an
    object, NaN/Infinity, a number too large for a double, a lone surrogate, too deep)."""
    line = raw[:-1] if raw.endswith(b"\r") else raw

    try:
        # The one bounded decoder (graders/decode.py) reads the frame by SPEC §4's rules.
        obj = decode_object(line, what="frame", max_bytes=16 * 1024 * 1024, max_depth=32)
    except CandidateDataError as exc:
        raise _Malformed(exc.reason) from None
    _check_value(obj)
    return obj


def _is_int(x) -> bool:
    return (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())


def _envelope_problem(frame: dict) -> bool:
    """True when SPEC §7 step 4 (envelope fields) must refuse the frame."""
    rtype = frame.get("type")
    if not isinstance(rtype, str):
        return True
    msg_id = frame.get("msg_id")
    if not isinstance(msg_id, str) or not 1 <= len(msg_id) <= 128:
        return True
    if set(frame) - hostile.ENVELOPE_FIELDS:
        return True
    if "task_id" in frame and (not isinstance(frame["task_id"], str) or not hostile.TASK_ID_RE.match(frame["task_id"])):
        return True
    if rtype in TASK_TYPES and "task_id" not in frame:
        return True
    if "traceparent" in frame and (not isinstance(frame["traceparent"], str)
                                   or not hostile.TRACEPARENT_RE.match(frame["traceparent"])):
        return True
    return not isinstance(frame.get("payload"), dict)


def judge_reply(role: str, raw: bytes, reply, token: str) -> str | None:
    """What is wrong with `reply` as the answer of a correct `role` to the line `raw`
    (without its newline), or None. Decided from the bytes alone, in SPEC §7 order:

    - not a JSON object (§4) -> malformed_frame (12), in_reply_to null;
    - an object without the real token -> an error, never an `_ok` (which error is
      security.token_refused's subject: one requirement, one check);
    - authenticated: `v` not an integer -> schema_violation, another integer ->
      unsupported_version; a bad envelope -> schema_violation; a type not served here ->
      not_supported (an unknown type without its task_id may also be schema_violation);
      otherwise `<type>_ok` or an error a later step may give.
    Every error must be well formed (SPEC §6) and a readable msg_id (a string of 1-128
    characters) must come back as in_reply_to."""
    if not isinstance(reply, dict):
        return "the reply is not a JSON object"
    rtype = reply.get("type")
    err_name = None
    if rtype == "error":
        code = dig(reply, "error", "code")
        err_name = CODE_TO_NAME.get(code) if type(code) is int else None
        if err_name is None:
            return f"error code {code!r} is not in the SPEC §6 table"
        probs = error_problems(reply, err_name)
        if probs:
            return "; ".join(probs)
    elif not isinstance(rtype, str) or not rtype.endswith("_ok"):
        return f"reply type {rtype!r} is neither error nor <type>_ok"
    try:
        frame = _decode_line(raw)
    except _Malformed:
        if err_name != "malformed_frame":
            return f"a line that is not a JSON object (or too deep) must get malformed_frame (12), got {err_name or rtype}"
        if reply.get("in_reply_to") is not None:
            return "malformed_frame must carry in_reply_to null"
        return None
    msg_id = frame.get("msg_id")
    # A msg_id holding the token is never echoed (SPEC §5: replies never contain the token).
    readable = isinstance(msg_id, str) and 1 <= len(msg_id) <= 128 and not (token and token in msg_id)
    if readable and reply.get("in_reply_to") != msg_id:
        return f"in_reply_to must echo the readable msg_id {msg_id!r}, got {reply.get('in_reply_to')!r}"
    if not readable and reply.get("in_reply_to") not in (None, msg_id):
        return "in_reply_to must be null (or the msg_id) when the msg_id cannot be read"
    if err_name in ("malformed_frame", "frame_too_large"):
        return f"a JSON object under 1 MiB and depth 32 is not {err_name}"
    authenticated = isinstance(frame.get("token"), str) and frame["token"] == token
    if not authenticated:
        return None if err_name else f"a frame without the real token got {rtype}"
    v = frame.get("v")
    if not _is_int(v):
        allowed = {"schema_violation"}
    elif v != 1:
        allowed = {"unsupported_version"}
    elif _envelope_problem(frame):
        allowed = {"schema_violation"}
    elif frame["type"] not in SERVED[role]:
        allowed = {"not_supported"} | ({"schema_violation"} if frame["type"] not in KNOWN_TYPES else set())
    else:
        if rtype == frame["type"] + "_ok":
            return None
        allowed = LATER_ERRORS
    if err_name in allowed:
        return None
    return f"expected {' or '.join(sorted(allowed))}" + (
        f" or {frame['type']}_ok" if allowed is LATER_ERRORS else "") + f", got {err_name or rtype}"


def _boundary_frames(ctx) -> list[tuple[str, bytes]]:
    """Lines at the boundaries, in the order they are sent (one connection per service):
    authenticated hellos with an unsupported envelope version (§7 step 3, hello included),
    a msg_id one character past its 128 and one exactly at it (§5), an unknown envelope
    member (§5: the envelope is closed); and a malformed line followed by a hello on the
    same connection (§4: after malformed_frame the next frame is read)."""
    def hello(**over):
        frame = {"v": 1, "type": "hello", "msg_id": ctx.msg_id(), "token": ctx.token,
                 "payload": {"versions": [1], "role": "orchestrator"}}
        frame.update(over)
        return frame

    def sized(n: int) -> str:
        base = ctx.msg_id()
        return (base * (n // len(base) + 1))[:n]

    frames = [("collector", hello(v=2)), ("orchestrator", hello(v=2)),
              ("analyzer", hello(msg_id=sized(129))), ("orchestrator", hello(msg_id=sized(129))),
              ("reporter", hello(msg_id=sized(128))),
              ("collector", hello(extra={"drift": True})), ("orchestrator", hello(extra=1))]
    lines = [(role, json.dumps(frame).encode()) for role, frame in frames]
    for role in ("analyzer", "orchestrator"):
        lines += [(role, b'{"v": 1, "type": "hello"'), (role, json.dumps(hello()).encode())]
    return lines


@check(id="security.hostile_fuzz", title="generated hostile frames get the right structured replies; services stay up",
       items=["security.input_validation", "security.resource_hygiene"], weight=2, stage=3,
       challenge="bad-tokens", visibility="hidden", timeout=40.0)
def hostile_fuzz(ctx):
    """Hypothesis generates frames (raw bytes, invalid UTF-8, deep nesting, non-objects,
    authenticated envelopes with one generated wrong field, random near-valid envelopes;
    seeded from the grade seed, no shrinking). Every frame must get exactly one reply, the
    one SPEC §7 prescribes for it (see judge_reply: malformed_frame for non-objects,
    never an _ok without the token, the right envelope error, `<type>_ok` only as the
    answer to that type, in_reply_to echoing a readable msg_id). Afterwards every service
    must complete a real round trip: hello answered hello_ok for that very msg_id with
    version 1 and its own role, and /livez 200."""
    from hypothesis import HealthCheck, Phase, example, given, seed, settings
    from hypothesis import strategies as st

    dep = ctx.deployment
    conns: dict[str, Connection] = {}
    failures: list = []
    counts = {"frames": 0}

    def conn_for(role):
        c = conns.get(role)
        if c is None:
            ep = dep.endpoint(role)
            c = conns[role] = Connection(ep.host, ep.port, timeout=3.0)
        return c

    json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                          st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
    json_val = st.recursive(json_leaf, lambda ch: st.one_of(st.lists(ch, max_size=4),
                            st.dictionaries(st.text(max_size=8), ch, max_size=4)), max_leaves=12)
    types = st.sampled_from(["hello", "submit", "status", "list", "collect", "analyze", "report",
                             "frobnicate", "", "HELLO"])
    envelope = st.fixed_dictionaries(
        {"v": st.one_of(st.just(1), json_leaf), "type": st.one_of(types, json_leaf),
         "msg_id": st.one_of(st.text(min_size=1, max_size=10), json_leaf),
         "token": st.one_of(st.just(ctx.token), st.just(ctx.token), json_leaf),
         "payload": st.one_of(json_val, st.just({}))},
        optional={"task_id": st.one_of(st.text(max_size=70), json_leaf),
                  "traceparent": st.one_of(st.text(max_size=60), json_leaf),
                  "extra": json_val})
    line = st.one_of(
        st.binary(min_size=1, max_size=200).map(lambda b: b.replace(b"\n", b" ")),
        json_val.map(lambda v: json.dumps(v).encode()),
        envelope.map(lambda e: json.dumps(e).encode()),
        hostile.envelope_wrong_types(ctx.token).map(lambda f: f.data[:-1]),
        hostile.invalid_utf8(ctx.token).map(lambda f: f.data[:-1]),
        hostile.deep_nesting(ctx.token).map(lambda f: f.data[:-1]),
        hostile.not_an_object().map(lambda f: f.data[:-1]))
    role_st = st.sampled_from(ROLES)

    @seed(ctx.seed)
    @settings(max_examples=150, deadline=None, database=None, derandomize=False,
              phases=(Phase.explicit, Phase.generate),
              suppress_health_check=list(HealthCheck))
    @given(role=role_st, raw=line)
    def one(role, raw):
        if failures or raw.replace(b"\r", b"") == b"":
            return
        conn = conn_for(role)
        counts["frames"] += 1
        try:
            conn.send_raw(raw + b"\n")
            reply = conn.recv(timeout=3.0)
        except Exception as exc:  # noqa: BLE001 - every way of not replying is a failure here
            failures.append((role, raw, f"{type(exc).__name__}: {exc}", "no reply"))
            conns.pop(role, None)
            return
        problem = judge_reply(role, raw, reply, ctx.token)
        if problem:
            failures.append((role, raw, reply, problem))
        elif dig(reply, "error", "name") == "frame_too_large":
            conns.pop(role, None)

    # The boundaries of §5 and §7 on both sides, on every grade (explicit examples run
    # before the generated ones): what the generator reaches only on some seeds must not
    # decide the verdict (a check that gives different verdicts on one program is a grader
    # bug).
    # Hypothesis runs explicit examples last-applied first: apply them reversed so they
    # run in the listed order (a malformed line, then a hello on that same connection).
    for role, raw in reversed(_boundary_frames(ctx)):
        one = example(role=role, raw=raw)(one)
    try:
        one()
    finally:
        for c in conns.values():
            c.close()
    ctx.note("action", f"{counts['frames']} frames: the §5/§7 boundaries, then generated ones "
                       f"(hypothesis seed {ctx.seed})")
    if failures:
        role, raw, got, problem = failures[0]
        raise CheckFailed(f"{role}: a generated frame did not get the reply SPEC §7 prescribes: {problem} "
                          f"(hypothesis seed {ctx.seed})", sent=redact(raw[:300].decode("utf-8", "replace"), ctx.token),
                          expected="malformed_frame for non-objects; an error without the token; the envelope "
                                   "error of §7 steps 3-5; <type>_ok only for that type; in_reply_to = msg_id",
                          received=redact(got, ctx.token) if isinstance(got, dict) else got,
                          hint="Check the order of SPEC §7 and that every type of every field is validated.")
    for role in ROLES:
        hello = make_request("hello", {"versions": [1], "role": "orchestrator"}, token=ctx.token,
                             msg_id=ctx.msg_id())
        with Connection(dep.endpoint(role).host, dep.endpoint(role).port, timeout=5.0) as c:
            reply = c.request(hello, timeout=5.0)
        payload = expect_ok(reply, "hello", sent=hello, token=ctx.token, what=f"{role} after fuzzing")
        if reply.get("in_reply_to") != hello["msg_id"] or payload.get("version") != 1 or payload.get("role") != role:
            raise CheckFailed(f"{role} after fuzzing: hello must be answered for this request",
                              sent=redact(hello, ctx.token),
                              expected={"in_reply_to": hello["msg_id"], "payload": {"version": 1, "role": role}},
                              received=redact(reply, ctx.token))
        status, _h, body = http(ctx, role, "/livez")
        try:
            live = loads(body)
        except ValueError:
            live = body[:100]
        if status != 200 or live != {"status": "ok"}:
            raise CheckFailed(f"{role}: /livez after fuzzing", expected=(200, {"status": "ok"}), received=(status, live))
