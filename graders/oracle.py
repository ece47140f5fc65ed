"""An independent oracle for the work of SPEC §8 (collect, analyze, report).

Why a second implementation: the graders compare a submission's whole result payload with
what this module computes, so it must never share code (or bugs) with `reference_impl/`.
It is deliberately written in a different style from a straightforward rule-by-rule port:
a record is recognised by one anchored regular expression, the calendar check and the
epoch conversion use day-number arithmetic instead of the `calendar`/`datetime` modules,
and aggregation works over `collections.Counter`/`defaultdict` tables.

Everything here is pure: dicts in, dicts out; `generate_input` takes a seeded `Random`.
"""
from __future__ import annotations

import json
import random
import re
import string
from collections import Counter, defaultdict
from typing import Any

__all__ = [
    "DEFAULT_ROUTES",
    "DEFAULT_THRESHOLDS",
    "REJECT_REASONS",
    "collect",
    "analyze",
    "report",
    "expected_result",
    "run_route",
    "generate_input",
    "largest_input",
    "json_equal",
]

DEFAULT_THRESHOLDS = {"error_permille": 50, "p95_latency_ms": 1000}
DEFAULT_ROUTES = {"triage": ["collect", "analyze", "report"], "parse": ["collect"],
                  "stats": ["collect", "analyze"]}
REJECT_REASONS = ("not_a_string", "too_long", "too_few_fields", "bad_timestamp",
                  "bad_level", "bad_service", "bad_latency")
LEVELS = ("debug", "info", "warn", "error", "fatal")
MAX_RECORD_CHARS = 4096

# --- parsing ---------------------------------------------------------------------------
# Blanks are exactly space and tab.  Four non-blank fields, then optionally one run of
# blanks and the message (kept verbatim up to the trailing blanks, which are stripped).
# DOTALL because a record may hold newlines or other non-blank control characters, which
# belong to fields.  `fullmatch` is used everywhere: `$` would accept a trailing "\n".
_RECORD = re.compile(
    r"[ \t]*(?P<ts>[^ \t]+)[ \t]+(?P<level>[^ \t]+)[ \t]+(?P<service>[^ \t]+)"
    r"[ \t]+(?P<latency>[^ \t]+)(?:[ \t]+(?P<message>.*?))?[ \t]*",
    re.DOTALL,
)
_TS = re.compile(r"(?P<Y>[0-9]{4})-(?P<M>[0-9]{2})-(?P<D>[0-9]{2})"
                 r"T(?P<h>[0-9]{2}):(?P<m>[0-9]{2}):(?P<s>[0-9]{2})Z")
_SERVICE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_LATENCY = re.compile(r"[0-9]{1,9}")
# ASCII-only case folding: str.lower() would also fold e.g. KELVIN SIGN to "k".
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_LEVEL_ALIASES = {"debug": "debug", "info": "info", "warn": "warn", "warning": "warn",
                  "error": "error", "fatal": "fatal", "critical": "fatal"}


def _days_before_month(year: int, month: int) -> int:
    cumulative = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return cumulative[month - 1] + (1 if leap and month > 2 else 0)


def _month_length(year: int, month: int) -> int:
    if month == 12:
        return 31
    return _days_before_month(year, month + 1) - _days_before_month(year, month)


def _epoch_seconds(text: str) -> int | None:
    """Seconds since 1970 for a valid SPEC timestamp, else None."""
    m = _TS.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(m[k]) for k in "YMDhms")
    if not (1970 <= year <= 9999 and 1 <= month <= 12 and 0 <= hour <= 23
            and 0 <= minute <= 59 and 0 <= second <= 59):
        return None
    if not 1 <= day <= _month_length(year, month):
        return None
    y = year - 1
    days = y * 365 + y // 4 - y // 100 + y // 400 - 719162  # days from 0001-01-01 to 1970
    days += _days_before_month(year, month) + day - 1
    return ((days * 24 + hour) * 60 + minute) * 60 + second


def _parse_record(record: Any) -> tuple[str, dict | None]:
    """(reason, None) for a rejected record, ("", event-without-seq) for an accepted one."""
    if not isinstance(record, str):
        return "not_a_string", None
    if len(record) > MAX_RECORD_CHARS:
        return "too_long", None
    m = _RECORD.fullmatch(record)
    if m is None:
        return "too_few_fields", None
    epoch = _epoch_seconds(m["ts"])
    if epoch is None:
        return "bad_timestamp", None
    level = _LEVEL_ALIASES.get(m["level"].translate(_ASCII_LOWER))
    if level is None:
        return "bad_level", None
    service = m["service"].translate(_ASCII_LOWER)
    if not _SERVICE.fullmatch(service):
        return "bad_service", None
    if not _LATENCY.fullmatch(m["latency"]):
        return "bad_latency", None
    return "", {"ts": m["ts"], "epoch_s": epoch, "level": level, "service": service,
                "latency_ms": int(m["latency"]), "message": m["message"] or ""}


def collect(payload: dict) -> dict:
    """SPEC §8.1: parse and normalise each record, rejecting with the first failing rule."""
    events: list[dict] = []
    rejected: list[dict] = []
    for seq, record in enumerate(payload["records"]):
        reason, event = _parse_record(record)
        if event is None:
            rejected.append({"seq": seq, "reason": reason})
        else:
            events.append({"seq": seq, **event})
    return {"source": payload["source"], "events": events, "rejected": rejected,
            "counts": {"received": len(payload["records"]), "accepted": len(events),
                       "rejected": len(rejected)}}


# --- aggregation -----------------------------------------------------------------------
def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _nearest_rank(sorted_values: list[int], p: int) -> int:
    return sorted_values[(p * len(sorted_values) + 99) // 100 - 1]


def analyze(payload: dict) -> dict:
    """SPEC §8.2: per-level counts, per-service stats, time span, top error groups."""
    events = payload["events"]
    level_counts = Counter(e["level"] for e in events)
    latencies: dict[str, list[int]] = defaultdict(list)
    error_counts: Counter = Counter()
    error_groups: Counter = Counter()
    for e in events:
        latencies[e["service"]].append(e["latency_ms"])
        if e["level"] in ("error", "fatal"):
            error_counts[e["service"]] += 1
            error_groups[(e["service"], e["message"])] += 1
    services = []
    for name in sorted(latencies, key=_utf8):
        values = sorted(latencies[name])
        n, errs = len(values), error_counts[name]
        services.append({"service": name, "count": n, "errors": errs,
                         "error_permille": 1000 * errs // n,
                         "p50_latency_ms": _nearest_rank(values, 50),
                         "p95_latency_ms": _nearest_rank(values, 95),
                         "max_latency_ms": values[-1]})
    first = min(events, key=lambda e: (e["epoch_s"], e["seq"]), default=None)
    last = min(events, key=lambda e: (-e["epoch_s"], e["seq"]), default=None)
    ranked = sorted(error_groups.items(),
                    key=lambda kv: (-kv[1], _utf8(kv[0][0]), _utf8(kv[0][1])))
    return {"source": payload["source"], "total": len(events),
            "by_level": {lv: level_counts.get(lv, 0) for lv in LEVELS},
            "services": services,
            "first_ts": first["ts"] if first else None,
            "last_ts": last["ts"] if last else None,
            "top_errors": [{"service": s, "message": msg, "count": c}
                           for (s, msg), c in ranked[:5]]}


def report(payload: dict) -> dict:
    """SPEC §8.3: threshold alerts per service, overall status and the fixed summary."""
    analysis, limits = payload["analysis"], payload["thresholds"]
    checks = (("error_rate", "error_permille", limits["error_permille"]),
              ("latency", "p95_latency_ms", limits["p95_latency_ms"]))
    alerts = [
        {"service": svc["service"], "kind": kind,
         "severity": "critical" if svc[field] >= 2 * limit else "warning",
         "value": svc[field], "threshold": limit}
        for svc in analysis["services"]
        for kind, field, limit in checks
        if svc[field] >= limit
    ]
    severities = {a["severity"] for a in alerts}
    status = "critical" if "critical" in severities else ("degraded" if alerts else "ok")
    summary = (f"{analysis['total']} events from {len(analysis['services'])} services; "
               f"{len(alerts)} alerts; status {status}")
    return {"source": analysis["source"], "status": status, "alerts": alerts,
            "summary": summary}


# --- routes ----------------------------------------------------------------------------
def _effective_thresholds(task_input: dict) -> dict:
    given = task_input.get("thresholds") or {}
    return {k: given.get(k, v) for k, v in DEFAULT_THRESHOLDS.items()}


def run_route(steps: list[str], task_input: dict) -> dict:
    """Run a pipeline as the orchestrator must (SPEC §10.2); returns every step's output."""
    outputs: dict[str, dict] = {}
    previous: dict | None = None
    for step in steps:
        if step == "collect":
            previous = collect({"source": task_input["source"],
                                "records": task_input["records"]})
        elif step == "analyze":
            previous = analyze({"source": previous["source"], "events": previous["events"]})
        elif step == "report":
            previous = report({"analysis": previous,
                               "thresholds": _effective_thresholds(task_input)})
        else:
            raise ValueError(f"unknown step {step!r}")
        outputs[step] = previous
    return outputs


def expected_result(task_type: str, input: dict, routes: dict | None = None) -> dict:
    """The result a correct orchestrator returns for a task (the last step's output)."""
    steps = (routes or DEFAULT_ROUTES)[task_type]
    return run_route(steps, input)[steps[-1]]


# --- input generation ------------------------------------------------------------------
_SERVICES = ("payments", "search", "auth", "Checkout", "INVENTORY", "api-gw", "db_1", "0cache")
_LEVEL_SPELLINGS = ("debug", "DEBUG", "info", "Info", "warn", "WARNING", "Warning",
                    "error", "ERROR", "fatal", "CRITICAL", "Fatal")
_MESSAGES = ("ok", "card declined", "card  declined", "slow query", "timeout talking to db",
             "retrying\tlater", "user=42 action=login", "naïve café ☕", "")


def _random_ts(rng: random.Random) -> str:
    year = rng.choice((1970, 2000, 2024, 2026, 9999)) if rng.random() < 0.1 else 2026
    month = rng.randint(1, 12)
    day = rng.randint(1, _month_length(year, month))
    if rng.random() < 0.05 and month == 2 and _month_length(year, 2) == 29:
        day = 29
    return (f"{year:04d}-{month:02d}-{day:02d}T{rng.randint(0, 23):02d}:"
            f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z")


def _blanks(rng: random.Random) -> str:
    return "".join(rng.choice(" \t") for _ in range(rng.choice((1, 1, 1, 2, 3))))


def _good_record(rng: random.Random, error_heavy: set[str]) -> str:
    service = rng.choice(_SERVICES)
    if service.lower() in error_heavy and rng.random() < 0.6:
        level = rng.choice(("error", "ERROR", "fatal", "critical"))
    else:
        level = rng.choice(_LEVEL_SPELLINGS)
    roll = rng.random()
    if roll < 0.02:
        latency = rng.randint(0, 999_999_999)
    elif roll < 0.5:
        latency = rng.randint(0, 200)
    else:
        latency = rng.randint(50, 3000)
    latency_text = str(latency)
    if rng.random() < 0.1:
        latency_text = latency_text.zfill(min(9, len(latency_text) + rng.randint(1, 3)))
    fields = [_random_ts(rng), level, service, latency_text]
    line = _blanks(rng).join(fields)
    message = rng.choice(_MESSAGES)
    if message or rng.random() < 0.5:
        line += _blanks(rng) + message
    lead = rng.choice(("", "", "", " ", "\t "))
    trail = rng.choice(("", "", "", " ", " \t"))
    return lead + line + trail


def _bad_record(rng: random.Random, reason: str) -> Any:
    ts, lvl, svc, lat = _random_ts(rng), rng.choice(_LEVEL_SPELLINGS), rng.choice(_SERVICES), "12"
    if reason == "not_a_string":
        return rng.choice((42, None, True, 3.5, ["a"], {"line": "x"}, -1))
    if reason == "too_long":
        base = f"{ts} {lvl} {svc} {lat} "
        return base + "x" * (MAX_RECORD_CHARS + 1 - len(base) + rng.randint(0, 20))
    if reason == "too_few_fields":
        return rng.choice(("", "   ", f"{ts} {lvl} {svc}", "just\tthree words", "\t"))
    if reason == "bad_timestamp":
        bad_ts = rng.choice(("2026-02-30T10:00:00Z", "1969-12-31T23:59:59Z", "2026-13-01T00:00:00Z",
                             "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z", "2026-01-01 00:00:00",
                             "2026-01-01T00:00:00", "2025-02-29T00:00:00Z", "2100-02-29T12:00:00Z",
                             "not", "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:60Z"))
        return f"{bad_ts} {lvl} {svc} {lat} message"
    if reason == "bad_level":
        return f"{ts} {rng.choice(('notice', 'warn!', 'err', 'trace', 'İNFO'))} {svc} {lat} msg"
    if reason == "bad_service":
        bad_svc = rng.choice(("-payments", "_x", "pay.ments", "caf\u00e9", "\u212aafka", "a" * 65))
        return f"{ts} {lvl} {bad_svc} {lat} msg"
    if reason == "bad_latency":
        bad_lat = rng.choice(("-5", "1234567890", "12ms", "1.5", "\u0661\u0662", "0x10"))
        return f"{ts} {lvl} {svc} {bad_lat} msg"
    raise ValueError(reason)


def generate_input(rng: random.Random, n_records: int, bad_fraction: float = 0.2) -> dict:
    """A realistic, seeded triage input: mixed spellings, blanks, every rejection reason.

    Every rejection reason appears at least once when `n_records` allows (>= 7 records and
    bad_fraction > 0); thresholds are sometimes omitted or partial to exercise defaults.
    """
    n_bad = round(n_records * bad_fraction)
    if bad_fraction > 0:
        n_bad = max(n_bad, min(len(REJECT_REASONS), n_records))
    reasons = [REJECT_REASONS[i % len(REJECT_REASONS)] for i in range(n_bad)]
    error_heavy = set(rng.sample([s.lower() for s in _SERVICES], 2))
    records = [_bad_record(rng, r) for r in reasons]
    records += [_good_record(rng, error_heavy) for _ in range(n_records - n_bad)]
    rng.shuffle(records)
    source = rng.choice(("web-1", "api.eu", "batch_7", "edge-" + "".join(
        rng.choice(string.ascii_lowercase) for _ in range(4))))
    task_input: dict[str, Any] = {"source": source, "records": records}
    shape = rng.random()
    if shape < 0.6:
        task_input["thresholds"] = {"error_permille": rng.randint(1, 400),
                                    "p95_latency_ms": rng.randint(100, 3000)}
    elif shape < 0.8:
        task_input["thresholds"] = rng.choice(({"error_permille": rng.randint(1, 1000)},
                                               {"p95_latency_ms": rng.randint(1, 10**9)}, {}))
    return task_input


MAX_RECORDS = 10_000


def largest_input(rng: random.Random, budget: int, n_records: int = MAX_RECORDS) -> dict:
    """A valid input of `n_records` records whose compact UTF-8 JSON encoding takes exactly
    `budget` bytes (SPEC §4: with the envelope around it, a submit frame of exactly the
    1 MiB limit), built so that every step's output grows with it: each record is an event
    of its own service (10,000 service entries to analyze, up to two alerts each), messages
    carry non-ASCII characters (which an encoder may escape to 6 or 12 bytes) and inner
    blanks. ValueError when `budget` is too small for `n_records` records."""
    levels = ("ERROR", "info", "Warning", "fatal", "debug")
    chars = "é☕→ab c"
    records = []
    for i in range(n_records):
        ts = f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}Z"
        message = "".join(rng.choice(chars) for _ in range(6)).strip() or "m"
        records.append([f"{ts} {levels[i % 5]} svc-{i:05d} {rng.randint(0, 5000)} ", message])
    task_input: dict[str, Any] = {"source": "largest-" + "".join(rng.choice(string.ascii_lowercase) for _ in range(6)),
                                  "records": [], "thresholds": {"error_permille": 100, "p95_latency_ms": 1000}}

    def size(recs) -> int:
        task_input["records"] = recs
        return len(json.dumps(task_input, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))

    base = [head + msg for head, msg in records]
    spare = budget - size(base)
    if spare < 0:
        raise ValueError(f"{n_records} records do not fit in {budget} bytes")
    each, extra = divmod(spare, n_records)
    padded = [head + msg + "x" * (each + (1 if i < extra else 0))
              for i, (head, msg) in enumerate(records)]
    if any(len(r) > MAX_RECORD_CHARS for r in padded):
        raise ValueError(f"{budget} bytes need records over {MAX_RECORD_CHARS} characters")
    assert size(padded) == budget
    return task_input


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality as SPEC §8 defines it (payload comparison in §9.3 and §10.4): objects by
    keys and values in any order, arrays in order, numbers by their value as IEEE 754
    doubles (so 1 == 1.0, and integers beyond 2^53 that round to one double are equal),
    booleans never equal to numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b
