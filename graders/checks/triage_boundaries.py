"""PURE: triage inputs whose analysis lands exactly on the alert thresholds of SPEC §8.3.

Why deterministic boundary inputs beside the seeded ones: a seeded input almost never puts
a service's `error_permille` or `p95_latency_ms` exactly on a threshold or on twice it,
so an off-by-one in an alert comparison (`>` for `>=`) or in the severity rule passes
every seeded run. Each input here has one service per boundary value: an error-rate
service whose events give exactly the wanted per-mille (latency 0, so it never alerts on
latency) and a latency service of one `info` event whose p95 is exactly the wanted
latency. The values are, for each threshold T: T - 1 (no alert), T (warning), T + 1,
2T - 1 (still warning) and 2T (critical), where they exist in the value's range.

The inputs: the default thresholds (thresholds omitted: E = 50, L = 1000); both at their
smallest (1, 1); both at their largest (1000, 10^9, where only T - 1 and T exist); and one
pair drawn from the check's seeded random generator, so that a hidden submission cannot
special-case fixed numbers.

`record_boundary_inputs` does the same for the limits of one record (SPEC §8.1) and of
`top_errors` (§8.2): each limit exactly reached (accepted) and one past it (rejected with
its reason, or cut): 4096 and 4097 code points, 9 and 10 latency digits, 64 and 65
service characters, 4 and 3 fields, the first and last valid timestamps and their
neighbours, and 5 and 6 error groups.
"""
from __future__ import annotations

import random

DEFAULT_ERROR_PERMILLE = 50
DEFAULT_P95_LATENCY_MS = 1000
MAX_ERROR_PERMILLE = 1000
MAX_P95_THRESHOLD = 10**9
MAX_LATENCY = 999_999_999      # SPEC §8.1: latency is at most 9 decimal digits
ERROR_SPELLINGS = ("error", "ERROR", "fatal", "critical", "Error")
BASE_TS = "2026-11-29T10:{m:02d}:{s:02d}Z"


def permille_split(value: int) -> tuple[int, int]:
    """The smallest (errors, count) with floor(1000 * errors / count) == value (SPEC
    §8.2's error_permille), for 0 <= value <= 1000; count <= 1000 always exists."""
    if not 0 <= value <= MAX_ERROR_PERMILLE:
        raise ValueError(f"error_permille {value} is outside 0..1000")
    for count in range(1, 1001):
        errors = -(-value * count // 1000)          # ceil(value * count / 1000)
        if errors <= count and 1000 * errors // count == value:
            return errors, count
    raise AssertionError("unreachable: count 1000 always works")


def boundary_values(threshold: int, highest: int) -> list[int]:
    """T - 1, T, T + 1, 2T - 1 and 2T, each kept only when 0 <= v <= highest, distinct,
    ascending."""
    wanted = {threshold - 1, threshold, threshold + 1, 2 * threshold - 1, 2 * threshold}
    return sorted(v for v in wanted if 0 <= v <= highest)


def _ts(i: int) -> str:
    return BASE_TS.format(m=(i // 60) % 60, s=i % 60)


def boundary_input(source: str, error_threshold: int, latency_threshold: int,
                   rng: random.Random, *, omit_thresholds: bool = False) -> dict:
    """One triage input: a service per boundary value of each threshold (see the module
    docstring), records shuffled by `rng`. With `omit_thresholds` the input carries no
    thresholds (the given ones must then be SPEC §9.1's defaults)."""
    records: list[str] = []
    for value in boundary_values(error_threshold, MAX_ERROR_PERMILLE):
        errors, count = permille_split(value)
        service = f"err-{value:04d}"
        for k in range(count):
            level = ERROR_SPELLINGS[k % len(ERROR_SPELLINGS)] if k < errors else "info"
            message = f"failure {k % 3}" if k < errors else "ok"
            records.append(f"{_ts(len(records))} {level} {service} 0 {message}")
    for value in boundary_values(latency_threshold, MAX_LATENCY):
        records.append(f"{_ts(len(records))} info lat-{value:09d} {value} slow call")
    rng.shuffle(records)
    task_input: dict = {"source": source, "records": records}
    if not omit_thresholds:
        task_input["thresholds"] = {"error_permille": error_threshold,
                                    "p95_latency_ms": latency_threshold}
    return task_input


def boundary_inputs(rng: random.Random) -> list[tuple[str, dict]]:
    """(description, input) for every boundary input of the module docstring."""
    drawn_e, drawn_l = rng.randint(2, 500), rng.randint(2, 500_000_000)
    return [
        ("default thresholds (50, 1000), omitted",
         boundary_input("bounds-default", DEFAULT_ERROR_PERMILLE, DEFAULT_P95_LATENCY_MS, rng,
                        omit_thresholds=True)),
        ("smallest thresholds (1, 1)", boundary_input("bounds-min", 1, 1, rng)),
        (f"largest thresholds ({MAX_ERROR_PERMILLE}, {MAX_P95_THRESHOLD})",
         boundary_input("bounds-max", MAX_ERROR_PERMILLE, MAX_P95_THRESHOLD, rng)),
        (f"seeded thresholds ({drawn_e}, {drawn_l})",
         boundary_input("bounds-seeded", drawn_e, drawn_l, rng)),
    ]


MAX_RECORD_CHARS = 4096
MAX_SERVICE_CHARS = 64
MAX_TOP_ERRORS = 5


def _record_of_length(head: str, length: int) -> str:
    """`head` + " " + a message of non-ASCII characters (1 code point, 2 or 3 UTF-8
    bytes each) padding the record to exactly `length` code points."""
    pad = length - len(head) - 1
    body = ("é☕" * (pad // 2 + 1))[:pad]
    return f"{head} {body}"


def record_boundary_inputs(rng: random.Random) -> list[tuple[str, dict]]:
    """(description, input): every per-record limit at and one past it, then the
    top_errors limit with exactly 5 and with 6 groups."""
    ts = "2026-11-29T10:00:00Z"
    long_service = "S" + "v" * (MAX_SERVICE_CHARS - 2) + "9"          # 64 after lower-casing
    records = [
        _record_of_length(f"{ts} info edge 3", MAX_RECORD_CHARS),        # at: accepted
        _record_of_length(f"{ts} info edge 3", MAX_RECORD_CHARS + 1),    # past: too_long
        f"{ts} warn edge 999999999 nine digits",                          # at
        f"{ts} warn edge 000000001",                                      # at, leading zeros
        f"{ts} warn edge 0000000001 ten digits",                          # past: bad_latency
        f"{ts} debug {long_service} 5 longest service",                   # at
        f"{ts} debug {long_service}x 5 one too long",                     # past: bad_service
        f"{ts}\tinfo edge 7",                                            # 4 fields: message ""
        f" {ts} info edge 7 \t",                                         # 4 fields, blanks around
        f"{ts} info edge",                                                # 3 fields: too_few_fields
        "1970-01-01T00:00:00Z info edge 1 first second",                  # at: epoch 0
        "9999-12-31T23:59:59Z info edge 1 last second",                   # at
        "1969-12-31T23:59:59Z info edge 1 before 1970",                   # past: bad_timestamp
        "2024-02-29T23:59:59Z info edge 1 leap day",                      # at
        "2100-02-29T00:00:00Z info edge 1 no leap day",                   # past
        "2026-11-30T00:00:00Z info edge 1 day 30",                        # at
        "2026-11-31T00:00:00Z info edge 1 day 31",                        # past
        "2026-12-31T24:00:00Z info edge 1 hour 24",                       # past
        "2026-12-31T23:60:00Z info edge 1 minute 60",                     # past
        "2026-12-31T23:59:60Z info edge 1 leap second",                   # past
    ]
    rng.shuffle(records)
    inputs = [("record limits at and one past", {"source": "bounds-records", "records": records})]
    for groups in (MAX_TOP_ERRORS, MAX_TOP_ERRORS + 1):
        recs = []
        for g in range(groups):
            # counts tie in pairs so that the service and message tie-breaks decide
            for k in range(1 + (groups - g) // 2):
                recs.append(f"2026-11-29T10:00:{g:02d}Z error svc-{g % 2} {k} failure {g}")
        rng.shuffle(recs)
        inputs.append((f"{groups} error groups", {"source": f"bounds-top{groups}", "records": recs}))
    return inputs

