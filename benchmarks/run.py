"""`python3 benchmarks/run.py [--quick] [--json FILE] [--seed N] [--only SECTIONS]`

Runs the performance benchmarks of issue 6 and prints a table: pipeline (reference vs a
bare relay through the same hops), memory (durable store cost as it fills), overload (5x
capacity), grader (full grade and self-check times). `--quick` runs shorter windows with
the same keys (under 5 minutes on 2 cores). Every comparison is a ratio of figures
measured in the same run; every run prints its seed and accepts `--seed`.
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

from benchmarks.grader_bench import run_grader  # noqa: E402
from benchmarks.memory_bench import run_memory  # noqa: E402
from benchmarks.overload import run_overload  # noqa: E402
from benchmarks.pipeline import run_pipeline  # noqa: E402
from benchmarks.stats import format_table, machine_info  # noqa: E402

SECTIONS = ("pipeline", "memory", "overload", "grader")

#: Section parameters: full run, quick run, and a tiny run for the smoke test.
PROFILES = {
    "full": {"pipeline": dict(clients=8, window=10.0, rounds=3),
             "memory": dict(big=10_000, small=100, writes=1000, retention_check=1000),
             "overload": dict(measure=6.0, overload=20.0),
             "grader": dict()},
    "quick": {"pipeline": dict(clients=8, window=5.0, rounds=2),
              "memory": dict(big=10_000, small=100, writes=300, retention_check=500),
              "overload": dict(measure=6.0, overload=8.0),
              "grader": dict()},
    "tiny": {"pipeline": dict(clients=2, window=0.7, rounds=1, warmup=0.3, warm_tasks=0, n_records=5),
             "memory": dict(big=300, small=20, writes=20, retention_check=30),
             "overload": dict(measure=0.8, overload=1.5, senders=8, n_records=5, rounds=1),
             "grader": dict(only=["pipeline.triage_oracle", "versioning.hello"])},
}

RUNNERS = {"pipeline": run_pipeline, "memory": run_memory, "overload": run_overload,
           "grader": run_grader}

TABLE_ROWS = {
    "pipeline": [("tasks_per_s", ""), ("ceiling_tasks_per_s", "bare relay, same hops/clients"),
                 ("ratio", "vs bare relay"), ("p50_ms", ""), ("p99_ms", ""),
                 ("durable_plain_relay_tasks_per_s", "relay + SPEC §11 writes, create/unlink"),
                 ("durable_recycling_relay_tasks_per_s", "relay + SPEC §11 writes, recycled inodes"),
                 ("durable_ceiling_tasks_per_s", "the better of the two"),
                 ("durable_ceiling_vs_ceiling", "upper bound of `ratio` for any implementation"),
                 ("ratio_vs_durable_ceiling", "target >= 0.5"),
                 ("ceiling_fresh_conn_tasks_per_s", "relay, new connection per hop")],
    "memory": [("write_ms_100", "median put, 100 records"), ("write_ms_10k", "median put, 10k records"),
               ("write_ratio_10k_vs_100", "target <= 1.5"), ("load_s_10k", "start-up load, 10k records"),
               ("disk_growth_ratio", "disk after 4x retention / after 1x")],
    "overload": [("capacity_tasks_per_s", ""), ("offered_per_s", "5x capacity"),
                 ("unloaded_p99_ms", ""), ("admitted_p99_ms", ""),
                 ("admitted_p99_vs_unloaded", "FD_QUEUE_SIZE=0; target <= 2"),
                 ("admitted_p99_vs_unloaded_queue2", "FD_QUEUE_SIZE=2: Little's law, context"),
                 ("busy_p99_ms", "target <= 10"),
                 ("rss_growth_mb", "target <= 50")],
    "grader": [("full_grade_s", "target <= 60"), ("self_check_s", "all visible stages"),
               ("challenge_check_s", "one challenge, slowest; target <= 10")],
}


def run(profile: str, seed: int, sections: list[str], log=print) -> dict:
    """All requested sections; a section that raises is recorded with its error (keys None)."""
    out: dict = {"seed": seed, "profile": profile,
                 "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "machine": machine_info()}
    for name in sections:
        log(f"[bench] {name} ...")
        t0 = time.monotonic()
        try:
            out[name] = RUNNERS[name](seed, **PROFILES[profile][name], log=log)
        except Exception as exc:   # noqa: BLE001 - record and go on with the other sections
            out[name] = {key: None for key, _ in TABLE_ROWS[name]}
            out[name]["error"] = f"{type(exc).__name__}: {exc}"
        out[name]["section_s"] = round(time.monotonic() - t0, 2)
    return out


def table(results: dict) -> str:
    parts = [f"faultdrill benchmarks  seed {results['seed']}  profile {results['profile']}  "
             f"{results['date']}  nproc {results['machine']['nproc']}  "
             f"{results['machine']['cpu_model']}  Python {results['machine']['python']}"]
    for name in SECTIONS:
        if name in results:
            rows = [(k, results[name].get(k), note) for k, note in TABLE_ROWS[name]]
            if results[name].get("error"):
                rows.append(("error", results[name]["error"], ""))
            parts.append(format_table(name, rows))
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter run, same keys (< 5 min)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to FILE")
    parser.add_argument("--seed", type=int, default=None, help="default: from the clock (printed)")
    parser.add_argument("--only", default=None, help=f"comma-separated sections of {','.join(SECTIONS)}")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    profile = args.profile or ("quick" if args.quick else "full")
    sections = [s.strip() for s in args.only.split(",")] if args.only else list(SECTIONS)
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    print(f"[bench] seed {seed} (replay: --seed {seed}) profile {profile}", flush=True)
    results = run(profile, seed, sections, log=lambda m: print(m, flush=True))
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(f"[bench] figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
