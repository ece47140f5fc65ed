"""Contract rules that no other check observed (docs/RULE_COVERAGE.md lists them): the
valid range of every SPEC §2 variable, the exact frame limits of §4, the largest valid
task on every route, the token never echoed in a reply (§5), `hello` in a v2 envelope
(§7 step 3) and JSON equality of numbers (§8).

Why boundaries on both sides: a rule "1–1024" is two rules ("1024 is valid", "1025 is
not"), and an implementation can get either wrong; so each limit is exercised at the
limit (must be accepted) and one past it (must be refused).
"""
from __future__ import annotations

import json
import time

from graders import oracle
from graders.checks.common import (dig, error_problems, expect_error, expect_ok, first_difference,
                                   redact, send, submit)
from graders.checks.registry import CheckFailed, check
from graders.client import FRAME_LIMITS, Connection, ConnectionClosed, make_request
from graders.drivers.base import StartError

ROLES = ("orchestrator", "collector", "analyzer", "reporter")
DAY_MS = 86_400_000
#: SPEC §2 integer variables: (name, lowest valid, highest valid). Ports are set by the
#: grader (they must stay where the proxies point), so only their upper bound is tried.
INT_RANGES = (
    ("FD_MEMORY_RETENTION", 1, 10_000_000),
    ("FD_ATTEMPT_TIMEOUT_MS", 1, DAY_MS),
    ("FD_TASK_DEADLINE_MS", 1, DAY_MS),
    ("FD_IDLE_TIMEOUT_MS", 1, DAY_MS),
    ("FD_RETRY_BASE_MS", 0, DAY_MS),
    ("FD_RETRY_CAP_MS", 0, DAY_MS),
    ("FD_SHUTDOWN_GRACE_MS", 0, DAY_MS),
    ("FD_RETRY_MAX_ATTEMPTS", 1, 100),
    ("FD_QUEUE_SIZE", 0, 1_000_000),
    ("FD_WORKERS", 1, 1024),
    ("FD_MAX_CONNECTIONS", 1, 100_000),
)
#: The role whose restarts the configuration check uses: every variable is validated in
#: every role (SPEC §2), and an agent restarts fastest.
CONFIG_ROLE = "reporter"
EXIT_WAIT_S = 10.0


def _invalid_cases(ctx) -> list[tuple[str, dict, str]]:
    """(what, env, the variable the one-line message must name)."""
    cases = []
    for name, lo, hi in INT_RANGES:
        cases.append((f"{name}={hi + 1} (one past {hi})", {name: str(hi + 1)}, name))
        below = str(lo - 1) if lo > 0 else "-1"
        cases.append((f"{name}={below} (below {lo})", {name: below}, name))
    ep = ctx.deployment.endpoint(CONFIG_ROLE)
    cases += [
        ("FD_HTTP_PORT=65536", {"FD_HTTP_PORT": "65536"}, "FD_HTTP_PORT"),
        ("FD_HTTP_PORT equal to FD_LISTEN_PORT", {"FD_HTTP_PORT": str(ep.port)}, "FD_HTTP_PORT"),
        ("FD_WORKERS=abc", {"FD_WORKERS": "abc"}, "FD_WORKERS"),
        ("FD_WORKERS=1e2 (not decimal digits)", {"FD_WORKERS": "1e2"}, "FD_WORKERS"),
        ("FD_LOG_LEVEL=verbose", {"FD_LOG_LEVEL": "verbose"}, "FD_LOG_LEVEL"),
        ("FD_TLS_CLIENT_AUTH=2", {"FD_TLS_CLIENT_AUTH": "2"}, "FD_TLS_CLIENT_AUTH"),
        ("FD_COLLECTOR_ADDR port 65536", {"FD_COLLECTOR_ADDR": "127.0.0.1:65536"}, "FD_COLLECTOR_ADDR"),
        ("FD_ANALYZER_ADDR port 0", {"FD_ANALYZER_ADDR": "127.0.0.1:0"}, "FD_ANALYZER_ADDR"),
        ("FD_ROUTES not a prefix", {"FD_ROUTES": '{"triage": ["collect", "report"]}'}, "FD_ROUTES"),
        ("FD_TOKEN unset", {"FD_TOKEN": ""}, "FD_TOKEN"),
        ("FD_TLS_CA naming a missing file", {"FD_TLS_CA": "/nonexistent/faultdrill-ca.pem"}, "FD_TLS_CA"),
        ("FD_REPORTER_ADDR with an invalid host", {"FD_REPORTER_ADDR": "bad_host!:7003"}, "FD_REPORTER_ADDR"),
    ]
    return cases


def _expect_exit_2(ctx, what: str, env: dict, variable: str) -> None:
    dep = ctx.deployment
    before = len(dep.logs(CONFIG_ROLE, "stderr"))
    try:
        dep.start(CONFIG_ROLE, env, wait=False)
    except StartError as exc:
        raise CheckFailed(f"{CONFIG_ROLE} could not be executed for {what}", received=str(exc)) from None
    rc = dep.wait(CONFIG_ROLE, EXIT_WAIT_S)
    if rc is None:
        dep.kill(CONFIG_ROLE)
        dep.wait(CONFIG_ROLE, 5.0)
        raise CheckFailed(f"{CONFIG_ROLE} started with the invalid value {what} (still running after "
                          f"{EXIT_WAIT_S:.0f} s)", sent=env, expected="exit status 2 at start-up",
                          received="the service kept running",
                          hint="SPEC §2 lists the valid values of every variable; anything else "
                               "is invalid, in every role, even where the role does not use it.")
    lines: list[str] = []
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:   # the output reader may lag behind the exit
        lines = dep.logs(CONFIG_ROLE, "stderr")[before:]
        if any(variable in line for line in lines):
            break
        time.sleep(0.05)
    if rc != 2:
        raise CheckFailed(f"{CONFIG_ROLE} exited with status {rc} for {what}", sent=env,
                          expected="exit status 2", received={"status": rc, "stderr": lines[-5:]})
    if not any(variable in line for line in lines):
        raise CheckFailed(f"{CONFIG_ROLE} exited 2 for {what} but no stderr line names {variable}",
                          sent=env, expected=f"a one-line message naming {variable}",
                          received=lines[-5:] or "(no stderr)")


def _expect_start(ctx, what: str, env: dict) -> None:
    dep = ctx.deployment
    try:
        dep.start(CONFIG_ROLE, env)
    except StartError as exc:
        raise CheckFailed(f"{CONFIG_ROLE} refused to start with valid values ({what})", sent=env,
                          expected="the service starts (every value is at an end of its range)",
                          received={"exit status": exc.exit_code, "last output": exc.output_tail[-5:]},
                          hint="Ranges in SPEC §2 include both ends; spaces and tabs around a "
                               "value are ignored.") from None
    dep.stop(CONFIG_ROLE)


@check(id="contract.config_ranges", title="every SPEC §2 variable: both ends of its range start, one past exits 2",
       items=["orchestration.configuration"], weight=1, stage=1, challenge="pipeline-basics",
       timeout=90.0)
def config_ranges(ctx):
    """The reporter is restarted with every integer variable at the low end of its range
    (one start), then at the high end (another): it must start both times (values padded
    with spaces and tabs, which are ignored). Then one start per invalid value: one past
    the high end and one below the low end of every integer variable, a port of 65536,
    an HTTP port equal to the listen port, non-digits, an unknown log level,
    FD_TLS_CLIENT_AUTH=2, agent addresses with ports 0 and 65536 or an invalid host, a
    non-prefix route, a TLS file that does not exist and no token: each must exit with
    status 2 and a stderr line naming the variable."""
    dep = ctx.deployment
    low = {name: f" {lo}\t" for name, lo, _hi in INT_RANGES}
    high = {name: str(hi) for name, _lo, hi in INT_RANGES}
    dep.stop(CONFIG_ROLE)
    try:
        _expect_start(ctx, "every integer at its lowest valid value", low)
        _expect_start(ctx, "every integer at its highest valid value", high)
        ctx.note("action", "reporter started with every integer at each end of its range")
        # Variables the driver sets itself (the Docker driver owns the listen ports) never
        # reach the service with the check's value: those cases are not observable there.
        owned = set(getattr(dep, "driver_owned_env", ()) or ())
        cases = [c for c in _invalid_cases(ctx) if not owned & set(c[1])]
        if owned:
            ctx.note("note", f"not varied under this driver (it sets them itself): {', '.join(sorted(owned))}")
        for what, env, variable in cases:
            _expect_exit_2(ctx, what, env, variable)
        ctx.note("reaction", f"{len(cases)} invalid values: exit 2 naming the variable each time")
    finally:
        if dep.running(CONFIG_ROLE):
            dep.stop(CONFIG_ROLE)
        dep.start(CONFIG_ROLE)
        ctx.topo.wait_ready(5.0)
        ctx.note("heal", "reporter back with the shared settings")


@check(id="contract.largest_task", title="the largest valid task succeeds on every route",
       items=["orchestration.pipeline"], weight=1, stage=1, challenge="pipeline-basics",
       timeout=120.0)
def largest_task(ctx):
    """A submit frame of exactly 1 MiB (the orchestrator's limit) holding 10,000 records,
    each an event of its own service with non-ASCII text, on each route (triage, parse,
    stats): the step payloads and results are several MB (SPEC §4: up to 16 MiB between
    services and in replies); the result must equal the oracle's. This is a question of
    sizes, not speed: the orchestrator is restarted for it with an attempt timeout of 20 s
    and a task deadline of 60 s."""
    dep = ctx.deployment
    dep.stop("orchestrator")
    dep.start("orchestrator", LARGE_TASK_ENV)
    ctx.topo.wait_ready(5.0)
    ctx.note("action", "orchestrator restarted with FD_ATTEMPT_TIMEOUT_MS=20000, FD_TASK_DEADLINE_MS=60000")
    try:
        _largest_tasks(ctx)
    finally:
        dep.stop("orchestrator")
        dep.start("orchestrator")
        ctx.topo.wait_ready(5.0)
        ctx.note("heal", "orchestrator back with the shared settings")


LARGE_TASK_ENV = {"FD_ATTEMPT_TIMEOUT_MS": "20000", "FD_TASK_DEADLINE_MS": "60000"}


def _largest_tasks(ctx) -> None:
    limit = FRAME_LIMITS["orchestrator"]
    for task_type in ("parse", "stats", "triage"):
        tid = ctx.task_id("largest")
        empty = {"source": "x", "records": [], "thresholds": {}}
        probe = make_request("submit", {"task_type": task_type, "input": empty}, token=ctx.token,
                             task_id=tid)
        frame_overhead = len(json.dumps(probe, ensure_ascii=False, separators=(",", ":")).encode())
        inner = len(json.dumps(empty, separators=(",", ":")).encode())
        task_input = oracle.largest_input(ctx.rng, limit - (frame_overhead - inner))
        req = make_request("submit", {"task_type": task_type, "input": task_input}, token=ctx.token,
                           task_id=tid, msg_id=probe["msg_id"])
        size = len(json.dumps(req, ensure_ascii=False, separators=(",", ":")).encode())
        if size != limit:
            raise RuntimeError(f"grader bug: the largest submit is {size} bytes, not {limit}")
        with ctx.topo.connect(timeout=70.0) as conn:
            reply = conn.request(req, timeout=70.0)
        summary = {"task_type": task_type, "task_id": tid, "records": len(task_input["records"]),
                   "frame_bytes": size}
        payload = expect_ok(reply, "submit", sent=summary, token=ctx.token,
                            what=f"the largest valid {task_type} task (a 1 MiB submit of 10,000 records)",
                            hint="SPEC §4: step payloads and replies can exceed 1 MiB; agents accept "
                                 "16 MiB frames and every reader of replies accepts 16 MiB.")
        expected = oracle.expected_result(task_type, task_input)
        diff = first_difference(expected, payload.get("result"))
        if diff:
            raise CheckFailed(f"the largest {task_type} task's result differs from the oracle at {diff}",
                              sent=summary, expected="the oracle's result", received=diff)
        ctx.note("reaction", f"{task_type}: 1 MiB submit, result of "
                             f"{len(json.dumps(expected).encode()) // 1024} KiB equal to the oracle")


def _padded_hello(token: str, size: int, msg_id: str) -> bytes:
    """A valid hello frame of exactly `size` bytes (JSON whitespace before the last brace)."""
    body = json.dumps(make_request("hello", {"versions": [1], "role": "orchestrator"}, token=token,
                                   msg_id=msg_id), separators=(",", ":")).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


@check(id="contract.frame_limits", title="a frame of exactly the limit (with \\r\\n) is read; one byte more is 13",
       items=["security.input_validation"], weight=1, stage=3, challenge="bad-tokens", timeout=60.0)
def frame_limits(ctx):
    """On each service, its SPEC §4 limit L (1 MiB on the orchestrator, 16 MiB on agents):
    a valid hello of exactly L bytes ended by \\r\\n (the \\r does not count) gets hello_ok;
    a complete hello of L + 1 bytes ended by \\n gets frame_too_large (13) with
    limit_bytes L, then the connection is closed."""
    dep = ctx.deployment
    for role in ROLES:
        limit = FRAME_LIMITS[role]
        ep = dep.endpoint(role)
        with Connection(ep.host, ep.port, timeout=20.0) as conn:
            mid = ctx.msg_id()
            conn.send_raw(_padded_hello(ctx.token, limit, mid) + b"\r\n")
            reply = conn.recv(timeout=20.0)
            if dig(reply, "type") != "hello_ok" or reply.get("in_reply_to") != mid:
                raise CheckFailed(f"{role}: a hello of exactly {limit} bytes followed by \\r\\n must be read",
                                  sent=f"a valid hello padded to {limit} bytes + \\r\\n",
                                  expected="hello_ok echoing its msg_id", received=redact(reply, ctx.token),
                                  hint="SPEC §4: the limit counts the frame only; neither the \\n nor "
                                       "a \\r just before it counts.")
        with Connection(ep.host, ep.port, timeout=20.0) as conn:
            conn.send_raw(_padded_hello(ctx.token, limit + 1, ctx.msg_id()) + b"\n")
            try:
                reply = conn.recv(timeout=20.0)
            except ConnectionClosed:
                reply = {"type": "(connection closed without a reply)"}
            probs = error_problems(reply, "frame_too_large")
            if probs or dig(reply, "error", "details", "limit_bytes") != limit:
                raise CheckFailed(f"{role}: a complete frame of {limit + 1} bytes must get frame_too_large "
                                  f"with limit_bytes {limit}", sent=f"a hello padded to {limit + 1} bytes + \\n",
                                  expected=f"error 13, limit_bytes {limit}", received=redact(reply, ctx.token))
            if not conn.wait_closed(5.0):
                raise CheckFailed(f"{role}: after frame_too_large the connection must be closed",
                                  expected="EOF", received="connection still open after 5 s")
    ctx.note("action", "frames of exactly the limit (+\\r\\n) and one byte over sent to all four services")


def _no_token(ctx, what: str, reply: dict, sent: dict) -> None:
    if ctx.token in json.dumps(reply, ensure_ascii=False):
        raise CheckFailed(f"{what}: the reply contains the token", sent=redact(sent, ctx.token),
                          expected="no field of the reply holds the token",
                          received=redact(reply, ctx.token),
                          hint="SPEC §5: a field a reply echoes (msg_id, task_id) is echoed only when it "
                               "does not contain the token.")


@check(id="contract.token_echo", title="a msg_id or task_id holding the token is never echoed",
       items=["security.secrets"], weight=1, stage=3, challenge="bad-tokens")
def token_echo(ctx):
    """To the orchestrator and the collector: a wrong token with a msg_id ending in the token ->
    unauthorized with in_reply_to null; the right token with that msg_id ->
    schema_violation at $.msg_id, in_reply_to null; the right token with task_id
    "<token>-t" -> schema_violation at $.task_id, task_id null, and no record file for it.
    No reply may contain the token (SPEC §5)."""
    dep = ctx.deployment
    work = {"orchestrator": ("status", {}), "collector": ("collect", {"source": "s", "records": []})}
    for role, (rtype, payload) in work.items():
        msg_id = ctx.msg_id()[:12] + ctx.token
        bad = make_request(rtype, payload, token="wrong-" + ctx.token[:4], msg_id=msg_id, task_id=ctx.task_id())
        _sent, reply = _send_frame(ctx, role, bad)
        expect_error(reply, "unauthorized", sent=bad, token=ctx.token, what=f"{role}: wrong token")
        _no_token(ctx, f"{role}: wrong token, msg_id holding the token", reply, bad)
        if reply.get("in_reply_to") is not None:
            raise CheckFailed(f"{role}: in_reply_to must be null when the msg_id contains the token",
                              sent=redact(bad, ctx.token), expected=None, received=redact(reply, ctx.token))
        for field, req in (("msg_id", make_request(rtype, payload, token=ctx.token, msg_id=msg_id,
                                                   task_id=ctx.task_id("echo"))),
                           ("task_id", make_request(rtype, payload, token=ctx.token,
                                                    task_id=ctx.token + "-t"))):
            _sent, reply = _send_frame(ctx, role, req)
            _no_token(ctx, f"{role}: {field} holding the token", reply, req)
            err = expect_error(reply, "schema_violation", sent=req, token=ctx.token,
                               what=f"{role}: an authenticated request whose {field} contains the token")
            if dig(err, "details", "path") != f"$.{field}":
                raise CheckFailed(f"{role}: the schema_violation must name $.{field}",
                                  sent=redact(req, ctx.token), expected=f"details.path $.{field}",
                                  received=redact(reply, ctx.token))
        leaked = [f for f in dep.memory_files(role) if ctx.token in f]
        if leaked:
            raise CheckFailed(f"{role}: a memory file is named after a task_id holding the token",
                              expected="nothing stored", received=[redact(f, ctx.token) for f in leaked])


def _send_frame(ctx, role: str, req: dict) -> tuple[dict, dict]:
    ep = ctx.deployment.endpoint(role)
    with Connection(ep.host, ep.port, timeout=5.0) as conn:
        return req, conn.request(req, timeout=5.0)


@check(id="contract.hello_v2", title="a hello in a v2 envelope is unsupported_version",
       items=["versioning.drift"], weight=1, stage=4, challenge="schema-drift")
def hello_v2(ctx):
    """On each service, hello with "v": 2 (offering versions [1, 2]) gets
    unsupported_version (22) listing 1 in supported: the version check of SPEC §7 step 3
    comes before any type-specific handling, hello included; a hello in a v1 envelope
    then still gets hello_ok."""
    for role in ROLES:
        req = make_request("hello", {"versions": [1, 2], "role": "orchestrator"}, token=ctx.token, v=2)
        _sent, reply = _send_frame(ctx, role, req)
        err = expect_error(reply, "unsupported_version", sent=req, token=ctx.token,
                           what=f"{role}: hello in a \"v\": 2 envelope",
                           hint="SPEC §7 step 3: an unsupported envelope version is refused for every "
                                "type, hello included; the payload's versions list is not read.")
        if 1 not in (dig(err, "details", "supported") or []):
            raise CheckFailed(f"{role}: unsupported_version.details.supported must list 1",
                              sent=redact(req, ctx.token), expected=[1], received=redact(reply, ctx.token))
        req, reply = send(ctx, role, "hello", {"versions": [1], "role": "orchestrator"})
        expect_ok(reply, "hello", sent=req, token=ctx.token, what=f"{role}: hello in a v1 envelope")


BIG = 2 ** 53


@check(id="contract.number_equality", title="payload equality compares numbers as doubles",
       items=["routing.idempotency"], weight=1, stage=2, challenge="idempotency")
def number_equality(ctx):
    """SPEC §8 JSON equality. A task whose records hold the integer 2^53 + 1 is resubmitted
    with 2^53 (the same double): replay:true with the same result; then with 2^53 + 4 (a
    different double): idempotency_conflict (30). The same three collects sent straight to
    the collector: collect_ok, replay:true, idempotency_conflict."""
    base = oracle.generate_input(ctx.rng, 5, bad_fraction=0.0)

    def with_number(n):
        return dict(base, records=list(base["records"]) + [n])

    first, same, other = with_number(BIG + 1), with_number(BIG), with_number(BIG + 4)
    if not oracle.json_equal(first, same) or oracle.json_equal(first, other):
        raise RuntimeError("grader bug: the oracle's JSON equality disagrees with SPEC §8")
    tid = ctx.task_id("numeq")
    req, reply = submit(ctx, tid, first)
    result = expect_ok(reply, "submit", sent=req, token=ctx.token, what="a task holding 2^53 + 1").get("result")
    req, reply = submit(ctx, tid, same)
    p = expect_ok(reply, "submit", sent=req, token=ctx.token,
                  what="the same task resubmitted with 2^53 (equal as a double to 2^53 + 1)",
                  hint="SPEC §8: numbers are equal when they are equal as IEEE 754 doubles.")
    if reply.get("replay") is not True or p.get("result") != result:
        raise CheckFailed("a resubmission equal as JSON (2^53 vs 2^53 + 1) must replay the stored result",
                          sent=redact(req, ctx.token), expected="replay: true, the same result",
                          received={"replay": reply.get("replay")})
    req, reply = submit(ctx, tid, other)
    expect_error(reply, "idempotency_conflict", sent=req, token=ctx.token,
                 what="the same task_id with 2^53 + 4 (a different double)")
    ctid = ctx.task_id("numeq-agent")
    payloads = [{"source": base["source"], "records": r["records"]} for r in (first, same, other)]
    req, reply = send(ctx, "collector", "collect", payloads[0], task_id=ctid)
    expect_ok(reply, "collect", sent=req, token=ctx.token, what="collector: a collect holding 2^53 + 1")
    req, reply = send(ctx, "collector", "collect", payloads[1], task_id=ctid)
    expect_ok(reply, "collect", sent=req, token=ctx.token, what="collector: the same collect with 2^53")
    if reply.get("replay") is not True:
        raise CheckFailed("collector: a collect equal as JSON (2^53 vs 2^53 + 1) must be replayed",
                          sent=redact(req, ctx.token), expected="replay: true",
                          received={"replay": reply.get("replay")})
    req, reply = send(ctx, "collector", "collect", payloads[2], task_id=ctid)
    expect_error(reply, "idempotency_conflict", sent=req, token=ctx.token,
                 what="collector: the same (task_id, collect) with 2^53 + 4")


def _expect_violation(ctx, role: str, req: dict, path: str, what: str) -> None:
    _sent, reply = _send_frame(ctx, role, req)
    shown = {k: (v if not isinstance(v, str) or len(v) < 80 else f"<{len(v)} characters>")
             for k, v in redact(req, ctx.token).items()}
    err = expect_error(reply, "schema_violation", sent=shown, token=ctx.token, what=f"{role}: {what}")
    if dig(err, "details", "path") != path:
        raise CheckFailed(f"{role}: {what}: the schema_violation must name {path}", sent=shown,
                          expected=f"details.path {path}", received=redact(reply, ctx.token))


@check(id="contract.envelope_bounds", title="length and range limits of the envelope and payloads, at and one past",
       items=["security.input_validation"], weight=1, stage=4, challenge="schema-drift")
def envelope_bounds(ctx):
    """Each SPEC limit on its two sides: a msg_id of 128 characters is echoed, 129 is
    schema_violation at $.msg_id; a task_id of 64 characters is read (status: not_found),
    65 is schema_violation at $.task_id; list limit 1000 is served, 1001 and 0 are
    schema_violation at $.payload.limit; thresholds error_permille 1000 and
    p95_latency_ms 10^9 are accepted, 1001 and 10^9 + 1 are schema_violation at their
    path; 10,001 records are schema_violation at $.payload.input.records (submit) and
    $.payload.records (collect); a record of exactly 4096 characters is parsed, 4097 is
    rejected too_long."""
    hello = {"versions": [1], "role": "orchestrator"}
    for role in ("orchestrator", "collector"):
        longest = (ctx.msg_id() * 8)[:128]
        req = make_request("hello", hello, token=ctx.token, msg_id=longest)
        _sent, reply = _send_frame(ctx, role, req)
        if dig(reply, "type") != "hello_ok" or reply.get("in_reply_to") != longest:
            raise CheckFailed(f"{role}: a msg_id of exactly 128 characters is valid and echoed",
                              sent="hello, msg_id of 128 characters", expected="hello_ok echoing it",
                              received=redact(reply, ctx.token))
        _expect_violation(ctx, role, make_request("hello", hello, token=ctx.token,
                                                  msg_id=(ctx.msg_id() * 8)[:129]),
                          "$.msg_id", "a msg_id of 129 characters")
    tid64 = (ctx.task_id() * 4)[:64]
    req, reply = send(ctx, "orchestrator", "status", {}, task_id=tid64)
    expect_error(reply, "not_found", sent=req, token=ctx.token, what="status for a 64-character task_id")
    _expect_violation(ctx, "orchestrator", make_request("status", {}, token=ctx.token, task_id=tid64 + "x"),
                      "$.task_id", "a task_id of 65 characters")
    req, reply = send(ctx, "orchestrator", "list", {"limit": 1000})
    expect_ok(reply, "list", sent=req, token=ctx.token, what="list with limit 1000")
    for bad in (1001, 0):
        _expect_violation(ctx, "orchestrator", make_request("list", {"limit": bad}, token=ctx.token),
                          "$.payload.limit", f"list with limit {bad}")
    small = oracle.generate_input(ctx.rng, 4, bad_fraction=0.0)
    top = dict(small, thresholds={"error_permille": 1000, "p95_latency_ms": 10 ** 9})
    req, reply = submit(ctx, ctx.task_id("bounds"), top)
    p = expect_ok(reply, "submit", sent=req, token=ctx.token,
                  what="thresholds at their maximum (error_permille 1000, p95_latency_ms 10^9)")
    diff = first_difference(oracle.expected_result("triage", top), p.get("result"))
    if diff:
        raise CheckFailed(f"thresholds at their maximum: the result differs from the oracle at {diff}",
                          sent=redact(req, ctx.token), expected="the oracle's result", received=diff)
    for member, value in (("error_permille", 1001), ("p95_latency_ms", 10 ** 9 + 1)):
        bad = dict(small, thresholds={member: value})
        _expect_violation(ctx, "orchestrator",
                          make_request("submit", {"task_type": "triage", "input": bad}, token=ctx.token,
                                       task_id=ctx.task_id("bounds")),
                          f"$.payload.input.thresholds.{member}", f"thresholds.{member} = {value}")
    many = [1] * 10_001
    _expect_violation(ctx, "orchestrator",
                      make_request("submit", {"task_type": "parse",
                                              "input": {"source": "s", "records": many}},
                                   token=ctx.token, task_id=ctx.task_id("bounds")),
                      "$.payload.input.records", "a submit of 10,001 records")
    _expect_violation(ctx, "collector",
                      make_request("collect", {"source": "s", "records": many}, token=ctx.token,
                                   task_id=ctx.task_id("bounds")),
                      "$.payload.records", "a collect of 10,001 records")
    head = "2026-11-29T10:00:00Z info svc 5 "
    records = [head + "m" * (4096 - len(head)), head + "m" * (4097 - len(head))]
    payload = {"source": "s", "records": records}
    req, reply = send(ctx, "collector", "collect", payload, task_id=ctx.task_id("bounds"))
    out = expect_ok(reply, "collect", sent={"records": ["<4096 characters>", "<4097 characters>"]},
                    token=ctx.token, what="records of 4096 and 4097 characters")
    diff = first_difference(oracle.collect(payload), out)
    if diff:
        raise CheckFailed(f"records of 4096 / 4097 characters: the output differs from the oracle at {diff}",
                          expected="4096 characters parsed, 4097 rejected too_long", received=diff)


@check(id="contract.crash_marks_failed", title="a task active at a crash is failed with timeout at restart, then re-runs",
       items=["memory.durability"], weight=1, stage=6, challenge="crash-restart", timeout=40.0)
def crash_marks_failed(ctx):
    """A task is submitted with wait:false while the collector's replies are delayed (0.4 x
    FD_ATTEMPT_TIMEOUT_MS); once its collect reached the collector, the orchestrator is SIGKILLed and restarted.
    SPEC §11.1: a task found queued or running at start-up is marked failed with a timeout
    error, so status says failed (error timeout) and resubmitting the same payload runs it
    again (replay:false) with the oracle's result."""
    from graders.faults.proxy import Latency
    topo, dep = ctx.topo, ctx.deployment
    task_input = oracle.generate_input(ctx.rng, 6)
    tid = ctx.task_id("crash")
    # Slow enough that the task is still running when the kill comes, fast enough that a
    # hello and a collect each fit in one attempt.
    delay_ms = max(50, int(topo.settings.get("FD_ATTEMPT_TIMEOUT_MS", "1000")) * 2 // 5)
    tox = topo.agent_proxy["collector"].add(Latency(latency_ms=delay_ms, stream="downstream"))
    ctx.note("fault", f"collector replies delayed {delay_ms} ms")
    try:
        req, reply = submit(ctx, tid, task_input, wait=False)
        expect_ok(reply, "submit", sent=req, token=ctx.token, what="submit with wait:false")
        seen = topo.agent_proxy["collector"].wait_for(
            lambda evs: any(e.kind == "frame" and e.direction == "upstream" and isinstance(e.frame, dict)
                            and e.frame.get("task_id") == tid for e in evs), 5.0)
        if not seen:
            recent = [(e.kind, e.direction, dig(e.frame, "type"), dig(e.frame, "task_id"))
                      for e in topo.agent_proxy["collector"].events[-6:]]
            raise CheckFailed("the task's collect never reached the collector", expected=f"a collect for {tid}",
                              received=recent)
        dep.kill("orchestrator")
        ctx.note("fault", "orchestrator SIGKILLed while the task runs")
    finally:
        topo.agent_proxy["collector"].remove(tox)
    dep.restart("orchestrator")
    topo.wait_ready(5.0)
    ctx.note("heal", "orchestrator restarted")
    req, reply = send(ctx, "orchestrator", "status", {}, task_id=tid)
    status = expect_ok(reply, "status", sent=req, token=ctx.token, what="status of the task after the crash")
    if status.get("status") != "failed" or dig(status, "error", "name") != "timeout":
        raise CheckFailed("a task that was running at a crash must be failed with a timeout error at restart",
                          sent=redact(req, ctx.token), expected={"status": "failed", "error.name": "timeout"},
                          received={"status": status.get("status"), "error": status.get("error")},
                          hint="SPEC §11.1: on start-up, mark every queued or running task failed (timeout), "
                               "so that a resubmission runs it again.")
    req, reply = submit(ctx, tid, task_input)
    p = expect_ok(reply, "submit", sent=req, token=ctx.token, what="the same task resubmitted after the crash")
    diff = first_difference(oracle.expected_result("triage", task_input), p.get("result"))
    if reply.get("replay") is not False or diff:
        raise CheckFailed("the resubmitted task must run again (replay:false) with the oracle's result",
                          sent=redact(req, ctx.token), expected="replay: false, the oracle's result",
                          received={"replay": reply.get("replay"), "first difference": diff})


DRAIN_GRACE_MS = 1500
DRAIN_ENV = {"FD_SHUTDOWN_GRACE_MS": str(DRAIN_GRACE_MS), "FD_TASK_DEADLINE_MS": "60000",
             "FD_ATTEMPT_TIMEOUT_MS": "30000"}


@check(id="contract.drain_cut_short", title="SIGTERM with a task that cannot finish: busy on open connections, timeout, exit 1",
       items=["shutdown_health.shutdown"], weight=1, stage=10, challenge="tls-shutdown", timeout=40.0)
def drain_cut_short(ctx):
    """The orchestrator restarted with FD_SHUTDOWN_GRACE_MS=1500 (and a long deadline) runs a
    task whose analyze is blackholed; a second connection is open and idle. On SIGTERM
    (SPEC §17): a request sent on the open connection during the drain is answered (busy
    expected), never closed unread; the waiting client gets timeout (1) with
    details.timeout_ms = 1500 before the grace period ends (plus 1.5 s of slack); the
    service exits with status 1 because work was cut short."""
    import threading
    from graders.faults.proxy import Timeout
    topo, dep = ctx.topo, ctx.deployment
    dep.stop("orchestrator")
    dep.start("orchestrator", DRAIN_ENV)
    topo.wait_ready(5.0)
    ctx.note("action", f"orchestrator restarted with FD_SHUTDOWN_GRACE_MS={DRAIN_GRACE_MS}")
    tox = topo.agent_proxy["analyzer"].add(Timeout(timeout_ms=0, stream="downstream"))
    ctx.note("fault", "every byte from the analyzer dropped")
    task_input = oracle.generate_input(ctx.rng, 5)
    tid = ctx.task_id()
    box: dict = {}
    ep = dep.endpoint("orchestrator")
    idle = Connection(ep.host, ep.port, timeout=10.0)
    try:
        expect_ok(idle.request(make_request("hello", {"versions": [1], "role": "orchestrator"},
                                            token=ctx.token), timeout=5.0), "hello",
                  what="hello on the connection kept open across the drain")

        def waiting_client():
            try:
                box["reply"] = submit(ctx, tid, task_input, timeout=15.0, direct=True)[1]
            except Exception as exc:  # noqa: BLE001 - judged below
                box["error"] = f"{type(exc).__name__}: {exc}"
            box["at"] = time.monotonic()

        start = len(topo.agent_proxy["analyzer"].events)
        th = threading.Thread(target=waiting_client, daemon=True)
        th.start()
        # The analyze step has begun once the orchestrator sends the analyzer anything
        # (its hello on a fresh connection, or the analyze itself on a pooled one).
        seen = topo.agent_proxy["analyzer"].wait_for(
            lambda evs: any(e.kind == "frame" and e.direction == "upstream" for e in evs[start:]), 8.0)
        if not seen:
            raise CheckFailed("the task never reached the analyzer", expected="a frame to the analyzer")
        dep.signal_term("orchestrator")
        sent_at = time.monotonic()
        ctx.note("action", "SIGTERM to the orchestrator while the task waits on the analyzer")
        time.sleep(0.2)
        req = make_request("status", {}, token=ctx.token, task_id=tid)
        try:
            reply = idle.request(req, timeout=5.0)
        except ConnectionClosed:
            raise CheckFailed("a request on a connection already open during the drain was closed unread",
                              sent=redact(req, ctx.token), expected="a reply (busy is the expected answer)",
                              received="EOF", hint="SPEC §17: requests arriving on open connections during "
                                                   "the drain MUST be answered.") from None
        if dig(reply, "type") not in ("error", "status_ok"):
            raise CheckFailed("a request during the drain must be answered (busy expected)",
                              sent=redact(req, ctx.token), expected="busy (11)", received=redact(reply, ctx.token))
        th.join(DRAIN_GRACE_MS / 1000 + 5.0)
        got = box.get("reply")
        if got is None:
            raise CheckFailed("the client waiting on the cut-short task got no reply",
                              expected=f"timeout (1) with details.timeout_ms {DRAIN_GRACE_MS}",
                              received=box.get("error", "nothing within the grace period + 5 s"))
        err = expect_error(got, "timeout", token=ctx.token, what="the client waiting when the grace period ends",
                           hint="SPEC §17: a client still waiting when the grace period is about to end "
                                "gets timeout with details.timeout_ms = the grace period.")
        if dig(err, "details", "timeout_ms") != DRAIN_GRACE_MS:
            raise CheckFailed("the timeout reply must name the grace period", expected=DRAIN_GRACE_MS,
                              received=dig(err, "details", "timeout_ms"))
        late = box["at"] - sent_at
        if late > DRAIN_GRACE_MS / 1000 + 1.5:
            raise CheckFailed(f"the waiting client was answered {late:.1f} s after SIGTERM",
                              expected=f"within {DRAIN_GRACE_MS} ms + 1.5 s", received=f"{late:.2f} s")
        rc = dep.wait("orchestrator", DRAIN_GRACE_MS / 1000 + 5.0)
        ctx.note("reaction", f"orchestrator exited with status {rc}")
        if rc != 1:
            raise CheckFailed("after cutting work short the service must exit with status 1",
                              expected=1, received="still running" if rc is None else rc,
                              hint="SPEC §17: exit 1 when a task was cut short by the grace period, else 0.")
    finally:
        idle.close()
        topo.agent_proxy["analyzer"].remove(tox)
        if dep.running("orchestrator"):
            dep.kill("orchestrator")
        dep.start("orchestrator")
        topo.wait_ready(5.0)
        ctx.note("heal", "orchestrator back with the shared settings")
