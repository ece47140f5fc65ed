"""Stages 5-6, dropped-sockets and crash-restart: retries, backoff, deadlines, dead agents.

Why measured at the agent side: the orchestrator's own account of its retries proves
nothing; a fake agent behind the proxy timestamps each attempt as it arrives, so backoff
gaps, attempt counts and fresh msg_ids are observed, not reported.
"""
from __future__ import annotations

import time

from graders import oracle
from graders.checks.common import (as_list, dig, expect_error, expect_ok, first_difference, http,
                                   poll_status, redact, submit, wait_unready_naming)
from graders.checks.fake_agent import fake_upstream, relayed_upstream
from graders.checks.registry import CheckFailed, check
from graders.faults.proxy import Timeout
from graders.faults.relay import WorkResetter


def _settings(ctx) -> dict:
    s = ctx.topo.settings
    return {k: int(s[k]) for k in ("FD_ATTEMPT_TIMEOUT_MS", "FD_TASK_DEADLINE_MS", "FD_RETRY_BASE_MS",
                                   "FD_RETRY_CAP_MS", "FD_RETRY_MAX_ATTEMPTS")}


def _check_gaps(times: list[float], s: dict) -> list[str]:
    probs = []
    for n in range(1, len(times)):
        d = min(s["FD_RETRY_CAP_MS"], s["FD_RETRY_BASE_MS"] * 2 ** (n - 1))
        gap_ms = (times[n] - times[n - 1]) * 1000
        if gap_ms < d / 2 - 10:
            probs.append(f"gap before attempt {n + 1} was {gap_ms:.0f} ms; at least {d / 2:.0f} ms (d/2) required")
    return probs


@check(id="orchestration.retry_backoff", title="retries are bounded and spaced by equal-jitter backoff",
       items=["orchestration.retries"], weight=2, stage=5, challenge="dropped-sockets")
def retry_backoff(ctx):
    """The analyzer answers every analyze with internal_error (14, retryable): exactly
    FD_RETRY_MAX_ATTEMPTS attempts arrive, each with a new msg_id and the same task_id,
    every gap (timed where the agent receives it) >= d/2 - 10 ms; the client gets
    upstream_failed naming analyze/analyzer, attempts = max, cause internal_error."""
    s = _settings(ctx)
    task_input = oracle.generate_input(ctx.rng, 10)
    tid = ctx.task_id()
    with fake_upstream(ctx, "analyzer", "internal_error") as fake:
        req, reply = submit(ctx, tid, task_input)
        time.sleep(0.2)
        attempts = [r for r in fake.work_requests() if r.get("task_id") == tid]
        times = list(fake.work_times)
    ctx.note("reaction", f"{len(attempts)} analyze attempts at +" +
             ", +".join(f"{(t - times[0]) * 1000:.0f} ms" for t in times))
    err = expect_error(reply, "upstream_failed", sent=req, token=ctx.token,
                       what="every analyze attempt failed with a retryable error",
                       hint="After the last attempt, answer upstream_failed with the last cause.")
    d = err["details"]
    if d.get("step") != "analyze" or d.get("agent") != "analyzer" or dig(d, "cause", "code") != 14:
        raise CheckFailed("upstream_failed must name step analyze, agent analyzer and the last cause (internal_error)",
                          expected={"step": "analyze", "agent": "analyzer", "cause": {"code": 14}},
                          received=d)
    if len(attempts) != s["FD_RETRY_MAX_ATTEMPTS"] or d.get("attempts") != len(attempts):
        raise CheckFailed("the step must be attempted exactly FD_RETRY_MAX_ATTEMPTS times and report it",
                          expected=s["FD_RETRY_MAX_ATTEMPTS"],
                          received={"seen_at_agent": len(attempts), "details.attempts": d.get("attempts")})
    ids = [a.get("msg_id") for a in attempts]
    if len(set(ids)) != len(ids):
        raise CheckFailed("each attempt must use a new msg_id", received=ids)
    probs = _check_gaps(times, s)
    if probs:
        raise CheckFailed("; ".join(probs), expected="equal jitter: sleep uniform in [d/2, d], d = min(cap, base*2^(n-1))",
                          received=[round((b - a) * 1000) for a, b in zip(times, times[1:])],
                          hint="Full jitter [0, d] is not allowed; neither is retrying without a wait.")


@check(id="orchestration.transient_recovery", title="a transient failure is retried and the task succeeds",
       items=["orchestration.retries", "orchestration.partial_failure"], weight=2, stage=5,
       challenge="dropped-sockets")
def transient_recovery(ctx):
    """The first two analyze requests for the task are answered with a TCP reset (a relay
    in front of the real analyzer counts them), later ones reach the analyzer: the task
    succeeds with the oracle's result and its status shows analyze with 3 attempts. The
    number of failures is fixed by the relay, so the outcome does not depend on timing;
    the spacing of the retries is orchestration.retry_backoff's subject, not this one's."""
    task_input = oracle.generate_input(ctx.rng, 15)
    tid = ctx.task_id()
    with relayed_upstream(ctx, "analyzer", WorkResetter, "analyze", tid, 2,
                          what="the first two analyze requests for the task are reset") as relay:
        req, reply = submit(ctx, tid, task_input)
    ctx.note("reaction", f"{len(relay.reset_times)} analyze requests reset, {len(relay.forwarded)} forwarded")
    if len(relay.reset_times) < 2:
        raise CheckFailed("the orchestrator did not retry analyze after a reset",
                          expected=">= 2 analyze attempts (2 reset, then one that reaches the analyzer)",
                          received={"reset": len(relay.reset_times), "reply": redact(reply, ctx.token)},
                          hint="A connection reset is a transport failure: retry the step.")
    expect_ok(reply, "submit", sent=req, token=ctx.token, what="a task whose analyze step was reset twice",
              hint="Two transport failures then a success: with FD_RETRY_MAX_ATTEMPTS=4 the task succeeds.")
    final = poll_status(ctx, tid, timeout=3.0)
    expected = oracle.expected_result("triage", task_input)
    if final["status"] != "succeeded" or first_difference(expected, final.get("result")):
        raise CheckFailed("after a transient failure the task must succeed with the right result",
                          expected={"status": "succeeded", "result": expected}, received=final)
    step = next((st for st in as_list(final.get("steps")) if isinstance(st, dict) and st.get("step") == "analyze"), {})
    if step.get("attempts") != 3 or len(relay.forwarded) != 1:
        raise CheckFailed("status must show the analyze step's attempts (2 resets + 1 success)",
                          expected={"step": "analyze", "attempts": 3, "requests reaching the analyzer": 1},
                          received={"status step": step, "requests reaching the analyzer": len(relay.forwarded)})


@check(id="orchestration.no_retry_definite", title="a definite agent error ends the task at once",
       items=["orchestration.retries", "routing.halt_on_error"], weight=1, stage=5,
       challenge="dropped-sockets")
def no_retry_definite(ctx):
    """The collector refuses work as unauthorized (20: definite, not retryable), as an
    agent holding another token would: the task fails with upstream_failed naming
    collect/collector, attempts 1, cause 20, and the agent saw exactly one collect."""
    tid = ctx.task_id()
    with fake_upstream(ctx, "collector", "unauthorized") as fake:
        req, reply = submit(ctx, tid, oracle.generate_input(ctx.rng, 6))
        time.sleep(0.15)
        seen = [r for r in fake.work_requests() if r.get("task_id") == tid]
    err = expect_error(reply, "upstream_failed", sent=req, token=ctx.token, what="the collector answered unauthorized")
    d = err["details"]
    if dig(d, "cause", "code") != 20 or d.get("attempts") != 1 or d.get("step") != "collect" \
            or d.get("agent") != "collector":
        raise CheckFailed("a definite error must end the step at once with that error as cause",
                          expected={"step": "collect", "agent": "collector", "attempts": 1, "cause": {"code": 20}},
                          received=d, hint="Never retry unauthorized, schema_violation, idempotency_conflict, ...")
    if len(seen) != 1:
        raise CheckFailed("exactly one collect may be sent after a definite error", expected=1, received=len(seen))


@check(id="orchestration.blackhole_deadline", title="a silent agent fails the task within the deadline",
       items=["orchestration.timeouts"], weight=2, stage=5, challenge="dropped-sockets")
def blackhole_deadline(ctx):
    """Every byte from the analyzer is dropped and its connections stay open: the client
    gets timeout (1) or upstream_failed (40, cause timeout) no later than
    FD_TASK_DEADLINE_MS + 1 s after submitting, and status shows the task failed."""
    s = _settings(ctx)
    task_input = oracle.generate_input(ctx.rng, 8)
    tid = ctx.task_id()
    proxy = ctx.topo.agent_proxy["analyzer"]
    tox = proxy.add(Timeout(timeout_ms=0, stream="downstream"))
    ctx.note("fault", "analyzer blackholed (replies dropped, connections kept open)")
    try:
        t0 = time.monotonic()
        req, reply = submit(ctx, tid, task_input, timeout=s["FD_TASK_DEADLINE_MS"] / 1000 + 4.0)
        elapsed = time.monotonic() - t0
    finally:
        proxy.remove(tox)
        ctx.note("heal", "analyzer blackhole removed")
    name = dig(reply, "error", "name")
    ctx.note("reaction", f"client answered after {elapsed * 1000:.0f} ms: {name}")
    if name == "timeout":
        expect_error(reply, "timeout", sent=req, token=ctx.token)
    else:
        err = expect_error(reply, "upstream_failed", sent=req, token=ctx.token, what="a blackholed analyzer",
                           hint="Bound every attempt by FD_ATTEMPT_TIMEOUT_MS and the task by FD_TASK_DEADLINE_MS.")
        if dig(err, "details", "cause", "code") != 1:
            raise CheckFailed("the cause of a silent agent is timeout (1)", received=err["details"])
    limit = s["FD_TASK_DEADLINE_MS"] / 1000 + 1.0
    if elapsed > limit:
        raise CheckFailed(f"the failure came after {elapsed:.2f} s; the deadline is "
                          f"{s['FD_TASK_DEADLINE_MS']} ms (+1 s slack)", expected=f"<= {limit:.1f} s",
                          received=f"{elapsed:.2f} s")
    final = poll_status(ctx, tid, timeout=3.0)
    if final["status"] != "failed" or not isinstance(final.get("error"), dict):
        raise CheckFailed("status of the task must be failed with its error", received=final)


@check(id="orchestration.agent_restart", title="a killed agent fails tasks cleanly; after restart they succeed",
       items=["orchestration.partial_failure"], weight=2, stage=6, challenge="crash-restart")
def agent_restart(ctx):
    """SIGKILL the collector: a task fails with upstream_failed (collect/collector, all
    attempts, cause 1 or 14); restart the collector; resubmitting the same task_id runs
    it again (replay:false) and succeeds with the oracle's result."""
    dep = ctx.deployment
    s = _settings(ctx)
    task_input = oracle.generate_input(ctx.rng, 10)
    tid = ctx.task_id()
    dep.kill("collector")
    dep.wait("collector", 5.0)
    ctx.note("fault", "collector SIGKILLed")
    req, reply = submit(ctx, tid, task_input)
    err = expect_error(reply, "upstream_failed", sent=req, token=ctx.token, what="the collector is dead")
    d = err["details"]
    if d.get("step") != "collect" or d.get("agent") != "collector" or d.get("attempts") != s["FD_RETRY_MAX_ATTEMPTS"] \
            or dig(d, "cause", "code") not in (1, 14):
        raise CheckFailed("upstream_failed must name collect/collector, every attempt and a transport cause",
                          expected={"step": "collect", "agent": "collector", "attempts": s["FD_RETRY_MAX_ATTEMPTS"],
                                    "cause": {"code": "1 or 14"}}, received=d)
    dep.restart("collector")
    ctx.note("heal", "collector restarted")
    ctx.topo.wait_ready(5.0)
    req, reply = submit(ctx, tid, task_input)
    p = expect_ok(reply, "submit", sent=req, token=ctx.token,
                  what="resubmitting a failed task after the agent came back",
                  hint="A failed task_id with the same payload runs again (SPEC §9.3).")
    if reply.get("replay") is not False or first_difference(oracle.expected_result("triage", task_input), p.get("result")):
        raise CheckFailed("a failed task resubmitted must run again: replay:false and the right result",
                          sent=redact(req, ctx.token), received=redact(reply, ctx.token))


@check(id="health.readyz_agent_down", title="/readyz names a dead agent and recovers after restart",
       items=["shutdown_health.health"], weight=1, stage=6, challenge="crash-restart")
def readyz_agent_down(ctx):
    """SIGKILL the reporter: the orchestrator's /readyz turns 503 with reasons naming
    reporter while /livez stays 200; after restarting the reporter /readyz is 200 again."""
    dep = ctx.deployment
    dep.kill("reporter")
    dep.wait("reporter", 5.0)
    ctx.note("fault", "reporter SIGKILLed")
    last = wait_unready_naming(ctx, "reporter", keep=300)
    if last is not None:
        raise CheckFailed("/readyz must answer 503 naming the dead reporter (within 4 s)",
                          expected='503 {"status":"not_ready","reasons":[..."reporter"...]}', received=last)
    status, _h, _b = http(ctx, "orchestrator", "/livez")
    if status != 200:
        raise CheckFailed("/livez must stay 200 while an agent is down", expected=200, received=status)
    dep.restart("reporter")
    ctx.note("heal", "reporter restarted")
    if not ctx.topo.wait_ready(5.0):
        raise CheckFailed("/readyz must return to 200 after the agent restarts (within 5 s)")
