"""Crash-consistency figure: SIGKILL a writing RecordStore many times, count losses.

Why: SPEC §11.2 promises that an acknowledged record is never lost and a store is never
left unreadable by a crash. The writer (tests/helpers/crash_writer.py, shared with the
unit test) prints each record only after `put` returned; we kill it 5-40 ms after it is
ready, reusing one directory across kills, reload the store and count (instead of
asserting, as tests/test_memory_crash.py does): acknowledged records missing or gone back
to an older version, and loads that met a corrupt file, a quarantined file or a leftover
temp file. SIGKILL keeps the page cache, so this measures atomicity and ordering, not
power-loss durability. Replay with the printed seed.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reference_impl.memory.store import RecordStore

ROOT = Path(__file__).resolve().parent.parent
WRITER = ROOT / "tests" / "helpers" / "crash_writer.py"
#: (retention, number of distinct task ids): no pruning, heavy pruning, tiny, wide.
CONFIGS = [(1000, 20), (8, 20), (3, 5), (40, 200)]

__all__ = ["run_crash", "CONFIGS"]


def _digest(record: dict) -> str:
    body = {"step": record["step"], "input": record["input"], "output": record["output"]}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def _run_and_kill(directory: Path, retention: int, n_ids: int, seed: int,
                  rng: random.Random) -> tuple[list[tuple[str, int, str]], bool]:
    """(acknowledged lines, killed by SIGKILL as intended)."""
    proc = subprocess.Popen([sys.executable, "-S", str(WRITER), str(directory), str(retention),
                             str(seed), str(n_ids)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    buf = b""
    try:
        deadline = time.monotonic() + 20.0
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        try:
            while b"ready\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise TimeoutError("crash writer not ready within 20 s")
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError(f"crash writer exited: {proc.stderr.read()[-500:]!r}")
                buf += chunk
        finally:
            sel.close()
        time.sleep(rng.uniform(0.005, 0.040))
        proc.send_signal(signal.SIGKILL)
        rest, _err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    body = (buf + rest).decode().split("ready\n", 1)[1]
    acked = []
    for line in body.split("\n")[:-1]:
        task_id, seq, digest = line.split(" ")
        acked.append((task_id, int(seq), digest))
    return acked, proc.returncode == -signal.SIGKILL


def run_crash(seed: int, *, kills: int = 1000, base: Path | None = None, log=print) -> dict:
    """Keys: kills, acknowledged_puts, lost_acknowledged, unreadable_stores, ..."""
    per_config = max(1, kills // len(CONFIGS))
    tmp = Path(tempfile.mkdtemp(prefix="fd-bench-crash-", dir=base))
    totals = {"kills": 0, "acknowledged_puts": 0, "lost_acknowledged": 0, "unreadable_stores": 0,
              "corrupt_files": 0, "leftover_temp_files": 0, "durable_unacknowledged": 0,
              "not_killed_by_sigkill": 0, "older_version_served": 0}
    problems: list[str] = []
    t0 = time.monotonic()
    try:
        for ci, (retention, n_ids) in enumerate(CONFIGS):
            rng = random.Random(seed * 100 + ci)
            directory = tmp / f"cfg{ci}"
            model: dict[str, tuple[int, str]] = {}
            for kill in range(per_config):
                acked, sigkilled = _run_and_kill(directory, retention, n_ids,
                                                 seed * 100_000 + ci * 10_000 + kill, rng)
                totals["kills"] += 1
                totals["not_killed_by_sigkill"] += not sigkilled
                totals["acknowledged_puts"] += len(acked)
                for task_id, seq, digest in acked:
                    model[task_id] = (seq, digest)
                corrupt = []
                try:
                    store = RecordStore(directory, retention,
                                        on_corrupt=lambda p, r, q: corrupt.append((str(p), r)))
                    store.load()
                except Exception as exc:   # noqa: BLE001 - a store that cannot load is the finding
                    totals["unreadable_stores"] += 1
                    problems.append(f"cfg{ci} kill {kill}: load raised {exc!r}")
                    continue
                quarantined = list((directory / "quarantine").iterdir()) if (directory / "quarantine").is_dir() else []
                temps = [p.name for p in (directory / "records").iterdir() if p.name.startswith(".")]
                if corrupt or quarantined:
                    totals["unreadable_stores"] += 1
                    totals["corrupt_files"] += len(corrupt)
                    problems.append(f"cfg{ci} kill {kill}: corrupt {corrupt[:3]}")
                totals["leftover_temp_files"] += len(temps)
                observed = {t: store.get(t) for t in store.task_ids()}
                observed = {t: (r["seq"], _digest(r)) for t, r in observed.items() if r is not None}
                for task_id, (seq, digest) in observed.items():
                    known = model.get(task_id)
                    if known is None or seq > known[0]:
                        totals["durable_unacknowledged"] += 1   # the put in flight at the kill
                        model[task_id] = (seq, digest)
                    elif seq < known[0]:
                        totals["older_version_served"] += 1
                        problems.append(f"cfg{ci} kill {kill}: {task_id} went back to seq {seq}")
                    elif digest != known[1]:
                        totals["lost_acknowledged"] += 1
                        problems.append(f"cfg{ci} kill {kill}: {task_id} content changed")
                newest = sorted(model.items(), key=lambda kv: kv[1][0], reverse=True)[:retention]
                for task_id, (seq, _d) in newest:
                    if task_id not in observed:
                        totals["lost_acknowledged"] += 1
                        problems.append(f"cfg{ci} kill {kill}: {task_id} seq {seq} lost")
                # the model must follow what retention legitimately removed
                model = dict(newest)
                for task_id in observed:
                    model[task_id] = observed[task_id]
            log(f"  crash cfg{ci} (retention {retention}, {n_ids} ids): {per_config} kills done")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {**totals, "problems": problems[:20], "seconds": round(time.monotonic() - t0, 1),
            "configs": [{"retention": r, "task_ids": n} for r, n in CONFIGS], "seed": seed}
