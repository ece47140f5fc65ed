"""Stage 1, pipeline-basics: the happy path, compared whole with the independent oracle.

Why several seeded inputs: one hand-written example passes by luck; generated inputs
hit every rejection reason, mixed spellings, blanks, defaults for thresholds.
"""
from __future__ import annotations

from graders import oracle
from graders.checks import triage_boundaries
from graders.checks.common import (as_list, expect_error, expect_ok, first_difference,
                                   poll_status, redact, send, submit)
from graders.checks.registry import CheckFailed, check

HINT_RESULT = ("Compare your step outputs with SPEC §8 rule by rule: the first failing rule "
               "gives the reason; blanks are only space and tab; nearest-rank percentiles "
               "use (p*count+99)//100; summary text is exact.")


def _expect_result(ctx, task_id, task_type, task_input, reply, req):
    payload = expect_ok(reply, "submit", sent=req, token=ctx.token,
                        what=f"{task_type} task {task_id}",
                        hint="A successful task answers submit_ok with status succeeded and the result.")
    expected = oracle.expected_result(task_type, task_input)
    if payload.get("status") != "succeeded" or payload.get("task_id") != task_id:
        raise CheckFailed(f"task {task_id}: expected status succeeded for task_id {task_id}",
                          sent=redact(req, ctx.token), expected={"task_id": task_id, "status": "succeeded"},
                          received=redact(reply, ctx.token))
    diff = first_difference(expected, payload.get("result"))
    if diff:
        raise CheckFailed(f"{task_type} result differs from the oracle at {diff}",
                          sent=redact(req, ctx.token), expected=expected,
                          received=payload.get("result"), hint=HINT_RESULT)
    if reply.get("replay") is not False:
        raise CheckFailed("a first run must answer with \"replay\": false",
                          sent=redact(req, ctx.token), expected={"replay": False},
                          received={"replay": reply.get("replay")})
    return payload


@check(id="pipeline.triage_oracle", title="triage results equal the oracle on seeded inputs",
       items=["orchestration.pipeline", "routing.rules"], weight=3, stage=1,
       challenge="pipeline-basics")
def triage_oracle(ctx):
    """Four seeded inputs (sizes 0, 7, 60, 300 records, all rejection reasons), then
    deterministic boundary inputs (graders/checks/triage_boundaries.py: services exactly
    at T - 1, T, T + 1, 2T - 1 and 2T of each alert threshold, for the default, smallest,
    largest and a seeded pair of thresholds; every per-record limit at and one past it;
    5 and 6 error groups) through the default triage route; the whole result must equal
    the oracle's."""
    cases = [(f"{n} seeded records", oracle.generate_input(ctx.rng, n)) for n in (0, 7, 60, 300)]
    cases += triage_boundaries.boundary_inputs(ctx.rng)
    cases += triage_boundaries.record_boundary_inputs(ctx.rng)
    for what, task_input in cases:
        tid = ctx.task_id()
        ctx.note("action", f"submit triage {tid}: {what}")
        req, reply = submit(ctx, tid, task_input)
        payload = _expect_result(ctx, tid, "triage", task_input, reply, req)
        steps = payload.get("steps")
        if not isinstance(steps, list) or [s.get("step") for s in steps if isinstance(s, dict)] != ["collect", "analyze", "report"]:
            raise CheckFailed("submit_ok.payload.steps must list collect, analyze, report in order",
                              expected=["collect", "analyze", "report"], received=steps)


@check(id="pipeline.routes", title="parse and stats routes run only their steps",
       items=["routing.rules"], weight=1, stage=1, challenge="pipeline-basics")
def routes(ctx):
    """`parse` is [collect] and `stats` is [collect, analyze]: the result is that last
    step's output, and steps lists exactly those steps."""
    for task_type, steps in (("parse", ["collect"]), ("stats", ["collect", "analyze"])):
        task_input = oracle.generate_input(ctx.rng, 25)
        tid = ctx.task_id()
        req, reply = submit(ctx, tid, task_input, task_type=task_type)
        payload = _expect_result(ctx, tid, task_type, task_input, reply, req)
        got = [s.get("step") for s in payload.get("steps") or [] if isinstance(s, dict)]
        if got != steps:
            raise CheckFailed(f"{task_type} must run exactly {steps}", expected=steps, received=got,
                              hint="Read the route from FD_ROUTES (default in SPEC §10.1).")
    tid = ctx.task_id()
    req, reply = send(ctx, "orchestrator", "submit",
                      {"task_type": "frobnicate", "input": oracle.generate_input(ctx.rng, 3)},
                      task_id=tid)
    err = expect_error(reply, "schema_violation", sent=req, token=ctx.token,
                       what="an unknown task_type")
    if err["details"].get("path") != "$.payload.task_type":
        raise CheckFailed("schema_violation for an unknown task_type must name $.payload.task_type",
                          expected="$.payload.task_type", received=err["details"].get("path"))


@check(id="api.status_list", title="status, list and wait:false behave as specified",
       items=["orchestration.task_api"], weight=1, stage=1, challenge="pipeline-basics")
def status_list(ctx):
    """wait:false answers queued (or a later status) at once; status polls to
    succeeded with the oracle's result and a step timeline; list shows the task newest
    first; an unknown task_id is not_found (41)."""
    task_input = oracle.generate_input(ctx.rng, 20)
    tid = ctx.task_id()
    req, reply = submit(ctx, tid, task_input, wait=False)
    payload = expect_ok(reply, "submit", sent=req, token=ctx.token, what="submit with wait:false")
    if payload.get("status") not in ("queued", "running", "succeeded"):
        raise CheckFailed("submit with wait:false must answer the task's current status",
                          expected="queued", received=payload)
    final = poll_status(ctx, tid)
    expected = oracle.expected_result("triage", task_input)
    for key in ("task_id", "task_type", "status", "submitted_at", "finished_at", "result", "error", "steps"):
        if key not in final:
            raise CheckFailed(f"status_ok.payload lacks {key}", expected=key, received=final)
    if final["status"] != "succeeded" or first_difference(expected, final["result"]):
        raise CheckFailed("status of a finished task must be succeeded with the task's result",
                          expected={"status": "succeeded", "result": expected}, received=final)
    steps = final["steps"]
    if not isinstance(steps, list) or not steps:
        raise CheckFailed("status_ok.payload.steps must list the task's steps", expected="a non-empty list",
                          received=steps)
    for s in steps:
        if not isinstance(s, dict) or s.get("status") != "succeeded" or not isinstance(s.get("attempts"), int) or s["attempts"] < 1:
            raise CheckFailed("each step in status must be succeeded with attempts >= 1",
                              received=steps)
    tid2 = ctx.task_id()
    req, reply = submit(ctx, tid2, oracle.generate_input(ctx.rng, 5))
    expect_ok(reply, "submit", sent=req, token=ctx.token)
    req, reply = send(ctx, "orchestrator", "list", {"limit": 1000})
    lst = expect_ok(reply, "list", sent=req, token=ctx.token)
    ids = [t.get("task_id") for t in as_list(lst.get("tasks")) if isinstance(t, dict)]
    if tid not in ids or tid2 not in ids or ids.index(tid2) > ids.index(tid):
        raise CheckFailed("list must contain both tasks, newest first",
                          expected=[tid2, tid], received=ids[:20])
    req, reply = send(ctx, "orchestrator", "list", {"limit": 1})
    lst = expect_ok(reply, "list", sent=req, token=ctx.token)
    if not isinstance(lst.get("tasks"), list) or len(lst["tasks"]) != 1:
        raise CheckFailed("list with limit 1 must return exactly one task", received=lst)
    missing = ctx.task_id()
    req, reply = send(ctx, "orchestrator", "status", {}, task_id=missing)
    expect_error(reply, "not_found", sent=req, token=ctx.token, what="status of an unknown task")
