"""Stages 6-7, crash-restart and corrupt-memory: durability, quarantine, retention.

Why damage files directly: the layout is fixed by SPEC §11.1 precisely so that a grader
can crash a service, rewrite its records with every kind of corruption, restart it and
check the four promised reactions (keep serving, quarantine the same bytes, log, count).
"Count" is read from faultdrill_memory_corruptions_total when the service exposes it; a
service without that metric loses the metrics check for it, not these (one requirement,
one check), and the timeline says the count was not used.
"""
from __future__ import annotations

import json
import time

from graders import oracle
from graders.checks.common import (executed_again, expect_error, expect_ok, first_difference, http,
                                   metric_delta, optional_metric, read_record, redact, send, submit,
                                   wait_for_logs)
from graders.checks.registry import CheckFailed, check

SIXTEEN_MIB = 16 * 1024 * 1024


@check(id="memory.durable_task_log", title="acknowledged tasks survive SIGKILL of the orchestrator",
       items=["memory.records", "memory.durability"], weight=2, stage=6, challenge="crash-restart")
def durable_task_log(ctx):
    """A task succeeds; its record is at records/<task_id>.json; the orchestrator is
    SIGKILLed and restarted; the same payload replays (replay:true, same result, no agent
    work) and a different payload is still a conflict."""
    dep = ctx.deployment
    task_input = oracle.generate_input(ctx.rng, 20)
    tid = ctx.task_id()
    req, reply = submit(ctx, tid, task_input)
    p1 = expect_ok(reply, "submit", sent=req, token=ctx.token)
    rel = f"records/{tid}.json"
    if rel not in dep.memory_files("orchestrator"):
        raise CheckFailed("the orchestrator's task record must be at $FD_MEMORY_DIR/records/<task_id>.json",
                          expected=rel, received=dep.memory_files("orchestrator")[:10])
    dep.kill("orchestrator")
    dep.wait("orchestrator", 5.0)
    ctx.note("fault", "orchestrator SIGKILLed right after acknowledging a task")
    dep.restart("orchestrator")
    ctx.note("heal", "orchestrator restarted")
    ctx.topo.wait_ready(5.0)
    agents = ("collector", "analyzer", "reporter")
    starts = {r: len(ctx.topo.agent_proxy[r].events) for r in agents}
    executed0 = {r: optional_metric(ctx, r, "faultdrill_steps_executed_total") for r in agents}
    req, reply = submit(ctx, tid, task_input)
    p2 = expect_ok(reply, "submit", sent=req, token=ctx.token, what="resubmitting after a crash")
    if reply.get("replay") is not True or first_difference(p1.get("result"), p2.get("result")):
        raise CheckFailed("after a restart the same task must be replayed from the durable task log",
                          expected={"replay": True, "result": p1.get("result")}, received=redact(reply, ctx.token),
                          hint="Write the record durably (temp file, fsync, rename, fsync dir) before replying.")
    again = executed_again(ctx, starts, tid)
    if again:
        raise CheckFailed("a replayed task must not execute any step", expected="no agent reply with replay:false",
                          received=again, hint="Answer from the durable task log; do not re-run the pipeline.")
    executed = {r: optional_metric(ctx, r, "faultdrill_steps_executed_total") for r in agents}
    if any(metric_delta(executed0[r], executed[r]) for r in agents):
        raise CheckFailed("a replayed task must not execute any step (faultdrill_steps_executed_total grew)",
                          expected=executed0, received=executed)
    req, reply = submit(ctx, tid, dict(task_input, source=task_input["source"] + "2"))
    expect_error(reply, "idempotency_conflict", sent=req, token=ctx.token, what="conflict after restart")


def _corruptions(tid_list, valid_record: bytes, valid_obj: dict, other_task_id: str):
    """(kind, task_id, bytes or None for 'replace by a directory'). `valid_obj` is the
    parsed record (read_record has checked it is a JSON object); `other_task_id` a fresh
    id (graders/ids.py) for the record that claims another task."""
    kinds = [
        ("not JSON", b"\x00garbage{{{ not json"),
        ("truncated JSON", valid_record[: len(valid_record) // 2]),
        ("not UTF-8", b'{"format": 1, "task_id": "\xff\xfe"}'),
        ("a JSON array", b"[1, 2, 3]"),
        ("task_id of another file", None),   # filled below
        ("over 16 MiB", None),
        ("unreadable (a directory)", None),
    ]
    out = []
    for (kind, data), tid in zip(kinds, tid_list):
        if kind == "task_id of another file":
            rec = dict(valid_obj, task_id=other_task_id)
            data = json.dumps(rec).encode()
        elif kind == "over 16 MiB":
            data = b" " * (SIXTEEN_MIB + 1) + valid_record
        out.append((kind, tid, data))
    return out


def _read_or_none(dep, role: str, rel: str) -> bytes | None:
    """A quarantined file's bytes, None when it cannot be read (it may be a directory the
    service moved aside, or be gone again: both are judged by the caller, not crashes)."""
    try:
        return dep.read_memory(role, rel)
    except OSError:
        return None


def _verify_quarantine(ctx, role: str, damaged, corrupt0: float, log_start: int):
    dep = ctx.deployment
    status, _h, body = http(ctx, role, "/readyz")
    if status != 200:
        raise CheckFailed(f"{role} must stay ready with corrupt memory", expected=200,
                          received=(status, body[:300]))
    files = dep.memory_files(role)
    quarantined = [f for f in files if f.startswith("quarantine/")]
    problems = []
    for kind, tid, data in damaged:
        name = f"{tid}.json"
        q = [f for f in quarantined if f.split("/", 1)[1].startswith(name)]
        if data is None:
            continue  # a directory: may be moved or left and skipped
        if not q:
            problems.append(f"{kind}: no file starting with {name} in quarantine/")
            continue
        if not any(_read_or_none(dep, role, f) == data for f in q):
            problems.append(f"{kind}: the quarantined file does not hold the same bytes")
        if f"records/{name}" in files:
            problems.append(f"{kind}: records/{name} is still in place")
    if problems:
        raise CheckFailed(f"{role}: corrupt records must be moved to quarantine/ unchanged",
                          expected="quarantine/<task_id>.json... with the original bytes",
                          received=problems + quarantined[:10],
                          hint="Move (rename) the file aside; never delete or rewrite it.")
    expected_n = len(damaged)
    got = metric_delta(corrupt0, optional_metric(ctx, role, "faultdrill_memory_corruptions_total"))
    if got is not None and got < expected_n:
        raise CheckFailed(f"{role}: faultdrill_memory_corruptions_total must grow by one per corrupt file",
                          expected=f">= {expected_n}", received=got)
    lines = wait_for_logs(ctx, role, log_start, lambda r: r.get("event") == "memory_corrupt", want=expected_n)
    if len(lines) < expected_n or any(r.get("level") != "error" for r in lines):
        raise CheckFailed(f"{role}: one memory_corrupt log line at level error per corrupt file",
                          expected=f">= {expected_n} lines with level error", received=lines[:5])


@check(id="memory.corrupt_agent", title="corrupt agent records are quarantined; the work re-executes",
       items=["memory.corruption"], weight=2, stage=7, challenge="corrupt-memory", timeout=30.0)
def corrupt_agent(ctx):
    """Seven collector records are damaged while it is stopped (garbage, truncated,
    non-UTF-8, array, wrong task_id, over 16 MiB, a directory); after restart the collector
    is ready, quarantines each file byte for byte, counts and logs each, and a collect for a
    damaged task executes afresh with the oracle's output."""
    dep = ctx.deployment
    inputs = {}
    for _ in range(7):
        tid = ctx.task_id()
        inputs[tid] = oracle.generate_input(ctx.rng, 6)
        req, reply = send(ctx, "collector", "collect",
                          {"source": inputs[tid]["source"], "records": inputs[tid]["records"]}, task_id=tid)
        expect_ok(reply, "collect", sent=req, token=ctx.token)
    tids = list(inputs)
    files = dep.memory_files("collector")
    missing = [t for t in tids if f"records/{t}.json" not in files]
    if missing:
        raise CheckFailed("agent records must be at $FD_MEMORY_DIR/records/<task_id>.json",
                          expected=[f"records/{t}.json" for t in missing[:3]], received=files[:10])
    valid, valid_obj = read_record(ctx, "collector", tids[0], what="a stored collect")
    damaged = _corruptions(tids, valid, valid_obj, ctx.task_id())
    dep.stop("collector")
    for kind, tid, data in damaged:
        if data is None:
            dep.make_unreadable("collector", f"records/{tid}.json")
        else:
            dep.write_memory("collector", f"records/{tid}.json", data)
    ctx.note("fault", f"collector stopped; {len(damaged)} records damaged: " + ", ".join(k for k, _, _ in damaged))
    log_start = len(dep.logs("collector", "stderr"))
    dep.start("collector")
    ctx.note("heal", "collector restarted")
    _verify_quarantine(ctx, "collector", damaged, 0.0, log_start)
    for kind, tid, _data in damaged[:2]:
        payload = {"source": inputs[tid]["source"], "records": inputs[tid]["records"]}
        req, reply = send(ctx, "collector", "collect", payload, task_id=tid)
        out = expect_ok(reply, "collect", sent=req, token=ctx.token, what=f"collect for a task whose record was {kind}")
        if reply.get("replay") is not False or first_difference(oracle.collect(payload), out):
            raise CheckFailed("a task whose record was corrupt is unknown: it executes afresh",
                              expected={"replay": False, "payload": oracle.collect(payload)},
                              received=redact(reply, ctx.token))


@check(id="memory.corrupt_orchestrator", title="corrupt task records are quarantined; the task re-runs",
       items=["memory.corruption"], weight=1, stage=7, challenge="corrupt-memory")
def corrupt_orchestrator(ctx):
    """Two orchestrator task records are damaged while it is stopped (garbage, wrong
    task_id); after restart it is ready, quarantines, counts and logs both, and
    resubmitting a damaged task runs it again (replay:false) with the right result."""
    dep = ctx.deployment
    inputs = {}
    for _ in range(2):
        tid = ctx.task_id()
        inputs[tid] = oracle.generate_input(ctx.rng, 8)
        req, reply = submit(ctx, tid, inputs[tid])
        expect_ok(reply, "submit", sent=req, token=ctx.token)
    tids = list(inputs)
    read_record(ctx, "orchestrator", tids[0], what="a succeeded task")
    _valid, rec = read_record(ctx, "orchestrator", tids[1], what="a succeeded task")
    rec = dict(rec, task_id=ctx.task_id())
    damaged = [("not JSON", tids[0], b"}{ definitely not a record"),
               ("task_id of another file", tids[1], json.dumps(rec).encode())]
    dep.stop("orchestrator")
    for _kind, tid, data in damaged:
        dep.write_memory("orchestrator", f"records/{tid}.json", data)
    ctx.note("fault", "orchestrator stopped; 2 task records damaged")
    log_start = len(dep.logs("orchestrator", "stderr"))
    dep.start("orchestrator")
    ctx.topo.wait_ready(5.0)
    _verify_quarantine(ctx, "orchestrator", damaged, 0.0, log_start)
    tid = tids[0]
    req, reply = submit(ctx, tid, inputs[tid])
    p = expect_ok(reply, "submit", sent=req, token=ctx.token, what="resubmitting a task whose record was corrupt")
    if reply.get("replay") is not False or first_difference(oracle.expected_result("triage", inputs[tid]), p.get("result")):
        raise CheckFailed("a task whose record was corrupt is unknown: it runs again",
                          expected={"replay": False}, received=redact(reply, ctx.token))


@check(id="memory.retention", title="FD_MEMORY_RETENTION keeps the newest N records",
       items=["memory.pruning"], weight=1, stage=7, challenge="corrupt-memory")
def retention(ctx):
    """The reporter restarted with FD_MEMORY_RETENTION=3 stores five new reports: only the
    three newest remain in records/; where exposed, faultdrill_memory_records is 3 and
    faultdrill_memory_pruned_total grew."""
    dep = ctx.deployment
    dep.stop("reporter")
    dep.start("reporter", {"FD_MEMORY_RETENTION": "3"})
    ctx.note("action", "reporter restarted with FD_MEMORY_RETENTION=3")
    try:
        pruned0 = optional_metric(ctx, "reporter", "faultdrill_memory_pruned_total")
        tids = []
        for _ in range(5):
            tid = ctx.task_id()
            task_input = oracle.generate_input(ctx.rng, 6)
            analysis = oracle.run_route(["collect", "analyze"], task_input)["analyze"]
            req, reply = send(ctx, "reporter", "report",
                              {"analysis": analysis, "thresholds": {"error_permille": 50, "p95_latency_ms": 1000}},
                              task_id=tid)
            expect_ok(reply, "report", sent=req, token=ctx.token)
            tids.append(tid)
            time.sleep(0.01)
        records = sorted(f for f in dep.memory_files("reporter") if f.startswith("records/") and f.endswith(".json"))
        want = sorted(f"records/{t}.json" for t in tids[-3:])
        if records != want:
            raise CheckFailed("exactly the three newest records must remain", expected=want, received=records[:10],
                              hint="Prune by smallest seq after each store until N remain.")
        gauge = optional_metric(ctx, "reporter", "faultdrill_memory_records")
        pruned = metric_delta(pruned0, optional_metric(ctx, "reporter", "faultdrill_memory_pruned_total"))
        if (gauge is not None and gauge != 3) or (pruned is not None and pruned < 2):
            raise CheckFailed("faultdrill_memory_records must be 3 and faultdrill_memory_pruned_total must grow",
                              expected={"memory_records": 3, "pruned": ">= 2"},
                              received={"memory_records": gauge, "pruned": pruned})
    finally:
        dep.stop("reporter")
        dep.start("reporter", None)
        ctx.note("heal", "reporter back to the default retention")
