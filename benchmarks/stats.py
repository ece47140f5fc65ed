"""Pure helpers for figures: percentiles, ratios, the printed table.

Why pure and separate: every section reports the same kind of numbers (p50/p99 of a list
of seconds, a ratio of two rates measured in the same run) and the smoke tests check
these helpers without starting anything.
"""
from __future__ import annotations

import math
import platform
from typing import Any, Iterable

__all__ = ["percentile", "latency_summary", "ratio", "format_table", "machine_info", "rounded"]


def percentile(values: Iterable[float], p: float) -> float | None:
    """Nearest-rank percentile (the SPEC's definition for p50/p95): None for no values."""
    data = sorted(values)
    if not data:
        return None
    if not 0 < p <= 100:
        raise ValueError("p must be in (0, 100]")
    rank = max(1, math.ceil(p / 100 * len(data)))
    return data[rank - 1]


def latency_summary(seconds: Iterable[float]) -> dict[str, float | None]:
    """p50/p99/max in milliseconds (rounded to 0.01 ms) of a list of durations in seconds."""
    data = sorted(seconds)

    def ms(v):
        return None if v is None else round(v * 1000, 2)
    return {"n": len(data), "p50_ms": ms(percentile(data, 50)), "p99_ms": ms(percentile(data, 99)),
            "max_ms": ms(data[-1] if data else None)}


def ratio(numerator: float | None, denominator: float | None, digits: int = 3) -> float | None:
    """numerator / denominator, None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round(numerator / denominator, digits)


def rounded(value: Any, digits: int = 3) -> Any:
    if isinstance(value, float):
        return round(value, digits)
    return value


def format_table(section: str, rows: list[tuple[str, Any, str]]) -> str:
    """A plain-text table: one line per (key, value, target/comment)."""
    lines = [f"== {section}"]
    width = max((len(k) for k, _, _ in rows), default=10)
    for key, value, note in rows:
        shown = "missing" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))
        lines.append(f"  {key:<{width}}  {shown:>14}  {note}")
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    """nproc, CPU model (from /proc/cpuinfo), Python version, platform."""
    import os
    model = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": len(os.sched_getaffinity(0)), "cpu_model": model, "python": platform.python_version(),
            "platform": platform.platform()}
