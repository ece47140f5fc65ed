"""Stage 9, overload: admission control at the orchestrator and connection caps.

Why timed from the client: a `busy` that arrives after seconds is no back-pressure at
all; SPEC §15 promises it within 100 ms however loaded the service is.
"""
from __future__ import annotations

import select
import threading
import time

from graders import oracle
from graders.checks.common import (as_dict, dig, error_problems, first_difference, http,
                                   metric_delta, optional_metric, poll_status, redact, send)
from graders.checks.registry import CheckFailed, check
from graders.client import Connection, make_request
from graders.faults.proxy import Latency

BUSY_BOUND_S = 0.100
GRADER_SLACK_S = 0.150   # the grader's own threads share two cores with four services


@check(id="backpressure.busy_queue", title="overload gets prompt busy replies; admitted tasks are correct",
       items=["backpressure.queue"], weight=2, stage=9, challenge="overload", timeout=30.0)
def busy_queue(ctx):
    """With FD_WORKERS=2, FD_QUEUE_SIZE=4 and collector replies slowed by 150 ms, 16 concurrent
    submits: some are busy (11) with retry_after_ms, each within 100 ms (+150 ms grader
    slack); every admitted task succeeds with the oracle's result; rejected tasks are not
    stored; busy_rejections_total grows (where exposed); the orchestrator stays ready.
    Then the default FD_QUEUE_SIZE of 64 (see _default_queue)."""
    topo = ctx.topo
    settings = topo.settings
    workers, queue = int(settings.get("FD_WORKERS", 4)), int(settings.get("FD_QUEUE_SIZE", 64))
    n = workers + queue + 10
    ep = topo.deployment.endpoint("orchestrator")
    inputs = [(ctx.task_id(), oracle.generate_input(ctx.rng, 6)) for _ in range(n)]
    busy0 = optional_metric(ctx, "orchestrator", "faultdrill_busy_rejections_total")
    results: list = [None] * n
    conns = [Connection(ep.host, ep.port, timeout=10.0) for _ in range(n)]
    barrier = threading.Barrier(n, timeout=10.0)

    def worker(i):
        tid, task_input = inputs[i]
        req = make_request("submit", {"task_type": "triage", "input": task_input}, token=ctx.token, task_id=tid)
        try:
            barrier.wait()
            t0 = time.monotonic()
            conns[i].send(req)
            reply = conns[i].recv(timeout=10.0)
            results[i] = (req, reply, time.monotonic() - t0)
        except Exception as exc:  # noqa: BLE001 - reported below as the candidate's failure
            results[i] = (req, exc, None)

    tox = topo.agent_proxy["collector"].add(Latency(latency_ms=150, stream="downstream"))
    ctx.note("fault", f"collector slowed by 150 ms; {n} concurrent submits (workers {workers}, queue {queue})")
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(15.0)
    finally:
        topo.agent_proxy["collector"].remove(tox)
        for c in conns:
            c.close()
    busy, admitted = [], []
    for i, r in enumerate(results):
        if r is None or isinstance(r[1], Exception):
            raise CheckFailed("a submit under load got no reply", sent=inputs[i][0],
                              received=str(r[1]) if r else "still waiting after 15 s")
        req, reply, dt = r
        if reply.get("type") == "error" and dig(reply, "error", "name") == "busy":
            busy.append((req, reply, dt))
        else:
            admitted.append((req, reply, dt))
    ctx.note("reaction", f"{len(busy)} busy, {len(admitted)} admitted; slowest busy "
             f"{max((b[2] for b in busy), default=0) * 1000:.0f} ms")
    if not busy:
        raise CheckFailed(f"{n} concurrent submits with room for {workers + queue} must get some busy replies",
                          expected="busy (11) for submits beyond FD_WORKERS + FD_QUEUE_SIZE", received="none",
                          hint="Bound the queue; reject at once instead of queueing without limit.")
    for req, reply, dt in busy:
        probs = error_problems(reply, "busy")
        if probs or not isinstance(reply["error"]["details"].get("retry_after_ms"), int) \
                or reply["error"]["details"]["retry_after_ms"] < 1:
            raise CheckFailed("busy must be well formed with retry_after_ms >= 1", received=reply)
        if dt > BUSY_BOUND_S + GRADER_SLACK_S:
            raise CheckFailed(f"a busy reply took {dt * 1000:.0f} ms", expected="within 100 ms",
                              received=f"{dt * 1000:.0f} ms", hint="Admission control must not wait for a worker.")
    if len(admitted) > workers + queue:
        raise CheckFailed("more tasks were admitted than FD_WORKERS + FD_QUEUE_SIZE",
                          expected=f"<= {workers + queue}", received=len(admitted))
    for req, reply, _dt in admitted:
        tid = req["task_id"]
        task_input = req["payload"]["input"]
        payload = as_dict(reply.get("payload"))
        if reply.get("type") != "submit_ok" or first_difference(oracle.expected_result("triage", task_input),
                                                                 payload.get("result")):
            raise CheckFailed("every admitted task must succeed with the right result", sent=tid,
                              received=redact(reply, ctx.token))
    for req, _reply, _dt in busy[:3]:
        r2, reply = send(ctx, "orchestrator", "status", {}, task_id=req["task_id"])
        if dig(reply, "error", "name") != "not_found":
            raise CheckFailed("a task answered busy must not be stored", sent=redact(r2, ctx.token),
                              expected="not_found", received=redact(reply, ctx.token))
    grown = metric_delta(busy0, optional_metric(ctx, "orchestrator", "faultdrill_busy_rejections_total"))
    if grown is not None and grown < len(busy):
        raise CheckFailed("faultdrill_busy_rejections_total must count busy replies",
                          expected=f">= {len(busy)}", received=grown)
    if not topo.wait_ready(3.0):
        status, _h, body = http(ctx, "orchestrator", "/readyz")
        raise CheckFailed("the orchestrator must stay ready under overload", received=(status, body[:200]))
    _default_queue(ctx)


DEFAULT_QUEUE_SIZE = 64                # SPEC §2: FD_QUEUE_SIZE default


def _default_queue(ctx):
    """The default queue: the orchestrator restarted with FD_QUEUE_SIZE unset (FD_WORKERS
    stays the grade's) and the collector paused, so that tasks cannot finish. One
    wait:false submit per worker, each polled until it is running (it left the queue);
    then 64 more are admitted and the next one is answered busy. Then the collector
    resumes, the admitted tasks finish, and the orchestrator is restarted with the
    grade's settings again. One connection carries the submits: no sleeping, no load."""
    topo, dep = ctx.topo, ctx.deployment
    workers = int(topo.settings.get("FD_WORKERS", 4))
    dep.stop("orchestrator")
    dep.start("orchestrator", {"FD_QUEUE_SIZE": None})
    ctx.note("action", f"orchestrator restarted with FD_QUEUE_SIZE unset (default {DEFAULT_QUEUE_SIZE}); "
             "collector paused")
    ep = dep.endpoint("orchestrator")
    admitted: list[str] = []
    dep.pause("collector")
    try:
        with Connection(ep.host, ep.port, timeout=5.0) as conn:
            def submit_one():
                tid = ctx.task_id()
                req = make_request("submit", {"task_type": "triage", "wait": False,
                                              "input": oracle.generate_input(ctx.rng, 0)},
                                   token=ctx.token, task_id=tid)
                return req, conn.request(req, timeout=5.0)

            for _ in range(workers):
                req, reply = submit_one()
                if reply.get("type") != "submit_ok":
                    raise CheckFailed("with every worker free a wait:false submit must be accepted",
                                      sent=redact(req, ctx.token), expected="submit_ok",
                                      received=redact(reply, ctx.token))
                admitted.append(req["task_id"])
                poll_status(ctx, req["task_id"], until=("running", "succeeded", "failed"), timeout=5.0)
            for i in range(DEFAULT_QUEUE_SIZE + 1):
                req, reply = submit_one()
                is_busy = reply.get("type") == "error" and dig(reply, "error", "name") == "busy"
                if i < DEFAULT_QUEUE_SIZE and reply.get("type") != "submit_ok":
                    raise CheckFailed(f"with {workers} tasks running and {i} waiting, a submit must be queued: "
                                      f"FD_QUEUE_SIZE defaults to {DEFAULT_QUEUE_SIZE}",
                                      sent=redact(req, ctx.token), expected="submit_ok (queued)",
                                      received=redact(reply, ctx.token),
                                      hint="FD_QUEUE_SIZE defaults to 64 when unset or empty (SPEC §2).")
                if i == DEFAULT_QUEUE_SIZE and not is_busy:
                    raise CheckFailed(f"with {workers} tasks running and {DEFAULT_QUEUE_SIZE} waiting "
                                      "(the default FD_QUEUE_SIZE), one more submit must be busy",
                                      sent=redact(req, ctx.token), expected="error 11 busy",
                                      received=redact(reply, ctx.token),
                                      hint="FD_QUEUE_SIZE defaults to 64 when unset or empty (SPEC §2).")
                if not is_busy:
                    admitted.append(req["task_id"])
        ctx.note("reaction", f"default queue: {len(admitted)} admitted "
                 f"({workers} running + {len(admitted) - workers} queued), the next one busy")
    finally:
        dep.resume("collector")
        try:
            if admitted:    # let them finish: the restart below then drains nothing
                poll_status(ctx, admitted[-1], timeout=10.0)
        except CheckFailed as exc:
            ctx.note("note", f"the admitted tasks did not all finish before the restart: {exc.message}")
        finally:
            dep.stop("orchestrator")
            dep.start("orchestrator", None)
            topo.wait_ready(5.0)


@check(id="backpressure.connection_cap", title="connections over FD_MAX_CONNECTIONS get busy and are closed",
       items=["backpressure.connection_cap"], weight=1, stage=9, challenge="overload")
def connection_cap(ctx):
    """With FD_MAX_CONNECTIONS=32, open 40 connections to the reporter: the extra ones get
    a busy frame (in_reply_to null) and are closed; the others answer hello; once they
    close, a new connection works. Then the default: restarted with FD_MAX_CONNECTIONS
    unset, the reporter keeps 128 connections and refuses the 129th (see
    _default_connection_cap). Connections the orchestrator holds open to the reporter
    (counted at the reporter's proxy) occupy slots too and are allowed for: whether they
    should still be open is security.connections_closed's question, not this one's."""
    topo = ctx.topo
    cap = int(topo.settings.get("FD_MAX_CONNECTIONS", 128))
    ep = topo.deployment.endpoint("reporter")
    total = cap + 8
    held = topo.agent_proxy["reporter"].open_connections
    if held:
        ctx.note("note", f"the orchestrator holds {held} connection(s) to the reporter; they count against the cap")
    conns = []
    try:
        for _ in range(total):
            conns.append(Connection(ep.host, ep.port, timeout=5.0))
        time.sleep(0.3)
        readable, _w, _x = select.select([c.sock for c in conns], [], [], 0.5)
        rejected = [c for c in conns if c.sock in readable]
        accepted = [c for c in conns if c.sock not in readable]
        busy_frames = []
        for c in rejected:
            try:
                busy_frames.append(c.recv(timeout=2.0))
            except Exception as exc:  # noqa: BLE001 - closed without a frame: reported below
                busy_frames.append(f"{type(exc).__name__}: {exc}")
        ctx.note("reaction", f"{len(accepted)} of {total} connections kept, {len(rejected)} refused")
        if not rejected:
            raise CheckFailed(f"{total} connections with FD_MAX_CONNECTIONS={cap}: the extra ones must be refused",
                              expected="busy frame then close", received="all kept open")
        for f in busy_frames:
            if not isinstance(f, dict) or error_problems(f, "busy") or f.get("in_reply_to") is not None:
                raise CheckFailed("a connection over the cap must get a busy frame with in_reply_to null",
                                  expected="error 11 busy, in_reply_to null", received=f)
        low = max(0, cap - 4 - held)
        if len(accepted) > cap or len(accepted) < low:
            raise CheckFailed(f"the cap is {cap} open connections", expected=f"{low}..{cap} kept "
                              f"({held} held by the orchestrator when the check began)",
                              received=len(accepted))
        for c in rejected:
            if not c.wait_closed(3.0):
                raise CheckFailed("a refused connection must be closed after the busy frame")
        hello = make_request("hello", {"versions": [1], "role": "orchestrator"}, token=ctx.token)
        for c in accepted[:3]:
            reply = c.request(hello, timeout=5.0)
            if reply.get("type") != "hello_ok":
                raise CheckFailed("an accepted connection must be served", received=redact(reply, ctx.token))
    finally:
        for c in conns:
            c.close()
    time.sleep(0.3)
    req, reply = send(ctx, "reporter", "hello", {"versions": [1], "role": "orchestrator"})
    if reply.get("type") != "hello_ok":
        raise CheckFailed("after the extra connections close, new connections must be served",
                          received=redact(reply, ctx.token))
    _default_connection_cap(ctx)


DEFAULT_MAX_CONNECTIONS = 128          # SPEC §2: FD_MAX_CONNECTIONS default
FIRST_REFUSAL_S = 2.0                  # bound on the first busy frame (a pass takes ms)
STRAGGLER_S = 0.2                      # then the other refusals, sent at the same moment


def _default_connection_cap(ctx):
    """The default cap: the reporter restarted with FD_MAX_CONNECTIONS unset keeps 128
    open connections (fewer only by those the orchestrator holds through its proxy) and
    answers the 129th with busy; then it is restarted with the grade's settings again.
    No sleeping: the refusals are read as soon as they arrive."""
    topo, dep = ctx.topo, ctx.deployment
    dep.stop("reporter")
    dep.start("reporter", {"FD_MAX_CONNECTIONS": None})
    ctx.note("action", "reporter restarted with FD_MAX_CONNECTIONS unset (default 128)")
    conns = []
    try:
        ep = dep.endpoint("reporter")
        held = topo.agent_proxy["reporter"].open_connections
        total = DEFAULT_MAX_CONNECTIONS + 1
        for _ in range(total):
            conns.append(Connection(ep.host, ep.port, timeout=5.0))
        socks = [c.sock for c in conns]
        readable, _w, _x = select.select(socks, [], [], FIRST_REFUSAL_S)
        if readable:
            more, _w, _x = select.select(socks, [], [], STRAGGLER_S)
            readable = set(readable) | set(more)
        held = max(held, topo.agent_proxy["reporter"].open_connections)
        rejected = [c for c in conns if c.sock in readable]
        kept = total - len(rejected)
        ctx.note("reaction", f"default cap: {kept} of {total} connections kept "
                 f"({held} held by the orchestrator)")
        if not rejected:
            raise CheckFailed(f"{total} connections to a reporter started without FD_MAX_CONNECTIONS: "
                              "the one over the default cap must be refused",
                              expected=f"busy frame on connection {total} (default cap {DEFAULT_MAX_CONNECTIONS})",
                              received=f"all {total} kept open after {FIRST_REFUSAL_S:.0f} s",
                              hint="FD_MAX_CONNECTIONS defaults to 128 when unset or empty (SPEC §2).")
        low = DEFAULT_MAX_CONNECTIONS - held
        if not low <= kept <= DEFAULT_MAX_CONNECTIONS:
            raise CheckFailed(f"the default cap is {DEFAULT_MAX_CONNECTIONS} open connections",
                              expected=f"{low}..{DEFAULT_MAX_CONNECTIONS} kept ({held} held by the orchestrator)",
                              received=kept,
                              hint="FD_MAX_CONNECTIONS defaults to 128 when unset or empty (SPEC §2).")
        frame = rejected[-1].recv(timeout=2.0)
        if error_problems(frame, "busy") or frame.get("in_reply_to") is not None:
            raise CheckFailed("a connection over the default cap must get a busy frame with in_reply_to null",
                              expected="error 11 busy, in_reply_to null", received=frame)
    finally:
        for c in conns:
            c.close()
        dep.stop("reporter")
        dep.start("reporter", None)
