"""Fault matrix: each fault type on each hop; did every task complete exactly once?

Why: the SPEC's retry and idempotency rules (§10.3, §10.4, §9.3) exist so that a client
that resubmits after a failure gets every task done exactly once, whatever the network or
the processes did. For each (fault, hop) cell the reference runs behind the grader's fault
proxies (graders.topology.Topology): the fault is injected, K tasks are submitted at once,
the fault is healed, every task not yet acknowledged is resubmitted (same task_id, same
payload) until it succeeds, and then the cell checks (a) every task's result equals the
oracle's and its status is `succeeded`, and (b) each agent *executed* each step exactly
K times in the cell (the `faultdrill_steps_executed_total` counter; replays from memory do
not count). Hops: client->orchestrator and orchestrator->each agent.
"""
from __future__ import annotations

import random
import threading
import time

from graders import oracle
from graders.checks import promtext
from graders.client import ClientError, http_get, make_request
from graders.drivers.process import ProcessDriver
from graders.faults.proxy import (DropReply, Duplicate, Latency, Partition, ResetPeer, Slicer,
                                  Timeout)
from graders.manifest import load_manifest
from graders.topology import AGENTS, Topology

from .systems import REFERENCE

__all__ = ["FAULTS", "HOPS", "run_matrix"]

HOPS = ("client", "collector", "analyzer", "reporter")
STEP_OF = {"collector": "collect", "analyzer": "analyze", "reporter": "report"}
HOP_ROLE = {"client": "orchestrator", "collector": "collector", "analyzer": "analyzer",
            "reporter": "reporter"}
#: name -> how to inject it on a hop: ("toxic", factory) or ("proxy_down",) or ("process", action)
FAULTS = {
    "latency_over_attempt_timeout": ("toxic", lambda: Latency(latency_ms=1300)),
    "drop_reply": ("toxic", lambda: DropReply()),
    "duplicate_request": ("toxic", lambda: Duplicate()),
    "reset_peer": ("toxic", lambda: ResetPeer(timeout_ms=0)),
    "blackhole": ("toxic", lambda: Timeout(timeout_ms=0)),
    "partition": ("toxic", lambda: Partition()),
    "slicer": ("toxic", lambda: Slicer(average_size=7, size_variation=5, delay_us=200)),
    "refused": ("proxy_down",),
    "process_killed": ("process", "kill"),
    "process_paused": ("process", "pause"),
}


def _executed(topo: Topology) -> dict[str, float]:
    out = {}
    for role in AGENTS:
        ep = topo.endpoint(role)
        try:
            status, _h, body = http_get(ep.host, ep.http_port, "/metrics", timeout=3)
            fams, _problems = promtext.parse(body.decode("utf-8", "replace"))
            out[role] = promtext.value(fams, "faultdrill_steps_executed_total", step=STEP_OF[role])
        except Exception:   # noqa: BLE001 - unreachable agent: unknown count
            out[role] = float("nan")
    return out


def _submit(topo: Topology, frame: dict, timeout: float) -> dict | Exception:
    try:
        with topo.connect(timeout=timeout) as conn:
            return conn.request(frame, timeout=timeout)
    except (ClientError, OSError) as exc:
        return exc


def _ensure_running(topo: Topology) -> None:
    for role in (*AGENTS, "orchestrator"):
        if not topo.deployment.running(role):
            topo.deployment.start(role, timeout=10)


def run_cell(topo: Topology, fault: str, hop: str, *, tasks: int, seed: int, cell_no: int) -> dict:
    rng = random.Random(seed * 1000 + cell_no)
    inputs = [oracle.generate_input(rng, 8) for _ in range(tasks)]
    frames = [make_request("submit", {"task_type": "triage", "input": inp}, token=topo.token,
                           task_id=f"mx{seed}-{cell_no}-{k}") for k, inp in enumerate(inputs)]
    before = _executed(topo)
    kind = FAULTS[fault]
    role = HOP_ROLE[hop]
    proxy = topo.client_proxy if hop == "client" else topo.agent_proxy[hop]
    restarted: set[str] = set()
    if kind[0] == "toxic":
        proxy.add(kind[1]())
    elif kind[0] == "proxy_down":
        proxy.set_down(True)
    elif kind[1] == "kill":
        topo.deployment.kill(role)
        restarted.add(role)
    else:
        topo.deployment.pause(role)
    first: list = [None] * tasks
    timeout = topo.default_timeout

    def go(k: int) -> None:
        first[k] = _submit(topo, frames[k], timeout)
    threads = [threading.Thread(target=go, args=(k,), daemon=True) for k in range(tasks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    # heal
    topo.heal()
    _ensure_running(topo)
    topo.wait_ready(10)
    acked = [isinstance(r, dict) and r.get("type") == "submit_ok" for r in first]
    final: list = list(first)
    resubmits = 0
    deadline = time.monotonic() + 30
    for k in range(tasks):
        while not (isinstance(final[k], dict) and final[k].get("type") == "submit_ok"):
            if time.monotonic() > deadline:
                break
            if isinstance(final[k], dict) and final[k].get("type") == "error" and \
                    final[k]["error"].get("name") in ("in_progress", "busy"):
                time.sleep(min(1.0, final[k]["error"]["details"].get("retry_after_ms", 100) / 1000))
            resubmits += 1
            final[k] = _submit(topo, frames[k], timeout)
            if isinstance(final[k], dict) and final[k].get("type") == "error" and \
                    final[k]["error"].get("name") == "idempotency_conflict":
                break
    correct = 0
    for k in range(tasks):
        r = final[k]
        if isinstance(r, dict) and r.get("type") == "submit_ok" and \
                r["payload"].get("result") == oracle.expected_result("triage", inputs[k]):
            status = _submit(topo, make_request("status", {}, token=topo.token,
                                                task_id=frames[k]["task_id"]), 10)
            if isinstance(status, dict) and status.get("payload", {}).get("status") == "succeeded":
                correct += 1
    after = _executed(topo)
    executions = {}
    for r in AGENTS:
        base = 0.0 if r in restarted else before[r]
        executions[r] = after[r] - base
    exactly_once = correct == tasks and all(v == tasks for v in executions.values())
    return {"fault": fault, "hop": hop, "tasks": tasks, "acknowledged_before_heal": sum(acked),
            "completed_after_heal": correct, "resubmits": resubmits,
            "executions": {STEP_OF[r]: (None if v != v else int(v)) for r, v in executions.items()},
            "exactly_once": exactly_once}


def run_matrix(seed: int, *, tasks: int = 3, faults: list[str] | None = None,
               hops: list[str] | None = None, log=print) -> dict:
    faults = faults or list(FAULTS)
    hops = hops or list(HOPS)
    cells = []
    t0 = time.monotonic()
    with Topology.up(load_manifest(REFERENCE), ProcessDriver(), seed=seed,
                     token=f"matrix-{seed}") as topo:
        topo.wait_ready(10)
        n = 0
        for fault in faults:
            for hop in hops:
                n += 1
                c0 = time.monotonic()
                try:
                    cell = run_cell(topo, fault, hop, tasks=tasks, seed=seed, cell_no=n)
                except Exception as exc:   # noqa: BLE001 - a cell the bench could not run
                    topo.heal()
                    _ensure_running(topo)
                    cell = {"fault": fault, "hop": hop, "tasks": tasks, "exactly_once": False,
                            "error": f"{type(exc).__name__}: {exc}"}
                cell["seconds"] = round(time.monotonic() - c0, 2)
                cells.append(cell)
                log(f"  matrix {fault:>28} on {hop:<9}: exactly once {cell['exactly_once']} "
                    f"({cell.get('acknowledged_before_heal')} acked before heal, "
                    f"{cell.get('resubmits')} resubmits, {cell['seconds']} s)")
    return {"cells": cells, "cells_total": len(cells),
            "cells_exactly_once": sum(1 for c in cells if c["exactly_once"]),
            "faults": faults, "hops": hops, "tasks_per_cell": tasks,
            "seconds": round(time.monotonic() - t0, 1), "seed": seed}
