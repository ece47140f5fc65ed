"""Stage 2, idempotency: task_id as an idempotency key, at the orchestrator and agents.

Why counted executions: "it returned the right answer twice" does not prove the work ran
once. The proxy in front of each agent records every frame, so a lost reply followed by a
retry must show two requests and a delivered reply marked `replay: true` (SPEC §10.4):
that is the primary evidence. faultdrill_steps_executed_total is read as well when the
agent exposes it, but a missing /metrics is the metrics check's finding, not these.
"""
from __future__ import annotations

import threading

from graders import oracle
from graders.checks.common import (as_dict, executed_again, expect_error, expect_ok,
                                   first_difference, metric_delta, optional_metric, read_record,
                                   redact, send, submit)
from graders.checks.registry import CheckFailed, check
from graders.checks.fake_agent import relayed_upstream
from graders.faults.proxy import Latency
from graders.faults.relay import ReplyDropper


@check(id="idempotency.replay_conflict", title="same task_id replays; different payload conflicts",
       items=["routing.idempotency"], weight=2, stage=2, challenge="idempotency")
def replay_conflict(ctx):
    """Submit, resubmit the same payload (keys reordered, wait differs): submit_ok with
    replay:true and the same result, no agent executes again; a different payload under
    the same task_id: idempotency_conflict (30)."""
    task_input = oracle.generate_input(ctx.rng, 30)
    tid = ctx.task_id()
    req, first = submit(ctx, tid, task_input)
    p1 = expect_ok(first, "submit", sent=req, token=ctx.token)
    agents = ("collector", "analyzer", "reporter")
    starts = {r: len(ctx.topo.agent_proxy[r].events) for r in agents}
    before = {r: optional_metric(ctx, r, "faultdrill_steps_executed_total") for r in agents}
    reordered = dict(reversed(list(task_input.items())))
    req2, second = submit(ctx, tid, reordered, wait=True)
    p2 = expect_ok(second, "submit", sent=req2, token=ctx.token, what="resubmitting the same payload")
    if second.get("replay") is not True or first_difference(p1.get("result"), p2.get("result")):
        raise CheckFailed("the same payload under a succeeded task_id must be replayed: replay:true, same result",
                          sent=redact(req2, ctx.token), expected={"replay": True, "result": p1.get("result")},
                          received=redact(second, ctx.token),
                          hint="Compare payloads as JSON values (key order irrelevant; wait excluded).")
    again = executed_again(ctx, starts, tid)
    if again:
        raise CheckFailed("a replayed task must not execute any step again",
                          expected="no agent reply with replay:false for the task after the resubmission",
                          received=again, hint="Answer a succeeded task_id from the task log; do not re-run it.")
    after = {r: optional_metric(ctx, r, "faultdrill_steps_executed_total") for r in agents}
    grown = {r: metric_delta(before[r], after[r]) for r in agents}
    if any(g for g in grown.values()):
        raise CheckFailed("a replayed task must not execute any step again (faultdrill_steps_executed_total grew)",
                          expected=before, received=after)
    changed = dict(task_input, records=list(task_input["records"]) + ["2026-01-01T00:00:00Z info x 1 extra"])
    req3, third = submit(ctx, tid, changed)
    err = expect_error(third, "idempotency_conflict", sent=req3, token=ctx.token,
                       what="a different payload under the same task_id")
    if err["details"].get("task_id") != tid:
        raise CheckFailed("idempotency_conflict.details.task_id must name the task",
                          expected=tid, received=err["details"])


@check(id="idempotency.in_progress", title="a running task answers in_progress, or conflict",
       items=["routing.idempotency"], weight=1, stage=2, challenge="idempotency")
def in_progress(ctx):
    """While a task runs (collector and analyzer replies delayed 200 ms at the proxies), the same
    payload gets in_progress (31) with retry_after_ms and a different one gets
    idempotency_conflict (30); the task then finishes correctly."""
    topo = ctx.topo
    task_input = oracle.generate_input(ctx.rng, 10)
    tid = ctx.task_id()
    tox = topo.agent_proxy["collector"].add(Latency(latency_ms=200, stream="downstream"))
    tox2 = topo.agent_proxy["analyzer"].add(Latency(latency_ms=200, stream="downstream"))
    ctx.note("fault", "collector and analyzer replies delayed 200 ms")
    box = {}

    def first():
        try:
            box["r"] = submit(ctx, tid, task_input)
        except Exception as exc:  # noqa: BLE001 - reported below
            box["e"] = exc

    th = threading.Thread(target=first, daemon=True)
    try:
        th.start()
        seen = topo.agent_proxy["collector"].wait_for(
            lambda evs: any(e.kind == "frame" and isinstance(e.frame, dict) and e.frame.get("task_id") == tid
                            for e in evs), 5.0)
        if not seen:
            raise CheckFailed("the task never reached the collector", expected="a collect request")
        req, reply = submit(ctx, tid, task_input)
        err = expect_error(reply, "in_progress", sent=req, token=ctx.token,
                           what="the same payload while the task runs",
                           hint="A queued or running task answers in_progress; do not start it twice, do not block.")
        ra = err["details"].get("retry_after_ms")
        if not isinstance(ra, int) or ra < 1:
            raise CheckFailed("in_progress.details.retry_after_ms must be an integer >= 1", received=err)
        changed = dict(task_input, source=task_input["source"] + "x")
        req, reply = submit(ctx, tid, changed)
        expect_error(reply, "idempotency_conflict", sent=req, token=ctx.token,
                     what="a different payload while the task runs")
        th.join(10.0)
    finally:
        topo.agent_proxy["collector"].remove(tox)
        topo.agent_proxy["analyzer"].remove(tox2)
        ctx.note("heal", "latency removed")
    if "r" not in box:
        raise CheckFailed("the first submit got no reply", received=str(box.get("e", "still waiting")))
    req, reply = box["r"]
    p = expect_ok(reply, "submit", sent=req, token=ctx.token, what="the first submit")
    if first_difference(oracle.expected_result("triage", task_input), p.get("result")):
        raise CheckFailed("the task must still succeed with the right result", received=p)


@check(id="idempotency.agent_replay", title="a lost agent reply is retried and replayed, executed once",
       items=["routing.idempotency", "memory.records"], weight=2, stage=2, challenge="idempotency")
def agent_replay(ctx):
    """The first collect reply for the task is lost on the way back (the connection is
    closed instead); the orchestrator retries; the collector must answer the retry from memory (replay:true)
    so that steps_executed_total{step=collect} grows by exactly one."""
    proxy = ctx.topo.agent_proxy["collector"]
    task_input = oracle.generate_input(ctx.rng, 12)
    tid = ctx.task_id()
    executed0 = optional_metric(ctx, "collector", "faultdrill_steps_executed_total", step="collect")
    replayed0 = optional_metric(ctx, "collector", "faultdrill_steps_replayed_total", step="collect")
    n_events = len(proxy.events)
    with relayed_upstream(ctx, "collector", ReplyDropper, "collect_ok", tid,
                          what="the first collect reply for the task is lost and the connection closed") as dropper:
        req, reply = submit(ctx, tid, task_input)
    if dropper.dropped is None:
        raise CheckFailed("no collect reply for the task passed through the collector address",
                          expected="collect sent to FD_COLLECTOR_ADDR", received=redact(reply, ctx.token))
    final = as_dict(reply.get("payload"))
    if reply.get("type") != "submit_ok" or first_difference(oracle.expected_result("triage", task_input), final.get("result")):
        raise CheckFailed("after a lost reply the task must be retried and succeed", sent=redact(req, ctx.token),
                          received=redact(reply, ctx.token),
                          hint="A connection closed without a reply is a transport failure: retry it.")
    events = proxy.events[n_events:]
    requests = [e for e in events if e.kind == "frame" and e.direction == "upstream"
                and isinstance(e.frame, dict) and e.frame.get("type") == "collect" and e.frame.get("task_id") == tid]
    replies = [e for e in events if e.kind == "frame" and e.direction == "downstream"
               and isinstance(e.frame, dict) and e.frame.get("task_id") == tid and e.frame.get("type") == "collect_ok"]
    ctx.note("reaction", f"{len(requests)} collect requests, {len(replies)} delivered replies "
                         f"(replay flags {[r.frame.get('replay') for r in replies]})")
    if len(requests) < 2:
        raise CheckFailed("expected the orchestrator to retry collect after the lost reply",
                          expected=">= 2 collect requests", received=len(requests))
    # The first reply was swallowed behind the proxy, so every reply delivered through it
    # answers a retry: each must be a replay, or the step executed more than once.
    if not replies or any(r.frame.get("replay") is not True for r in replies):
        raise CheckFailed("the retried collect must be answered from memory with replay:true "
                          "(the step executes once)",
                          expected={"replay": True}, received=[r.frame.get("replay") for r in replies],
                          hint="Key agent work by (task_id, step); store before replying; replay an equal input.")
    read_record(ctx, "collector", tid, what="the record the replay came from")
    executed = metric_delta(executed0, optional_metric(ctx, "collector", "faultdrill_steps_executed_total", step="collect"))
    replayed = metric_delta(replayed0, optional_metric(ctx, "collector", "faultdrill_steps_replayed_total", step="collect"))
    if (executed is not None and executed != 1) or (replayed is not None and replayed < 1):
        raise CheckFailed("collect must execute exactly once and be replayed for the retry",
                          expected={"executed": 1, "replayed": ">= 1"},
                          received={"executed": executed, "replayed": replayed})


@check(id="idempotency.agent_conflict", title="an agent answers idempotency_conflict for a different input",
       items=["routing.idempotency"], weight=1, stage=2, challenge="idempotency")
def agent_conflict(ctx):
    """Sent straight to the collector: a collect for a new task executes; the same
    (task_id, step) with a DIFFERENT input gets idempotency_conflict (30) naming the task,
    neither replaying the stored output nor executing; the original input then still
    replays (replay:true, the original output), so the conflict overwrote nothing."""
    tid = ctx.task_id()
    first_input = oracle.generate_input(ctx.rng, 8)
    payload_a = {"source": first_input["source"], "records": first_input["records"]}
    payload_b = dict(payload_a, records=list(payload_a["records"]) + ["2026-01-01T00:00:00Z info conflict 7 other input"])
    req, reply = send(ctx, "collector", "collect", payload_a, task_id=tid)
    out_a = expect_ok(reply, "collect", sent=req, token=ctx.token, what="a collect for a new task")
    if first_difference(oracle.collect(payload_a), out_a):
        raise CheckFailed("the first collect must equal the oracle's output",
                          sent=redact(req, ctx.token), expected=oracle.collect(payload_a), received=out_a)
    req, reply = send(ctx, "collector", "collect", payload_b, task_id=tid)
    ctx.note("action", "the same task_id sent to the collector with a different input")
    err = expect_error(reply, "idempotency_conflict", sent=req, token=ctx.token,
                       what="the same (task_id, collect) with a different input",
                       hint="SPEC §10.4: compare the stored input with the new one (as JSON values); "
                            "equal -> replay, different -> idempotency_conflict. Never replay blindly.")
    if err["details"].get("task_id") != tid:
        raise CheckFailed("idempotency_conflict.details.task_id must name the task",
                          expected=tid, received=err["details"])
    req, reply = send(ctx, "collector", "collect", payload_a, task_id=tid)
    out = expect_ok(reply, "collect", sent=req, token=ctx.token, what="the original input after the conflict")
    if reply.get("replay") is not True or first_difference(out_a, out):
        raise CheckFailed("after a conflict the original input must still replay its stored output",
                          sent=redact(req, ctx.token), expected={"replay": True, "payload": out_a},
                          received=redact(reply, ctx.token),
                          hint="A conflicting request must not overwrite the stored record.")
