"""Cost of the reference's durable record store as it fills (SPEC §11.2, §11.3).

Why measured on `RecordStore` directly: the SPEC promises that storing one record does not
cost more when many are stored, and that retention bounds the disk; both are properties of
the store alone, and measuring it without the services removes network and scheduling
noise. Writes to the 100-record and the 10,000-record stores are interleaved one by one,
so background load hits both alike; the figure is the ratio of their medians.
"""
from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from reference_impl.memory.store import RecordStore

from .stats import percentile, ratio

__all__ = ["run_memory", "agent_record", "fill", "dir_bytes"]


def agent_record(rng: random.Random, i: int, size: int = 2000) -> dict:
    """An agent-shaped record (§11.1) with about `size` bytes of input."""
    blob = "".join(rng.choice("abcdefgh ") for _ in range(64))
    return {"step": "collect", "input": {"source": f"s-{i}", "records": [blob] * max(1, size // 64)},
            "output": {"source": f"s-{i}", "events": [], "rejected": [],
                       "counts": {"received": i, "accepted": 0, "rejected": 0}}}


def fill(store: RecordStore, n: int, rng: random.Random, prefix: str) -> None:
    for i in range(n):
        store.put(f"{prefix}-{i}", agent_record(rng, i))


def dir_bytes(directory: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _timed_put(store: RecordStore, task_id: str, record: dict) -> float:
    t0 = time.perf_counter()
    store.put(task_id, record)
    return time.perf_counter() - t0


def run_memory(seed: int, *, big: int = 10_000, small: int = 100, writes: int = 300,
               retention_check: int = 500, base: Path | None = None, log=print) -> dict:
    """Keys: write_ms_100, write_ms_10k, write_ratio_10k_vs_100, load_s_10k, disk figures."""
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="fd-bench-mem-", dir=base))
    try:
        # Stores at steady state: full to their retention, so each put also prunes one.
        s_small = RecordStore(tmp / "small", small)
        s_small.load()
        fill(s_small, small, rng, "s")
        s_big = RecordStore(tmp / "big", big)
        s_big.load()
        t0 = time.perf_counter()
        fill(s_big, big, rng, "b")
        fill_s = time.perf_counter() - t0
        log(f"  memory: filled {big} records in {fill_s:.1f} s")
        t_small, t_big = [], []
        for i in range(writes):
            rec = agent_record(rng, i)
            if i % 2 == 0:
                t_small.append(_timed_put(s_small, f"s-new-{i}", rec))
                t_big.append(_timed_put(s_big, f"b-new-{i}", rec))
            else:
                t_big.append(_timed_put(s_big, f"b-new-{i}", rec))
                t_small.append(_timed_put(s_small, f"s-new-{i}", rec))
        med_small, med_big = percentile(t_small, 50), percentile(t_big, 50)
        # Load time at start-up with `big` records.
        t0 = time.perf_counter()
        reloaded = RecordStore(tmp / "big", big)
        reloaded.load()
        load_s = time.perf_counter() - t0
        loaded = len(reloaded)
        # Disk bounded by pruning: write 4x the retention, size after 1x vs after 4x.
        s_ret = RecordStore(tmp / "ret", retention_check)
        s_ret.load()
        fill(s_ret, retention_check, rng, "r1")
        bytes_1x = dir_bytes(tmp / "ret")
        for k in range(2, 5):
            fill(s_ret, retention_check, rng, f"r{k}")
        bytes_4x = dir_bytes(tmp / "ret")
        entries = list((tmp / "ret" / "records").iterdir())
        files_4x = sum(1 for e in entries if not e.name.startswith("."))
        spare_files = len(entries) - files_4x   # recycled inodes (store.py), bounded
        return {
            "write_ms_100": round(med_small * 1000, 3),
            "write_ms_10k": round(med_big * 1000, 3),
            "write_ratio_10k_vs_100": ratio(med_big, med_small),
            "write_p99_ms_100": round(percentile(t_small, 99) * 1000, 3),
            "write_p99_ms_10k": round(percentile(t_big, 99) * 1000, 3),
            "fill_10k_s": round(fill_s, 2),
            "load_s_10k": round(load_s, 3),
            "loaded_records": loaded,
            "disk_bytes_at_retention": bytes_1x,
            "disk_bytes_after_4x_retention": bytes_4x,
            "disk_growth_ratio": ratio(bytes_4x, bytes_1x),
            "record_files_after_4x_retention": files_4x,
            "spare_files_after_4x_retention": spare_files,
            "settings": {"records_big": big, "records_small": small, "timed_writes": writes,
                         "retention_check": retention_check, "record_bytes_approx": 2000,
                         "filesystem_dir": str(tmp.parent)},
            "target": {"write_ratio_10k_vs_100_max": 1.5},
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
