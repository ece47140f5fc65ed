"""The work itself (SPEC §8): collect, analyze, report.

Pure and deterministic -- the graders compute the same results independently and compare
whole payloads -- so keep I/O, clocks and randomness out of this file.
"""
import calendar
import re
import string

from wire import need

TIMESTAMP = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")
SERVICE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
LATENCY = re.compile(r"[0-9]{1,9}")
BLANKS = re.compile(r"[ \t]+")
LEVELS = {"debug": "debug", "info": "info", "warn": "warn", "warning": "warn",
          "error": "error", "fatal": "fatal", "critical": "fatal"}
ERROR_LEVELS = ("error", "fatal")
DEFAULT_THRESHOLDS = {"error_permille": 50, "p95_latency_ms": 1000}
# ASCII-only lower-casing: str.lower() would turn the Kelvin sign into "k".
ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def epoch_seconds(ts):
    """Seconds since 1970 for a valid timestamp, None when it is not a real UTC time."""
    match = TIMESTAMP.fullmatch(ts)
    if not match:
        return None
    year, month, day, hour, minute, second = map(int, match.groups())
    if not (1970 <= year <= 9999 and 1 <= month <= 12 and hour < 24 and minute < 60
            and second < 60 and 1 <= day <= calendar.monthrange(year, month)[1]):
        return None
    return calendar.timegm((year, month, day, hour, minute, second))


def parse_record(record):
    """One raw record -> (event fields, None) or (None, rejection reason). §8.1 rules 1-7."""
    if not isinstance(record, str):
        return None, "not_a_string"
    if len(record) > 4096:
        return None, "too_long"
    fields = BLANKS.split(record.strip(" \t"), maxsplit=4)
    if len(fields) < 4:
        return None, "too_few_fields"
    ts, level, service, latency = fields[:4]
    epoch = epoch_seconds(ts)
    if epoch is None:
        return None, "bad_timestamp"
    level = LEVELS.get(level.translate(ASCII_LOWER))
    if level is None:
        return None, "bad_level"
    service = service.translate(ASCII_LOWER)
    if not SERVICE.fullmatch(service):
        return None, "bad_service"
    if not LATENCY.fullmatch(latency):
        return None, "bad_latency"
    message = fields[4] if len(fields) == 5 else ""
    return {"ts": ts, "epoch_s": epoch, "level": level, "service": service,
            "latency_ms": int(latency), "message": message}, None


def collect(payload):
    source = need(payload.get("source"), str, "$.payload.source")
    records = need(payload.get("records"), list, "$.payload.records")
    # CHALLENGE(schema-drift): validate the rest of collect_input.json (source pattern,
    # at most 10,000 records, no extra fields) and answer schema_violation with the path.
    events, rejected = [], []
    for seq, record in enumerate(records):
        event, reason = parse_record(record)
        if event is None:
            rejected.append({"seq": seq, "reason": reason})
        else:
            events.append({"seq": seq, **event})
    return {"source": source, "events": events, "rejected": rejected,
            "counts": {"received": len(records), "accepted": len(events),
                       "rejected": len(rejected)}}


def nearest_rank(sorted_values, p):
    return sorted_values[(p * len(sorted_values) + 99) // 100 - 1]


def analyze(payload):
    source = need(payload.get("source"), str, "$.payload.source")
    events = need(payload.get("events"), list, "$.payload.events")
    # CHALLENGE(schema-drift): check every event against analyze_input.json first.
    by_level = dict.fromkeys(["debug", "info", "warn", "error", "fatal"], 0)
    per_service, error_groups = {}, {}
    for event in events:
        by_level[event["level"]] += 1
        per_service.setdefault(event["service"], []).append(event)
        if event["level"] in ERROR_LEVELS:
            key = (event["service"], event["message"])
            error_groups[key] = error_groups.get(key, 0) + 1
    services = []
    for name in sorted(per_service):  # code point order == UTF-8 byte order
        group = per_service[name]
        latencies = sorted(event["latency_ms"] for event in group)
        errors = sum(event["level"] in ERROR_LEVELS for event in group)
        services.append({"service": name, "count": len(group), "errors": errors,
                         "error_permille": 1000 * errors // len(group),
                         "p50_latency_ms": nearest_rank(latencies, 50),
                         "p95_latency_ms": nearest_rank(latencies, 95),
                         "max_latency_ms": latencies[-1]})
    first = min(events, key=lambda e: (e["epoch_s"], e["seq"]), default=None)
    last = max(events, key=lambda e: (e["epoch_s"], -e["seq"]), default=None)
    top = sorted(error_groups.items(), key=lambda item: (-item[1], item[0]))[:5]
    return {"source": source, "total": len(events), "by_level": by_level,
            "services": services,
            "first_ts": first["ts"] if first else None,
            "last_ts": last["ts"] if last else None,
            "top_errors": [{"service": s, "message": m, "count": c} for (s, m), c in top]}


def report(payload):
    analysis = need(payload.get("analysis"), dict, "$.payload.analysis")
    thresholds = need(payload.get("thresholds"), dict, "$.payload.thresholds")
    # CHALLENGE(schema-drift): validate against report_input.json (E in 1..1000, ...).
    alerts = []
    for entry in analysis["services"]:
        for kind, value, threshold in (
                ("error_rate", entry["error_permille"], thresholds["error_permille"]),
                ("latency", entry["p95_latency_ms"], thresholds["p95_latency_ms"])):
            if value >= threshold:
                alerts.append({"service": entry["service"], "kind": kind,
                               "severity": "critical" if value >= 2 * threshold else "warning",
                               "value": value, "threshold": threshold})
    severities = {alert["severity"] for alert in alerts}
    status = "critical" if "critical" in severities else "degraded" if alerts else "ok"
    return {"source": analysis["source"], "status": status, "alerts": alerts,
            "summary": f"{analysis['total']} events from {len(analysis['services'])} services; "
                       f"{len(alerts)} alerts; status {status}"}


STEPS = {"collect": collect, "analyze": analyze, "report": report}
AGENT_FOR_STEP = {"collect": "collector", "analyze": "analyzer", "report": "reporter"}
