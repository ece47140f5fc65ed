"""Pipeline throughput and latency of the reference next to the transport ceiling.

Why this shape: tasks/s on a shared 2-core machine says little alone; the ratio to a bare
relay through the same hops, driven by the same clients with the same inputs in the same
run, says how much of the transport's capacity the reference's work, validation,
durability (fsync'd records on every service), logging and metrics cost. The systems are
measured in alternating windows (reference, relay, relay with a fresh connection per hop)
so that background load drifting during the run hits all of them alike.
"""
from __future__ import annotations

import random
import time

from graders import oracle
from graders.client import make_request

from .load import LoadResult, closed_loop
from .stats import latency_summary, ratio
from .systems import cpu_seconds, reference, relay

__all__ = ["make_inputs", "task_frames", "run_pipeline"]

DEFAULT_RETENTION = 1000   # FD_MEMORY_RETENTION's default (SPEC §3), also the relay's
WARMUP_LIMIT_S = 30.0


def make_inputs(seed: int, pool: int, n_records: int) -> list[tuple[dict, dict]]:
    """`pool` seeded task inputs with their oracle results."""
    rng = random.Random(seed)
    out = []
    for _ in range(pool):
        task_input = oracle.generate_input(rng, n_records)
        out.append((task_input, oracle.expected_result("triage", task_input)))
    return out


def task_frames(token: str, prefix: str, inputs: list[tuple[dict, dict]]):
    """(make_frame, check) for the load generator: task i uses input i mod pool."""
    def make_frame(i: int) -> dict:
        task_input = inputs[i % len(inputs)][0]
        return make_request("submit", {"task_type": "triage", "input": task_input},
                            token=token, task_id=f"{prefix}-{i}")

    def check(i: int, reply: dict) -> bool:
        return (reply.get("payload") or {}).get("result") == inputs[i % len(inputs)][1]
    return make_frame, check


def _figures(res: LoadResult) -> dict:
    lat = latency_summary(res.ok_latencies)
    return {"tasks": res.ok, "seconds": round(res.elapsed, 3),
            "tasks_per_s": round(res.ok / res.elapsed, 2) if res.elapsed else None,
            "p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"], "errors": res.error_counts(),
            "transport_errors": res.transport_errors, "wrong_results": res.wrong_results}


def run_pipeline(seed: int, *, clients: int = 8, window: float = 5.0, rounds: int = 2,
                 n_records: int = 20, workers: int | None = None, warmup: float = 1.0,
                 warm_tasks: int = DEFAULT_RETENTION + 200, log=print) -> dict:
    """Keys: tasks_per_s, ceiling_tasks_per_s, ratio, p50_ms, p99_ms (+ context)."""
    token = f"bench-{seed}"
    inputs = make_inputs(seed, 32, n_records)
    workers = workers or clients
    env = {"FD_WORKERS": str(workers), "FD_QUEUE_SIZE": str(max(64, 2 * clients)),
           "FD_MAX_CONNECTIONS": str(max(128, 4 * clients))}
    systems = ("reference", "ceiling", "ceiling_durable", "ceiling_recycled", "ceiling_fresh")
    totals = {k: LoadResult() for k in systems}
    with reference(token, env) as ref, relay() as relay_addr, relay(durable=True) as durable_addr, \
            relay(durable=True, recycle=True) as recycled_addr, relay(fresh=True) as fresh_addr:
        targets = {"reference": ref.addr, "ceiling": relay_addr, "ceiling_durable": durable_addr,
                   "ceiling_recycled": recycled_addr, "ceiling_fresh": fresh_addr}
        index = 0
        cpu = {role: 0.0 for role in ("orchestrator", "collector", "analyzer", "reporter")}
        for name, addr in targets.items():
            # Steady state before measuring: every store full to its retention, so that
            # each put also prunes (as in a long-running deployment), bounded in time.
            make_frame, check = task_frames(token, f"warm-{name}", inputs)
            done, start, give_up = 0, 0, time.monotonic() + max(warmup, WARMUP_LIMIT_S)
            while True:
                res = closed_loop(addr, make_frame, clients=clients, duration=warmup, start_index=start)
                done += res.ok
                start += res.sent + 1
                if done >= warm_tasks or time.monotonic() >= give_up:
                    break
            log(f"  pipeline warm-up {name}: {done} tasks")
        for r in range(rounds):
            for name, addr in targets.items():
                make_frame, check = task_frames(token, f"p{seed}-{name}", inputs)
                before = {role: cpu_seconds(ref.pid(role)) or 0.0 for role in cpu}
                res = closed_loop(addr, make_frame, clients=clients, duration=window,
                                  check=check if name == "reference" else None, start_index=index)
                index += res.sent + 1
                totals[name].merge(res)
                if name == "reference":
                    for role in cpu:
                        cpu[role] += (cpu_seconds(ref.pid(role)) or 0.0) - before[role]
                log(f"  pipeline round {r + 1}/{rounds} {name}: {res.ok / res.elapsed:.1f} tasks/s")
    ref_f, ceil_f, durable_f, recycled_f, fresh_f = (_figures(totals[k]) for k in systems)
    best_durable = max(durable_f["tasks_per_s"] or 0.0, recycled_f["tasks_per_s"] or 0.0) or None
    return {
        "tasks_per_s": ref_f["tasks_per_s"],
        "ceiling_tasks_per_s": ceil_f["tasks_per_s"],
        "ratio": ratio(ref_f["tasks_per_s"], ceil_f["tasks_per_s"]),
        "p50_ms": ref_f["p50_ms"],
        "p99_ms": ref_f["p99_ms"],
        "ceiling_p50_ms": ceil_f["p50_ms"],
        "ceiling_p99_ms": ceil_f["p99_ms"],
        "durable_ceiling_tasks_per_s": best_durable,
        "durable_ceiling_vs_ceiling": ratio(best_durable, ceil_f["tasks_per_s"]),
        "ratio_vs_durable_ceiling": ratio(ref_f["tasks_per_s"], best_durable),
        "durable_plain_relay_tasks_per_s": durable_f["tasks_per_s"],
        "durable_recycling_relay_tasks_per_s": recycled_f["tasks_per_s"],
        "durable_plain_relay_p50_ms": durable_f["p50_ms"],
        "durable_recycling_relay_p50_ms": recycled_f["p50_ms"],
        "ceiling_fresh_conn_tasks_per_s": fresh_f["tasks_per_s"],
        "ratio_vs_fresh_conn_ceiling": ratio(ref_f["tasks_per_s"], fresh_f["tasks_per_s"]),
        "cpu_ms_per_task": {role: round(1000 * c / max(1, ref_f["tasks"]), 2) for role, c in cpu.items()},
        "tasks": ref_f["tasks"],
        "errors": ref_f["errors"],
        "transport_errors": ref_f["transport_errors"],
        "wrong_results": ref_f["wrong_results"],
        "settings": {"clients": clients, "window_s": window, "rounds": rounds, "warm_tasks": warm_tasks,
                     "records_per_task": n_records, "FD_WORKERS": workers, "durable_memory": True},
        "target": {"ratio_vs_durable_ceiling_min": 0.5,
                   "ratio_min_as_filed": 0.5},
    }
