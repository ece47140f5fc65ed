"""Grader determinism and hostile-submission containment figures.

Why: a grade is only fair if the same submission gets the same verdicts whatever the seed
(the seed changes inputs, ids, fault timing - never the outcome for a correct system), and
the kit is only safe to point at untrusted code if a hostile submission (one that hangs,
exits, floods output, speaks garbage, listens on the wrong port, or leaves children
behind) costs bounded time and leaves nothing running. "Nothing running" is checked
from /proc: no process carries an FD_MEMORY_DIR under this process's own deployment temp
directories, and those directories are gone.
"""
from __future__ import annotations

import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from .grader_bench import grade_once
from .systems import ROOT

HOSTILE = ROOT / "tests" / "fixtures" / "hostile"

__all__ = ["run_determinism", "run_hostile", "leftovers"]


def _marker() -> bytes:
    return f"FD_MEMORY_DIR={tempfile.gettempdir()}/faultdrill-{os.getpid()}-".encode()


def leftovers() -> dict:
    """Processes still carrying one of *our* deployments' memory dirs, and our temp dirs."""
    marker = _marker()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in (b"Z", b"X") and any(e.startswith(marker) for e in env):
            pids.append(int(name))
    dirs = [str(p) for p in Path(tempfile.gettempdir()).glob(f"faultdrill-{os.getpid()}-*")]
    return {"processes": pids, "temp_dirs": dirs}


def run_determinism(seed: int, *, runs: int = 10, only: list[str] | None = None, log=print) -> dict:
    """The reference graded `runs` times (seeds seed..seed+runs-1); identical verdicts?"""
    result, seconds = grade_once(seed, only=only, runs=runs)
    by_run: dict[int, dict[str, str]] = defaultdict(dict)
    for v in result.verdicts:
        by_run[v.run][v.check_id] = v.status
    distinct = {tuple(sorted(m.items())) for m in by_run.values()}
    first = by_run[min(by_run)] if by_run else {}
    differing = sorted({cid for m in by_run.values() for cid, st in m.items() if first.get(cid) != st})
    log(f"  determinism: {len(by_run)} grades, {len(distinct)} distinct verdict sets, {seconds:.0f} s")
    return {"grades": len(by_run), "seeds": [seed + r for r in sorted(by_run)],
            "checks_per_grade": len(first), "distinct_verdict_sets": len(distinct),
            "identical": len(distinct) == 1 and len(by_run) == runs,
            "passed_per_grade": [sum(1 for s in m.values() if s == "pass") for _, m in sorted(by_run.items())],
            "differing_checks": differing, "seconds": round(seconds, 1)}


def run_hostile(seed: int, *, fixtures: list[str] | None = None, full: bool = False,
                limit_s: float = 300.0, log=print) -> dict:
    """Each hostile fixture through the self-check loop (or a full grade with `full`)."""
    names = fixtures or sorted(p.name for p in HOSTILE.iterdir() if (p / "faultdrill.toml").is_file())
    rows = []
    for name in names:
        t0 = time.monotonic()
        try:
            result, seconds = grade_once(seed, root=HOSTILE / name, visible_only=not full,
                                         stop_at_failing_stage=not full)
            statuses = [v.status for v in result.verdicts]
            error = None
        except Exception as exc:   # noqa: BLE001 - the grader itself broke: recorded
            seconds, statuses, result = time.monotonic() - t0, [], None
            error = f"{type(exc).__name__}: {exc}"
        left = leftovers()
        row = {"fixture": name, "seconds": round(seconds, 2), "checks_run": len(statuses),
               "passed": statuses.count("pass"), "failed": statuses.count("fail"),
               "grader_errors": statuses.count("error"), "leftover_processes": len(left["processes"]),
               "leftover_temp_dirs": len(left["temp_dirs"]),
               "cleanup_notes": list(result.cleanup) if result else [], "error": error}
        row["contained"] = (error is None and seconds <= limit_s and not left["processes"]
                            and not left["temp_dirs"])
        rows.append(row)
        log(f"  hostile {name}: {row['seconds']} s, {row['checks_run']} checks "
            f"({row['passed']} passed), leftovers {row['leftover_processes']} processes, "
            f"contained {row['contained']}")
    return {"fixtures": rows, "all_contained": all(r["contained"] for r in rows),
            "max_seconds": max((r["seconds"] for r in rows), default=None),
            "mode": "full grade" if full else "self-check (visible checks, stop at failing stage)",
            "limit_s": limit_s}
