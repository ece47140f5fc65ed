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


#: The orchestrator is restarted with these settings for the backoff check: many attempts
#: with a low cap give many gaps quickly (d = 100, then 200 ms six times per task).
BACKOFF_ENV = {"FD_RETRY_MAX_ATTEMPTS": "8", "FD_RETRY_BASE_MS": "100", "FD_RETRY_CAP_MS": "200",
               "FD_TASK_DEADLINE_MS": "8000", "FD_ATTEMPT_TIMEOUT_MS": "1000"}
BACKOFF_TASKS = 4
LOWER_SLACK_MS = 10          # SPEC §10.3: every gap >= d/2 - 10 ms
UPPER_SLACK_BASE_MS = 100    # every gap <= d + this + 4 x the grader's worst scheduling delay
UPPER_SLACK_MAX_MS = 500     # ...at most this (an uncapped d reaches 1600 ms by attempt 6)


def backoff_d(s: dict, n: int) -> float:
    """SPEC §10.3: d before attempt n+1 (n >= 1 attempts made)."""
    return min(s["FD_RETRY_CAP_MS"], s["FD_RETRY_BASE_MS"] * 2 ** (n - 1))


def gap_problems(gaps_ms: list[float], s: dict, upper_slack_ms: float) -> list[str]:
    """What is wrong with the waits before attempts 2..n of one step (`gaps_ms[k]` is the
    wait before attempt k+2), under equal jitter: d/2 - 10 ms <= gap <= d + slack."""
    probs = []
    for k, gap in enumerate(gaps_ms):
        n = k + 1
        d = backoff_d(s, n)
        if gap < d / 2 - LOWER_SLACK_MS:
            probs.append(f"the wait before attempt {n + 1} was {gap:.0f} ms; at least d/2 = {d / 2:.0f} ms "
                         f"(minus {LOWER_SLACK_MS} ms) is required")
        elif gap > d + upper_slack_ms:
            probs.append(f"the wait before attempt {n + 1} was {gap:.0f} ms; at most d = {d:.0f} ms "
                         f"(+{upper_slack_ms:.0f} ms slack) is allowed: d = min(FD_RETRY_CAP_MS, "
                         "FD_RETRY_BASE_MS x 2^(n-1))")
    return probs


def full_jitter_miss_probability(s: dict, gaps: int, per_task: int, overhead_ms: float = 30.0) -> float:
    """Probability that full jitter ([0, d]) keeps every one of `gaps` gaps above the lower
    bound, when the orchestrator adds at most `overhead_ms` to each wait: a gap passes with
    probability 1/2 + (10 + overhead)/d."""
    p = 1.0
    for k in range(gaps):
        d = backoff_d(s, k % per_task + 1)
        p *= min(1.0, 0.5 + (LOWER_SLACK_MS + overhead_ms) / d)
    return p


class _SchedulingProbe:
    """How late the grader's own threads wake up while the check runs (the measured part
    of the upper bound's slack): a thread sleeps 5 ms in a loop and keeps the worst
    overshoot."""

    def __init__(self):
        import threading
        self.worst = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fd-sched-probe")
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            t0 = time.monotonic()
            time.sleep(0.005)
            self.worst = max(self.worst, time.monotonic() - t0 - 0.005)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(1.0)
        return self.worst * 1000


@check(id="orchestration.retry_backoff", title="retries are bounded, spaced by equal-jitter backoff, capped",
       items=["orchestration.retries"], weight=2, stage=5, challenge="dropped-sockets", timeout=40.0)
def retry_backoff(ctx):
    """The orchestrator is restarted with FD_RETRY_MAX_ATTEMPTS=8, BASE 100, CAP 200 and
    its analyzer address pointing straight at a fake analyzer that answers every analyze
    internal_error (14, retryable). Four tasks: each must make exactly 8 attempts (new
    msg_id each, same task_id) and end upstream_failed naming analyze/analyzer, attempts 8,
    cause 14. Each of the 28 waits (timed from just before the fake hands its reply to the
    kernel to the kernel's receive timestamp of the next attempt: none of the grader's own
    delays) must be >= d/2 - 10 ms and <= d + slack, d = min(cap, base x 2^(n-1)); slack =
    100 ms + 4 x the grader's worst measured scheduling delay, at most 500 ms. Full jitter
    ([0, d]) passes all 28 lower bounds with probability <= 1.3e-4 even if the
    orchestrator adds 30 ms to every wait; a missing cap shows as waits of 400-1600 ms."""
    from graders.faults.fake_agent import FakeAgent

    dep = ctx.deployment
    s = {k: int(v) for k, v in BACKOFF_ENV.items()}
    per_task = s["FD_RETRY_MAX_ATTEMPTS"] - 1
    direct = dep.proxy_host == "127.0.0.1"
    fake = FakeAgent("analyzer", "internal_error")
    probe = _SchedulingProbe()
    gaps_all: list[float] = []
    problems: list[str] = []
    try:
        dep.stop("orchestrator")
        env = dict(BACKOFF_ENV)
        if direct:
            env["FD_ANALYZER_ADDR"] = f"{fake.address[0]}:{fake.address[1]}"
        else:   # containers cannot reach the grader's loopback: through the analyzer's proxy
            ctx.topo.agent_proxy["analyzer"].set_upstream(*fake.address)
        dep.start("orchestrator", env)
        ctx.topo.wait_ready(5.0)
        ctx.note("fault", "orchestrator restarted with 8 attempts, base 100 ms, cap 200 ms; its analyzer "
                 "is a fake agent that answers every analyze internal_error (14, retryable)")
        for _ in range(BACKOFF_TASKS):
            tid = ctx.task_id()
            first = len(fake.work_arrivals)
            req, reply = submit(ctx, tid, oracle.generate_input(ctx.rng, 6), timeout=15.0)
            time.sleep(0.1)
            with fake._lock:
                attempts = [r for r in fake.requests if r.get("type") != "hello"][first:]
                arrivals = fake.work_arrivals[first:]
                sent = fake.reply_sent[first:]
            mine = [i for i, r in enumerate(attempts) if r.get("task_id") == tid]
            gaps = [(arrivals[b] - sent[a]) * 1000 for a, b in zip(mine, mine[1:])
                    if a < len(sent) and b < len(arrivals)]
            gaps_all += gaps
            slack = min(UPPER_SLACK_MAX_MS, UPPER_SLACK_BASE_MS + 4 * probe.worst * 1000)
            problems = gap_problems(gaps, s, slack)
            ctx.note("reaction", f"{len(mine)} analyze attempts; waits " + ", ".join(f"{g:.0f}" for g in gaps) + " ms")
            if problems:
                raise CheckFailed("; ".join(problems[:3]),
                                  expected="equal jitter: each wait uniform in [d/2, d], d = min(FD_RETRY_CAP_MS, "
                                           "FD_RETRY_BASE_MS x 2^(n-1)) = 100, then 200 ms",
                                  received={"waits_ms": [round(g) for g in gaps], "upper_slack_ms": round(slack)},
                                  hint="Full jitter [0, d] is not allowed; neither is retrying without a wait "
                                       "or letting d grow past the cap.")
            err = expect_error(reply, "upstream_failed", sent=req, token=ctx.token,
                               what="every analyze attempt failed with a retryable error",
                               hint="After the last attempt, answer upstream_failed with the last cause.")
            d = err["details"]
            if d.get("step") != "analyze" or d.get("agent") != "analyzer" or dig(d, "cause", "code") != 14:
                raise CheckFailed("upstream_failed must name step analyze, agent analyzer and the last cause "
                                  "(internal_error)", expected={"step": "analyze", "agent": "analyzer",
                                                                "cause": {"code": 14}}, received=d)
            if len(mine) != s["FD_RETRY_MAX_ATTEMPTS"] or d.get("attempts") != len(mine):
                raise CheckFailed("the step must be attempted exactly FD_RETRY_MAX_ATTEMPTS times and report it",
                                  expected=s["FD_RETRY_MAX_ATTEMPTS"],
                                  received={"seen_at_agent": len(mine), "details.attempts": d.get("attempts")})
            ids = [attempts[i].get("msg_id") for i in mine]
            if len(set(ids)) != len(ids):
                raise CheckFailed("each attempt must use a new msg_id", received=ids)
    finally:
        worst = probe.stop()
        try:
            dep.stop("orchestrator")
        finally:
            if not direct:
                real = dep.endpoint("analyzer")
                ctx.topo.agent_proxy["analyzer"].set_upstream(real.host, real.port)
                ctx.topo.agent_proxy["analyzer"].close_connections()
            fake.close()
            dep.start("orchestrator", None)
            ctx.topo.wait_ready(5.0)
            ctx.note("heal", "orchestrator restarted with its usual settings and analyzer")
    ctx.note("reaction", f"{len(gaps_all)} waits observed; the grader's worst scheduling delay was "
             f"{worst:.1f} ms; kernel receive timestamps {'used' if fake.kernel_timestamps else 'unavailable'}; "
             f"full jitter would pass with probability <= "
             f"{full_jitter_miss_probability(s, len(gaps_all), per_task):.1e}")


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


@check(id="orchestration.no_retry_definite", title="every definite agent error ends the task at once",
       items=["orchestration.retries", "routing.halt_on_error"], weight=1, stage=5,
       challenge="dropped-sockets")
def no_retry_definite(ctx):
    """The collector is a fake agent that refuses work with each definite, non-retryable
    error of SPEC §10.3 in turn - unauthorized (20), schema_violation (21),
    unsupported_version (22), idempotency_conflict (30), not_supported (10),
    malformed_frame (12), frame_too_large (13, then closes the connection) - one task per
    error: each task fails with upstream_failed naming collect/collector, attempts 1 and
    that error as cause, and the agent saw exactly one collect for it."""
    from graders.faults.fake_agent import DEFINITE_REFUSALS

    names = list(DEFINITE_REFUSALS)       # frame_too_large last: it closes the connection
    with fake_upstream(ctx, "collector", f"refuse_{names[0]}") as fake:
        for name in names:
            fake.mode = f"refuse_{name}"
            code = DEFINITE_REFUSALS[name][0]
            tid = ctx.task_id()
            req, reply = submit(ctx, tid, oracle.generate_input(ctx.rng, 6))
            time.sleep(0.15)
            seen = [r for r in fake.work_requests() if r.get("task_id") == tid]
            err = expect_error(reply, "upstream_failed", sent=req, token=ctx.token,
                               what=f"the collector answered {name} ({code})")
            d = err["details"]
            if dig(d, "cause", "code") != code or d.get("attempts") != 1 or d.get("step") != "collect" \
                    or d.get("agent") != "collector":
                raise CheckFailed(f"a definite error ({name}, {code}) must end the step at once with that "
                                  "error as cause", expected={"step": "collect", "agent": "collector",
                                                               "attempts": 1, "cause": {"code": code}},
                                  received=d, hint="Never retry unauthorized, schema_violation, "
                                  "unsupported_version, idempotency_conflict, not_supported, "
                                  "malformed_frame or frame_too_large (SPEC §10.3).")
            if len(seen) != 1:
                raise CheckFailed(f"exactly one collect may be sent after a definite error ({name}, {code})",
                                  expected=1, received=len(seen))
    ctx.note("reaction", f"{len(names)} definite errors, each ended its task after one attempt")


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
