"""Stage 8, observability: logs, trace propagation, health, metrics, dashboard, alerts.

Why logs are read from the captured stderr of every service: SPEC §12 promises one JSON
object per line with fixed fields, so a tool (or an on-call engineer) can follow one
task across four processes; the check does exactly that with the candidate's own lines.
"""
from __future__ import annotations

import re

from graders import oracle
from graders.checks import promtext
from graders.checks.common import (LOG_LINE_MAX, dig, expect_error, expect_ok, http, loads, log_count,
                                   log_records, redact, send, submit, text_of, wait_for_logs)
from graders.checks.fake_agent import fake_upstream
from graders.checks.registry import CheckFailed, check

ROLES = ("orchestrator", "collector", "analyzer", "reporter")
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def _line_problem(obj, role: str) -> str | None:
    if not isinstance(obj, dict):
        return "not a JSON object"
    if not isinstance(obj.get("ts"), str) or not TS.match(obj["ts"]):
        return "ts must be RFC 3339 UTC with milliseconds (2026-11-29T14:50:31.123Z)"
    if obj.get("level") not in ("debug", "info", "warn", "error"):
        return "level must be debug, info, warn or error"
    if obj.get("service") != role:
        return f"service must be {role!r}"
    if not isinstance(obj.get("msg"), str):
        return "msg must be a string"
    for key, pat, what in (("task_id", None, "a string"), ("trace_id", HEX32, "32 lowercase hex"),
                           ("span_id", HEX16, "16 lowercase hex")):
        if key not in obj:
            return f"{key} is required (null when not applicable)"
        val = obj[key]
        if val is not None and (not isinstance(val, str) or (pat and not pat.match(val))):
            return f"{key} must be null or {what}"
    return None


@check(id="observability.json_logs", title="every stderr line is JSON with the required fields and events",
       items=["observability.logs"], weight=2, stage=8, challenge="observability")
def json_logs(ctx):
    """After a successful task, a task that retries and fails (reporter unreachable) and a
    bad-token request to each service: every stderr line of every service is a JSON object
    with ts/level/service/msg/task_id/trace_id/span_id, and the required events appear
    (request with type+outcome; unauthorized on every service that refused the bad token;
    orchestrator task_received, step_attempt, retry_scheduled, task_succeeded, task_failed)."""
    topo = ctx.topo
    ok_tid = ctx.task_id()
    req, reply = submit(ctx, ok_tid, oracle.generate_input(ctx.rng, 5))
    expect_ok(reply, "submit", sent=req, token=ctx.token)
    proxy = topo.agent_proxy["reporter"]
    proxy.set_down(True)
    ctx.note("fault", "reporter unreachable (proxy down)")
    try:
        fail_tid = ctx.task_id()
        submit(ctx, fail_tid, oracle.generate_input(ctx.rng, 5))
    finally:
        proxy.set_down(False)
        ctx.note("heal", "reporter reachable again")
    refused = set()
    for role in ROLES:
        start = log_count(ctx, role)
        _req, reply = send(ctx, role, "hello", {"versions": [1], "role": "orchestrator"}, token="not-the-token")
        if isinstance(reply, dict) and dig(reply, "error", "name") == "unauthorized":
            refused.add(role)
            # Lines arrive through a pipe: wait (bounded) for this refusal's own line.
            wait_for_logs(ctx, role, start, lambda r: r.get("event") == "unauthorized")
        else:
            ctx.note("note", f"{role} did not refuse a bad token, so its `unauthorized` log event "
                             "cannot be required (security.token_refused judges the refusal)")
    # A service that never refused anything cannot have logged a refusal: the event is
    # required only where a refusal actually happened.
    required = {role: {"request"} | ({"unauthorized"} if role in refused else set()) for role in ROLES}
    required["orchestrator"] |= {"task_received", "step_attempt", "retry_scheduled", "task_succeeded", "task_failed"}
    for role in ROLES:
        events: dict[str, list] = {}
        for line in ctx.deployment.logs(role, "stderr"):
            if not line.strip():
                continue
            try:
                obj = loads(line, "log line", max_bytes=LOG_LINE_MAX)
            except ValueError:
                obj = None
            prob = _line_problem(obj, role)
            if prob:
                raise CheckFailed(f"{role}: a stderr line is not a valid log record: {prob}",
                                  expected="one JSON object per line with ts, level, service, msg, task_id, trace_id, span_id",
                                  received=line.replace(ctx.token, "<TOKEN>")[:500],
                                  hint="stderr carries only JSON log lines; print anything else to stdout.")
            if isinstance(obj.get("event"), str):
                events.setdefault(obj["event"], []).append(obj)
        missing = sorted(required[role] - set(events))
        if missing:
            raise CheckFailed(f"{role}: required log events missing", expected=sorted(required[role]),
                              received={"missing": missing, "seen": sorted(events)})
        bad = [e for e in events["request"] if "type" not in e or "outcome" not in e]
        if bad:
            raise CheckFailed(f"{role}: request events need type and outcome", received=bad[:3])
        if role == "orchestrator":
            for ev, keys in (("step_attempt", ("step", "attempt")), ("retry_scheduled", ("step", "delay_ms"))):
                bad = [e for e in events[ev] if any(k not in e for k in keys)]
                if bad:
                    raise CheckFailed(f"orchestrator: {ev} events need {keys}", received=bad[:3])


@check(id="observability.trace_propagation", title="task_id and trace_id reach all four services",
       items=["observability.tracing"], weight=2, stage=8, challenge="observability")
def trace_propagation(ctx):
    """A task submitted with a traceparent: every service logs lines with its task_id and
    that trace_id, every line naming the task carries it, and each step request at the
    proxy carries a traceparent with the trace id. Without a traceparent the orchestrator
    starts one trace used by all four services."""
    topo = ctx.topo
    trace_id = "".join(ctx.rng.choice("0123456789abcdef") for _ in range(32))
    tp = f"00-{trace_id}-{''.join(ctx.rng.choice('0123456789abcdef') for _ in range(16))}-01"
    tid = ctx.task_id()
    starts = {r: log_count(ctx, r) for r in ROLES}
    n0 = {r: len(topo.agent_proxy[r].events) for r in ("collector", "analyzer", "reporter")}
    req, reply = submit(ctx, tid, oracle.generate_input(ctx.rng, 5), traceparent=tp)
    expect_ok(reply, "submit", sent=req, token=ctx.token)
    tid2 = ctx.task_id()
    req, reply = submit(ctx, tid2, oracle.generate_input(ctx.rng, 5))
    expect_ok(reply, "submit", sent=req, token=ctx.token)
    for role in ROLES:
        lines = wait_for_logs(ctx, role, starts[role], lambda r: r.get("task_id") == tid)
        if not lines:
            raise CheckFailed(f"{role}: no log line carries task_id {tid}", expected=f"task_id {tid}",
                              hint="Attach task_id and trace_id to every log line about a task (context variables).")
        wrong = [r for r in lines if r.get("trace_id") != trace_id]
        if wrong:
            raise CheckFailed(f"{role}: lines about the task must carry the client's trace id",
                              expected=trace_id, received=wrong[:3])
    for agent in ("collector", "analyzer", "reporter"):
        frames = [e.frame for e in topo.agent_proxy[agent].events[n0[agent]:]
                  if e.kind == "frame" and e.direction == "upstream" and isinstance(e.frame, dict)
                  and e.frame.get("task_id") == tid and e.frame.get("type") != "hello"]
        if not frames or any(not str(f.get("traceparent", "")).startswith(f"00-{trace_id}-") for f in frames):
            raise CheckFailed(f"the {agent} request must carry traceparent 00-{trace_id}-<new span>-..",
                              expected=f"00-{trace_id}-...", received=[redact(f, ctx.token) for f in frames[:2]])
    ids = set()
    for role in ROLES:
        ids |= {r.get("trace_id") for r in log_records(ctx, role, starts[role]) if r.get("task_id") == tid2}
    if len(ids) != 1 or not HEX32.match(str(next(iter(ids)))):
        raise CheckFailed("without a traceparent the orchestrator starts one trace that every service uses",
                          expected="one 32-hex trace id", received=sorted(map(str, ids)))


@check(id="observability.health_endpoints", title="/livez, /readyz and 404 on every service",
       items=["shutdown_health.health"], weight=1, stage=8, challenge="observability")
def health_endpoints(ctx):
    """GET /livez -> 200 {"status":"ok"}, /readyz -> 200 {"status":"ready"}, an unknown
    path -> 404, on all four HTTP side ports, no token required."""
    for role in ROLES:
        for path, want in (("/livez", {"status": "ok"}), ("/readyz", {"status": "ready"})):
            status, _h, body = http(ctx, role, path)
            try:
                obj = loads(body)
            except ValueError:
                obj = body[:200]
            if status != 200 or obj != want:
                raise CheckFailed(f"{role} GET {path}", expected=(200, want), received=(status, obj))
        status, _h, _b = http(ctx, role, "/definitely-not-a-page")
        if status != 404:
            raise CheckFailed(f"{role}: unknown paths answer 404", expected=404, received=status)


REQUIRED_METRICS = {
    "all": {"faultdrill_requests_total": "counter", "faultdrill_request_duration_seconds": "histogram",
            "faultdrill_connections_open": "gauge", "faultdrill_memory_records": "gauge",
            "faultdrill_memory_corruptions_total": "counter", "faultdrill_memory_pruned_total": "counter"},
    "agents": {"faultdrill_steps_executed_total": "counter", "faultdrill_steps_replayed_total": "counter"},
    "orchestrator": {"faultdrill_tasks_total": "counter", "faultdrill_step_retries_total": "counter",
                     "faultdrill_busy_rejections_total": "counter", "faultdrill_queue_depth": "gauge",
                     "faultdrill_task_duration_seconds": "histogram"},
}


@check(id="observability.metrics_format", title="/metrics is strict Prometheus 0.0.4 with the required metrics",
       items=["metrics_alerts.metrics"], weight=2, stage=8, challenge="observability")
def metrics_format(ctx):
    """Each service's /metrics: Content-Type text/plain; version=0.0.4, valid under a
    strict 0.0.4 checker (HELP/TYPE first, escaping, _total, histogram buckets), parsed by
    prometheus_client too, every required family with its type, and (on every service that
    refused the wrong token) unauthorized requests counted under outcome="unauthorized"."""
    from prometheus_client.parser import text_string_to_metric_families
    for role in ROLES:
        _req, refusal = send(ctx, role, "hello", {"versions": [1], "role": "orchestrator"}, token="wrong-token")
        refused = isinstance(refusal, dict) and dig(refusal, "error", "name") == "unauthorized"
        status, headers, body = http(ctx, role, "/metrics")
        ctype = headers.get("content-type", "")
        if status != 200 or not ctype.startswith("text/plain") or "version=0.0.4" not in ctype:
            raise CheckFailed(f"{role}: GET /metrics", expected="200 text/plain; version=0.0.4",
                              received=(status, ctype))
        text = text_of(body, f"{role} /metrics")
        families, problems = promtext.parse(text)
        if problems:
            raise CheckFailed(f"{role}: /metrics is not valid text format 0.0.4", expected="no problems",
                              received=problems[:10], hint="HELP and TYPE before samples; escape label values; +Inf bucket = _count.")
        try:
            list(text_string_to_metric_families(text))
        except Exception as exc:  # noqa: BLE001 - any parser complaint is a finding
            raise CheckFailed(f"{role}: prometheus_client cannot parse /metrics: {exc}")
        want = dict(REQUIRED_METRICS["all"])
        want.update(REQUIRED_METRICS["orchestrator" if role == "orchestrator" else "agents"])
        wrong = {n: (families[n].type if n in families else None) for n, t in want.items()
                 if n not in families or families[n].type != t}
        if wrong:
            raise CheckFailed(f"{role}: required metrics missing or of the wrong type",
                              expected={n: want[n] for n in wrong}, received=wrong)
        if not refused:
            ctx.note("note", f"{role} did not refuse a wrong token, so outcome=\"unauthorized\" cannot be "
                             "required (security.token_refused judges the refusal)")
        elif promtext.value(families, "faultdrill_requests_total", outcome="unauthorized") < 1:
            raise CheckFailed(f"{role}: unauthorized requests must be counted in faultdrill_requests_total{{outcome=\"unauthorized\"}}",
                              expected=">= 1", received=0)


@check(id="observability.dashboard", title="dashboard HTML and the task API",
       items=["observability.dashboard"], weight=1, stage=8, challenge="observability")
def dashboard(ctx):
    """GET / is an HTML page listing a recent task; /api/tasks lists it; /api/tasks/<id>
    is its status payload; an unknown id is 404 {"error":"not_found"}."""
    tid = ctx.task_id()
    req, reply = submit(ctx, tid, oracle.generate_input(ctx.rng, 5))
    expect_ok(reply, "submit", sent=req, token=ctx.token)
    status, headers, body = http(ctx, "orchestrator", "/")
    if status != 200 or "text/html" not in headers.get("content-type", "") or tid.encode() not in body:
        raise CheckFailed("GET / must be an HTML dashboard showing recent tasks",
                          expected=f"200 text/html containing {tid}",
                          received=(status, headers.get("content-type"), body[:300]))
    status, _h, body = http(ctx, "orchestrator", "/api/tasks")
    try:
        tasks = loads(body)["tasks"]
        ids = [t["task_id"] for t in tasks] if isinstance(tasks, list) else None
        if ids is None:
            raise TypeError("tasks is not a list")
    except (ValueError, KeyError, TypeError):
        raise CheckFailed("/api/tasks must be {\"tasks\": [...]}", received=body[:300]) from None
    if status != 200 or tid not in ids:
        raise CheckFailed("/api/tasks must list the task", expected=tid, received=ids[:10])
    status, _h, body = http(ctx, "orchestrator", f"/api/tasks/{tid}")
    try:
        obj = loads(body)
    except ValueError:
        obj = None
    if status != 200 or not isinstance(obj, dict) or obj.get("task_id") != tid or obj.get("status") != "succeeded":
        raise CheckFailed(f"/api/tasks/{tid} must be the task's status payload",
                          expected={"task_id": tid, "status": "succeeded"}, received=(status, body[:300]))
    status, _h, body = http(ctx, "orchestrator", "/api/tasks/" + ctx.task_id())
    try:
        obj = loads(body)
    except ValueError:
        obj = None
    if status != 404 or obj != {"error": "not_found"}:
        raise CheckFailed("an unknown task id answers 404 {\"error\":\"not_found\"}",
                          expected=(404, {"error": "not_found"}), received=(status, body[:200]))


@check(id="observability.alerts", title="TaskErrorRateHigh fires after failures",
       items=["metrics_alerts.alerts"], weight=1, stage=8, challenge="observability", timeout=40.0)
def alerts(ctx):
    """Twelve tasks in a row fail (a fake collector refuses work as unauthorized, so a
    correct orchestrator fails each at once): /api/alerts lists TaskErrorRateHigh,
    severity critical, value >= 0.5, since an RFC 3339 time."""
    with fake_upstream(ctx, "collector", "unauthorized"):
        for _ in range(12):
            tid = ctx.task_id()
            req, reply = submit(ctx, tid, oracle.generate_input(ctx.rng, 4))
            expect_error(reply, "upstream_failed", sent=req, token=ctx.token, what="a task whose collect is refused")
    ctx.note("action", "12 tasks failed with upstream_failed")
    status, _h, body = http(ctx, "orchestrator", "/api/alerts")
    try:
        alerts_ = loads(body)["alerts"]
    except (ValueError, KeyError, TypeError):
        alerts_ = None
    if not isinstance(alerts_, list):
        raise CheckFailed("/api/alerts must be {\"alerts\": [...]}", received=(status, body[:300]))
    firing = [a for a in alerts_ if isinstance(a, dict) and a.get("name") == "TaskErrorRateHigh"]
    if status != 200 or not firing:
        raise CheckFailed("TaskErrorRateHigh must fire when half of the last 20 finished tasks failed",
                          expected=[{"name": "TaskErrorRateHigh", "severity": "critical"}], received=alerts_)
    a = firing[0]
    if a.get("severity") != "critical" or not isinstance(a.get("value"), (int, float)) or a["value"] < 0.5 \
            or not isinstance(a.get("since"), str) or not a["since"].endswith("Z"):
        raise CheckFailed("the alert needs severity critical, value failed/finished >= 0.5 and since",
                          expected={"severity": "critical", "value": ">= 0.5", "since": "...Z"}, received=a)
