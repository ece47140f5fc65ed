"""Stage 4, schema-drift: version negotiation and drifted messages, both directions.

Why both directions: a v1 service must refuse v2-shaped requests with an actionable
error, and a v1 orchestrator must refuse a drifted agent's replies the same way (SPEC
§10.2, §14) — definitively, without retrying a reply that will never become valid.
"""
from __future__ import annotations

import time

from graders import oracle
from graders.checks.common import (as_dict, as_list, dig, expect_error, expect_ok, http, redact,
                                   send, submit, wait_unready_naming)
from graders.checks.fake_agent import fake_upstream
from graders.checks.registry import CheckFailed, check
from graders.client import FRAME_LIMITS, make_request

ROLES = ("orchestrator", "collector", "analyzer", "reporter")
SERVES = {"orchestrator": "submit", "collector": "collect", "analyzer": "analyze", "reporter": "report"}


@check(id="versioning.hello", title="hello negotiates the highest common version",
       items=["versioning.negotiation"], weight=1, stage=4, challenge="schema-drift")
def hello(ctx):
    """hello offering [1, 2] -> hello_ok version 1 with the service's role, capabilities
    naming what it serves and limits; offering only [2, 3] -> unsupported_version (22)
    listing 1 in supported."""
    for role in ROLES:
        req, reply = send(ctx, role, "hello", {"versions": [1, 2], "role": "orchestrator"})
        p = expect_ok(reply, "hello", sent=req, token=ctx.token, what=f"{role}: hello [1, 2]")
        caps = p.get("capabilities")
        limits = as_dict(p.get("limits"))
        if p.get("version") != 1 or p.get("role") != role or not isinstance(caps, list) \
                or SERVES[role] not in caps or limits.get("max_frame_bytes") != FRAME_LIMITS[role] \
                or limits.get("max_depth") != 32:
            raise CheckFailed(f"{role}: hello_ok must carry version 1, its role, capabilities and limits",
                              sent=redact(req, ctx.token),
                              expected={"version": 1, "role": role, "capabilities": [SERVES[role], "..."],
                                        "limits": {"max_frame_bytes": FRAME_LIMITS[role], "max_depth": 32}},
                              received=p)
        req, reply = send(ctx, role, "hello", {"versions": [2, 3], "role": "orchestrator"})
        err = expect_error(reply, "unsupported_version", sent=req, token=ctx.token,
                           what=f"{role}: hello with no common version")
        if 1 not in as_list(err["details"].get("supported")):
            raise CheckFailed(f"{role}: unsupported_version.details.supported must list 1",
                              received=err["details"])


def _path_ok(err: dict, paths) -> bool:
    return err.get("details", {}).get("path") in paths


@check(id="versioning.client_drift", title="v2-shaped client messages get 22 or 21 with the right path",
       items=["routing.schema_enforcement", "versioning.drift"], weight=2, stage=4,
       challenge="schema-drift")
def client_drift(ctx):
    """v:2 -> unsupported_version [1]; v:"1" -> 21 at $.v; an unknown envelope field,
    a missing msg_id, a renamed payload member, a wrong type deep in the payload -> 21
    naming the path; each service keeps serving."""
    task_input = oracle.generate_input(ctx.rng, 4)
    good = {"task_type": "triage", "input": task_input}
    tid = ctx.task_id()

    def frame(**changes):
        f = make_request("submit", good, token=ctx.token, task_id=tid)
        for k, v in changes.items():
            if v is _DROP:
                f.pop(k, None)
            else:
                f[k] = v
        return f

    renamed = {"taskType": "triage", "input": task_input}
    wrong_type = {"task_type": "triage", "input": dict(task_input, records="one big string")}
    cases = [
        ("v: 2", frame(v=2), "unsupported_version", None),
        ('v: "1"', frame(v="1"), "schema_violation", {"$.v"}),
        ("unknown envelope field", frame(priority=5), "schema_violation", {"$.priority"}),
        ("missing msg_id", frame(msg_id=_DROP), "schema_violation", {"$.msg_id"}),
        ("renamed payload member", frame(payload=renamed), "schema_violation",
         {"$.payload.task_type", "$.payload.taskType"}),
        ("records of the wrong type", frame(payload=wrong_type), "schema_violation",
         {"$.payload.input.records"}),
    ]
    collect_payload = {"source": task_input["source"], "lines": task_input["records"]}
    ev = oracle.collect({"source": "s", "records": ["2026-01-01T00:00:00Z info api 5 ok"]})["events"]
    ev[0]["latency_ms"] = "5"
    agent_cases = [
        ("collector", "renamed records -> lines", make_request("collect", collect_payload, token=ctx.token, task_id=tid),
         {"$.payload.records", "$.payload.lines"}),
        ("analyzer", "latency_ms as a string", make_request("analyze", {"source": "s", "events": ev}, token=ctx.token, task_id=tid),
         {"$.payload.events[0].latency_ms"}),
        ("reporter", "v: 2", make_request("report", {}, token=ctx.token, task_id=tid, v=2), None),
    ]
    topo = ctx.topo
    with topo.connect(direct=True) as conn:
        for label, f, name, paths in cases:
            reply = conn.request(f, timeout=5.0)
            err = expect_error(reply, name, sent=f, token=ctx.token, what=f"orchestrator: {label}")
            if name == "unsupported_version" and err["details"].get("supported") != [1]:
                raise CheckFailed("unsupported_version.details.supported must be [1]", received=err)
            if paths and not _path_ok(err, paths):
                raise CheckFailed(f"orchestrator: {label}: schema_violation must name the path",
                                  sent=redact(f, ctx.token), expected=sorted(paths),
                                  received=err.get("details"),
                                  hint="Paths start at the envelope: $.payload.input.records[3].")
    for role, label, f, paths in agent_cases:
        with topo.connect_agent(role) as conn:
            reply = conn.request(f, timeout=5.0)
        name = "unsupported_version" if paths is None else "schema_violation"
        err = expect_error(reply, name, sent=f, token=ctx.token, what=f"{role}: {label}")
        if paths and not _path_ok(err, paths):
            raise CheckFailed(f"{role}: {label}: schema_violation must name the path",
                              sent=redact(f, ctx.token), expected=sorted(paths), received=err.get("details"))
    req, reply = send(ctx, "orchestrator", "status", {}, task_id=tid)
    expect_error(reply, "not_found", sent=req, token=ctx.token,
                 what="no drifted submit may create a task")


_DROP = object()


def _expect_upstream_failed(ctx, reply, req, *, cause_code: int, what: str):
    err = expect_error(reply, "upstream_failed", sent=req, token=ctx.token, what=what)
    d = err["details"]
    cause = as_dict(d.get("cause"))
    if d.get("step") != "collect" or d.get("agent") != "collector" or cause.get("code") != cause_code:
        raise CheckFailed(f"{what}: upstream_failed must name step collect, agent collector and "
                          f"the cause (code {cause_code})", sent=redact(req, ctx.token),
                          expected={"step": "collect", "agent": "collector", "cause": {"code": cause_code}},
                          received=d)
    if d.get("attempts") != 1:
        raise CheckFailed(f"{what}: a definite, non-retryable failure must not be retried",
                          expected={"attempts": 1}, received=d,
                          hint="Retry only transport failures and errors whose retryable is true.")
    return d


@check(id="versioning.agent_drift_schema", title="a drifted agent reply fails the task with 21, no retry",
       items=["routing.schema_enforcement", "routing.halt_on_error"], weight=2, stage=4,
       challenge="schema-drift")
def agent_drift_schema(ctx):
    """The collector answers collect_ok with `latency` instead of `latency_ms`: the task
    fails with upstream_failed, cause schema_violation whose path points into
    $.payload..., attempts 1, and the agent saw exactly one collect."""
    task_input = oracle.generate_input(ctx.rng, 6, bad_fraction=0.0)
    tid = ctx.task_id()
    with fake_upstream(ctx, "collector", "drift_schema") as fake:
        req, reply = submit(ctx, tid, task_input)
        d = _expect_upstream_failed(ctx, reply, req, cause_code=21, what="a drifted collect reply")
        path = dig(d, "cause", "details", "path", default="")
        if not str(path).startswith("$.payload"):
            raise CheckFailed("the cause's path must point into the agent's payload ($.payload...)",
                              expected="$.payload.events[0]...", received=d["cause"])
        time.sleep(0.2)
        n = len([r for r in fake.work_requests() if r.get("task_id") == tid])
        if n != 1:
            raise CheckFailed("the drifted reply must not be retried", expected=1, received=n)


@check(id="versioning.agent_version_only", title="an agent with no common version gets no work; readyz names it",
       items=["versioning.negotiation"], weight=1, stage=4, challenge="schema-drift")
def agent_version_only(ctx):
    """The collector speaks only v2: the orchestrator says hello, sends no work, fails the
    task with upstream_failed (cause unsupported_version, attempts 1) and /readyz answers
    503 naming the collector."""
    task_input = oracle.generate_input(ctx.rng, 5)
    tid = ctx.task_id()
    with fake_upstream(ctx, "collector", "v2_only") as fake:
        req, reply = submit(ctx, tid, task_input)
        _expect_upstream_failed(ctx, reply, req, cause_code=22, what="an agent without a common version")
        work = [r for r in fake.requests if r.get("type") != "hello"]
        if work:
            raise CheckFailed("no work may be sent to an agent without a common version",
                              expected="only hello", received=[r.get("type") for r in work])
        last = wait_unready_naming(ctx, "collector")
        if last is not None:
            raise CheckFailed("/readyz must answer 503 naming the collector", expected="503 ... collector",
                              received=last)
