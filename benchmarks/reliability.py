"""`python3 benchmarks/reliability.py [--quick] [--json FILE] [--seed N] [--only SECTIONS]`

Reliability figures of issue 6, from real runs against the reference:
  fuzz         frames, envelopes and payloads tried against each service; structured
               error or correct answer every time, service still up
  crash        >= 1,000 SIGKILLs of a writing store: acknowledged records lost, unreadable stores
  matrix       each fault type on each hop: every task completed exactly once after the heal
  determinism  the reference graded 10 times under different seeds: identical verdicts
  hostile      hostile submissions: bounded time, nothing left running
Every run prints its seed; `--seed` replays it. The test suite runs a small version of each
(tests/test_reliability_small.py).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.containment import run_determinism, run_hostile  # noqa: E402
from benchmarks.crash import run_crash  # noqa: E402
from benchmarks.fuzz import run_fuzz  # noqa: E402
from benchmarks.matrix import run_matrix  # noqa: E402
from benchmarks.stats import machine_info  # noqa: E402

SECTIONS = ("fuzz", "crash", "matrix", "determinism", "hostile")
RUNNERS = {"fuzz": run_fuzz, "crash": run_crash, "matrix": run_matrix,
           "determinism": run_determinism, "hostile": run_hostile}
PROFILES = {
    "full": {"fuzz": dict(frames=300, envelopes=120, payloads=300), "crash": dict(kills=1000),
             "matrix": dict(tasks=3), "determinism": dict(runs=10), "hostile": dict(full=True)},
    "quick": {"fuzz": dict(frames=60, envelopes=40, payloads=60), "crash": dict(kills=200),
              "matrix": dict(tasks=2, faults=["drop_reply", "reset_peer", "process_killed"]),
              "determinism": dict(runs=3), "hostile": dict()},
}


def summary_lines(res: dict) -> list[str]:
    out = []
    if "fuzz" in res and "per_service" in res["fuzz"]:
        f = res["fuzz"]
        for role, r in f["per_service"].items():
            out.append(f"fuzz {role:<12} frames {r['frames']:>4}  envelopes {r['envelopes']:>4}  "
                       f"payloads {r['payloads']:>4}  failures {r['failures']}  up {r['alive_after_each_batch']}")
    if "crash" in res and "kills" in res["crash"]:
        c = res["crash"]
        out.append(f"crash: {c['kills']} SIGKILLs, {c['acknowledged_puts']} acknowledged puts, "
                   f"{c['lost_acknowledged']} lost, {c['unreadable_stores']} unreadable stores, "
                   f"{c['leftover_temp_files']} leftover temp files")
    if "matrix" in res and "cells" in res["matrix"]:
        m = res["matrix"]
        out.append(f"matrix: {m['cells_exactly_once']}/{m['cells_total']} cells exactly once "
                   f"({m['tasks_per_cell']} tasks per cell)")
        for c in m["cells"]:
            if not c["exactly_once"]:
                out.append(f"  NOT exactly once: {c['fault']} on {c['hop']}: {c}")
    if "determinism" in res and "grades" in res["determinism"]:
        d = res["determinism"]
        out.append(f"determinism: {d['grades']} grades, {d['distinct_verdict_sets']} distinct verdict "
                   f"sets, identical {d['identical']}, passed per grade {d['passed_per_grade']}")
    if "hostile" in res and "fixtures" in res["hostile"]:
        h = res["hostile"]
        out.append(f"hostile ({h['mode']}): all contained {h['all_contained']}, max {h['max_seconds']} s")
        for r in h["fixtures"]:
            out.append(f"  {r['fixture']:<22} {r['seconds']:>7} s  checks {r['checks_run']:>2}  "
                       f"leftover processes {r['leftover_processes']}  contained {r['contained']}")
    for name in SECTIONS:
        if name in res and res[name].get("error"):
            out.append(f"{name}: ERROR {res[name]['error']}")
    return out


def run(profile: str, seed: int, sections: list[str], log=print, overrides: dict | None = None) -> dict:
    out: dict = {"seed": seed, "profile": profile, "machine": machine_info(),
                 "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    for name in sections:
        log(f"[reliability] {name} ...")
        t0 = time.monotonic()
        params = {**PROFILES.get(profile, {}).get(name, {}), **(overrides or {}).get(name, {})}
        try:
            out[name] = RUNNERS[name](seed, **params, log=log)
        except Exception as exc:   # noqa: BLE001 - recorded, never hidden
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        out[name]["section_s"] = round(time.monotonic() - t0, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--only", default=None, help=f"comma-separated of {','.join(SECTIONS)}")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    sections = [s.strip() for s in args.only.split(",")] if args.only else list(SECTIONS)
    if set(sections) - set(SECTIONS):
        parser.error(f"unknown sections: {sorted(set(sections) - set(SECTIONS))}")
    profile = "quick" if args.quick else "full"
    print(f"[reliability] seed {seed} (replay: --seed {seed}) profile {profile}", flush=True)
    res = run(profile, seed, sections, log=lambda m: print(m, flush=True))
    print("\n".join(summary_lines(res)))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
        print(f"[reliability] figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
