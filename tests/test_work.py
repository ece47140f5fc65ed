"""The work (SPEC §8): worked examples parsed from SPEC.md, rule-by-rule cases, and
properties (outputs validate against the output schemas, counts add up, determinism,
percentile and ordering invariants) checked against independent computations."""

import calendar
import datetime
import json
import re
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spec_examples import spec_blocks, worked_example  # noqa: E402  (tests/ is on sys.path)
from reference_impl.work import (
    DEFAULT_THRESHOLDS, STEPS, analyze, collect, effective_thresholds, report,
)

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = {p.stem: jsonschema.Draft202012Validator(json.loads(p.read_text(encoding="utf-8")))
           for p in (ROOT / "challenges" / "schemas").glob("*.json")}
SETTINGS = settings(max_examples=150, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def one(record):
    out = collect({"source": "s", "records": [record]})
    return out["events"][0] if out["events"] else out["rejected"][0]["reason"]


# ---- SPEC §18.1, straight from the document ------------------------------------------------

def test_spec_worked_example_end_to_end():
    submit, collect_out, analyze_out, report_out = worked_example()
    task_input = submit["payload"]["input"]
    c = collect({"source": task_input["source"], "records": task_input["records"]})
    assert c == collect_out
    a = analyze({"source": c["source"], "events": c["events"]})
    assert a == analyze_out
    r = report({"analysis": a, "thresholds": effective_thresholds(task_input["thresholds"])})
    assert r == report_out
    assert STEPS["report"] is report and STEPS["collect"] is collect and STEPS["analyze"] is analyze


def test_default_thresholds_match_spec():
    assert DEFAULT_THRESHOLDS == {"error_permille": 50, "p95_latency_ms": 1000}
    assert effective_thresholds(None) == DEFAULT_THRESHOLDS
    assert effective_thresholds({"p95_latency_ms": 7}) == {"error_permille": 50, "p95_latency_ms": 7}


# ---- collect, rule by rule -------------------------------------------------------------------

@pytest.mark.parametrize("record, reason", [
    (42, "not_a_string"), (None, "not_a_string"), (["a"], "not_a_string"), ({"a": 1}, "not_a_string"),
    (True, "not_a_string"), (1.5, "not_a_string"),
    ("2026-11-29T10:00:00Z info svc 1 " + "x" * 4070, "too_long"),
    ("", "too_few_fields"), ("   \t ", "too_few_fields"), ("a b c", "too_few_fields"),
    ("2026-11-29T10:00:00Z\u00a0info svc 1", "too_few_fields"),       # NBSP is not blank
    ("2026-11-29T10:00:00Z\ninfo svc 1 m", "bad_timestamp"),          # newline is not blank: 4 fields
    ("not a log line", "bad_timestamp"),
    ("2026-11-29T10:00:00z info svc 1", "bad_timestamp"),
    ("2026-11-29 10:00:00Z info svc 1 x", "bad_timestamp"),
    ("2026-11-29T10:00:00.5Z info svc 1", "bad_timestamp"),
    ("1969-12-31T23:59:59Z info svc 1", "bad_timestamp"),
    ("2023-02-29T00:00:00Z info svc 1", "bad_timestamp"),
    ("2100-02-29T00:00:00Z info svc 1", "bad_timestamp"),
    ("2026-04-31T00:00:00Z info svc 1", "bad_timestamp"),
    ("2026-13-01T00:00:00Z info svc 1", "bad_timestamp"),
    ("2026-00-01T00:00:00Z info svc 1", "bad_timestamp"),
    ("2026-01-00T00:00:00Z info svc 1", "bad_timestamp"),
    ("2026-01-01T24:00:00Z info svc 1", "bad_timestamp"),
    ("2026-01-01T00:60:00Z info svc 1", "bad_timestamp"),
    ("2026-01-01T00:00:60Z info svc 1", "bad_timestamp"),
    ("２026-01-01T00:00:00Z info svc 1", "bad_timestamp"),            # fullwidth digit
    ("2026-01-01T00:00:00Z inf svc 1", "bad_level"),
    ("2026-01-01T00:00:00Z warnings svc 1", "bad_level"),
    ("2026-01-01T00:00:00Z ınfo svc 1", "bad_level"),                 # dotless i: not ASCII
    ("2026-01-01T00:00:00Z bogus BAD! 1", "bad_level"),               # first failing rule wins
    ("2026-01-01T00:00:00Z info -svc 1", "bad_service"),
    ("2026-01-01T00:00:00Z info _svc 1", "bad_service"),
    ("2026-01-01T00:00:00Z info s.v 1", "bad_service"),
    ("2026-01-01T00:00:00Z info \u212aelvin 1", "bad_service"),       # KELVIN SIGN lowers to k in Unicode
    ("2026-01-01T00:00:00Z info " + "a" * 65 + " 1", "bad_service"),
    ("2026-01-01T00:00:00Z info svc 1234567890", "bad_latency"),
    ("2026-01-01T00:00:00Z info svc -1", "bad_latency"),
    ("2026-01-01T00:00:00Z info svc 1.5", "bad_latency"),
    ("2026-01-01T00:00:00Z info svc ١٢", "bad_latency"),              # Arabic-Indic digits
    ("2026-01-01T00:00:00Z info svc 12ms", "bad_latency"),
])
def test_rejections(record, reason):
    assert one(record) == reason


def test_length_limit_is_in_code_points():
    base = "2026-11-29T10:00:00Z info svc 1 "
    ok = base + "é" * (4096 - len(base))
    assert len(ok) == 4096 and isinstance(one(ok), dict)
    assert one(ok + "é") == "too_long"


@pytest.mark.parametrize("record, level, service, latency, message", [
    ("2026-11-29T10:00:00Z ERROR payments 120 card declined", "error", "payments", 120, "card declined"),
    ("\t 2026-11-29T10:00:00Z\tWarning\t\tSvc_1-a \t007   a  b\tc \t ", "warn", "svc_1-a", 7, "a  b\tc"),
    ("2026-11-29T10:00:00Z CRITICAL x 0", "fatal", "x", 0, ""),
    ("2026-11-29T10:00:00Z fAtAl 9 999999999 trailing", "fatal", "9", 999999999, "trailing"),
    ("2026-11-29T10:00:00Z debug a" + "b" * 63 + " 1 m", "debug", "a" + "b" * 63, 1, "m"),
    ("2026-11-29T10:00:00Z info svc 1 msg\u00a0with nbsp ", "info", "svc", 1, "msg\u00a0with nbsp"),
])
def test_accepted_records(record, level, service, latency, message):
    event = one(record)
    assert (event["level"], event["service"], event["latency_ms"], event["message"]) == (
        level, service, latency, message)
    assert event["ts"] == "2026-11-29T10:00:00Z" and event["epoch_s"] == 1795946400


@pytest.mark.parametrize("ts", ["1970-01-01T00:00:00Z", "2000-02-29T12:34:56Z", "2024-02-29T23:59:59Z",
                                "9999-12-31T23:59:59Z", "2038-01-19T03:14:08Z"])
def test_epoch_seconds(ts):
    expected = int(datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")
                   .replace(tzinfo=datetime.timezone.utc).timestamp())
    assert one(f"{ts} info s 1")["epoch_s"] == expected


def test_empty_input():
    assert collect({"source": "s", "records": []}) == {
        "source": "s", "events": [], "rejected": [], "counts": {"received": 0, "accepted": 0, "rejected": 0}}
    a = analyze({"source": "s", "events": []})
    assert a == {"source": "s", "total": 0, "by_level": dict.fromkeys(["debug", "info", "warn", "error", "fatal"], 0),
                 "services": [], "first_ts": None, "last_ts": None, "top_errors": []}
    assert report({"analysis": a, "thresholds": DEFAULT_THRESHOLDS}) == {
        "source": "s", "status": "ok", "alerts": [], "summary": "0 events from 0 services; 0 alerts; status ok"}


# ---- analyze / report targeted cases --------------------------------------------------------

def ev(seq, epoch, level="info", service="s", latency=1, message=""):
    ts = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"seq": seq, "ts": ts, "epoch_s": epoch, "level": level, "service": service,
            "latency_ms": latency, "message": message}


def test_first_last_ties_take_smallest_seq():
    events = [ev(5, 100), ev(2, 300), ev(1, 100), ev(3, 300), ev(4, 200)]
    events[2]["ts"] = "tie-first"  # distinguish equal-epoch events (analyze copies ts as given)
    events[1]["ts"] = "tie-last"
    a = analyze({"source": "s", "events": events})
    assert (a["first_ts"], a["last_ts"]) == ("tie-first", "tie-last")


def test_percentiles_and_permille():
    lat = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    events = [ev(i, 1000 + i, "error" if i < 3 else "info", latency=x) for i, x in enumerate(lat)]
    s = analyze({"source": "s", "events": events})["services"][0]
    assert (s["count"], s["errors"], s["error_permille"]) == (20, 3, 150)
    assert (s["p50_latency_ms"], s["p95_latency_ms"], s["max_latency_ms"]) == (10, 19, 20)
    s = analyze({"source": "s", "events": [ev(0, 1, "fatal", latency=7)]})["services"][0]
    assert (s["p50_latency_ms"], s["p95_latency_ms"], s["error_permille"]) == (7, 7, 1000)
    # 1 error in 3 -> floor(333.33) = 333, never rounded up
    three = [ev(0, 1, "error"), ev(1, 1), ev(2, 1)]
    assert analyze({"source": "s", "events": three})["services"][0]["error_permille"] == 333


def test_top_errors_order_and_limit():
    msgs = [("b", "x", 3), ("a", "y", 3), ("a", "x", 3), ("c", "z", 1), ("c", "Z", 1), ("d", "é", 2), ("d", "f", 1)]
    events, seq = [], 0
    for service, message, count in msgs:
        for _ in range(count):
            events.append(ev(seq, 10, "fatal" if seq % 2 else "error", service, 1, message))
            seq += 1
    events.append(ev(seq, 10, "warn", "a", 1, "x"))  # not an error
    top = analyze({"source": "s", "events": events})["top_errors"]
    assert [(t["service"], t["message"], t["count"]) for t in top] == [
        ("a", "x", 3), ("a", "y", 3), ("b", "x", 3), ("d", "é", 2), ("c", "Z", 1)]


def test_report_thresholds_inclusive_and_severity():
    analysis = analyze({"source": "s", "events": [ev(0, 1, "error", "a", 100), ev(1, 1, "info", "a", 50),
                                                   ev(2, 1, "info", "b", 99)]})
    r = report({"analysis": analysis, "thresholds": {"error_permille": 250, "p95_latency_ms": 50}})
    assert r["alerts"] == [
        {"service": "a", "kind": "error_rate", "severity": "critical", "value": 500, "threshold": 250},
        {"service": "a", "kind": "latency", "severity": "critical", "value": 100, "threshold": 50},
        {"service": "b", "kind": "latency", "severity": "warning", "value": 99, "threshold": 50},
    ]
    assert r["status"] == "critical" and r["summary"] == "3 events from 2 services; 3 alerts; status critical"
    r = report({"analysis": analysis, "thresholds": {"error_permille": 500, "p95_latency_ms": 1000}})
    assert r["status"] == "degraded" and r["alerts"][0]["severity"] == "warning"
    assert r["summary"] == "3 events from 2 services; 1 alerts; status degraded"


# ---- properties ------------------------------------------------------------------------------

BLANK = st.text(alphabet=" \t", min_size=1, max_size=3)
VALID = {
    "ts": st.datetimes(min_value=datetime.datetime(1970, 1, 1),
                       max_value=datetime.datetime(9999, 12, 31, 23, 59, 59))
    .map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
    "level": st.sampled_from(["info", "INFO", "Warn", "warning", "error", "FATAL", "critical", "debug"]),
    "service": st.one_of(st.sampled_from(["payments", "Search", "PAYMENTS", "db-1", "x_y", "a"]),
                         st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,5}", fullmatch=True)),
    "latency": st.one_of(st.integers(0, 3000), st.integers(0, 999_999_999)).map(str),
}
INVALID = {
    "ts": st.sampled_from(["2026-02-30T00:00:00Z", "2026-11-29T10:00:00", "x", "1969-01-01T00:00:00Z"]),
    "level": st.sampled_from(["trace", "é", "warnings", "ınfo"]),
    "service": st.sampled_from(["-bad", "K\u212a", "é", "a.b"]),
    "latency": st.sampled_from(["1234567890", "-5", "1e3", "١"]),
}
MESSAGE = st.one_of(st.sampled_from(["card declined", "card  declined", "timeout", "ok"]),
                    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n"), max_size=12))


@st.composite
def log_line(draw):
    """Mostly valid lines (each field invalid with probability ~1/10), blanks of all kinds."""
    parts = []
    for name in ("ts", "level", "service", "latency"):
        bad = draw(st.integers(0, 9)) == 9
        parts.append(draw((INVALID if bad else VALID)[name]))
    n = 5 - min(draw(st.integers(0, 9)), 3) if draw(st.integers(0, 9)) == 9 else 5
    fields = parts[:n] + ([draw(MESSAGE)] if n == 5 and draw(st.booleans()) else [])
    line = draw(st.text(alphabet=" \t", max_size=2))
    for i, f in enumerate(fields):
        line += f + (draw(BLANK) if i < len(fields) - 1 else "")
    return line + draw(st.text(alphabet=" \t", max_size=2))


JUNK = st.one_of(st.none(), st.integers(), st.text(max_size=10), st.lists(st.integers(), max_size=2))
RECORD = st.integers(0, 9).flatmap(lambda k: JUNK if k == 9 else log_line())
SOURCE = st.from_regex(r"[A-Za-z0-9_.-]{1,10}", fullmatch=True)


def check(name, instance):
    errors = [e.message for e in SCHEMAS[name].iter_errors(instance)]
    assert not errors, errors[:3]


def oracle_percentile(values, p):
    """Nearest rank straight from the definition: smallest v with >= p% of values <= v."""
    ordered = sorted(values)
    for v in ordered:
        if 100 * sum(1 for x in ordered if x <= v) >= p * len(ordered):
            return v


@SETTINGS
@given(source=SOURCE, records=st.lists(RECORD, max_size=25),
       thresholds=st.fixed_dictionaries({}, optional={"error_permille": st.integers(1, 1000),
                                                      "p95_latency_ms": st.integers(1, 10**9)}))
def test_pipeline_properties(source, records, thresholds):
    cin = {"source": source, "records": records}
    check("collect_input", cin)
    c = collect(cin)
    check("collect_output", c)
    assert collect(json.loads(json.dumps(cin))) == c  # deterministic, JSON-only
    n = len(records)
    assert c["counts"] == {"received": n, "accepted": len(c["events"]), "rejected": len(c["rejected"])}
    seqs = [e["seq"] for e in c["events"]] + [r["seq"] for r in c["rejected"]]
    assert sorted(seqs) == list(range(n))
    assert [e["seq"] for e in c["events"]] == sorted(e["seq"] for e in c["events"])
    assert [r["seq"] for r in c["rejected"]] == sorted(r["seq"] for r in c["rejected"])
    for e in c["events"]:
        raw = records[e["seq"]]
        assert e["ts"] in raw and e["message"] in raw
        assert e["epoch_s"] == calendar.timegm(datetime.datetime.strptime(e["ts"], "%Y-%m-%dT%H:%M:%SZ").timetuple())
        assert raw.strip(" \t").endswith(e["message"])
    for r in c["rejected"]:
        if not isinstance(records[r["seq"]], str):
            assert r["reason"] == "not_a_string"

    ain = {"source": c["source"], "events": c["events"]}
    check("analyze_input", ain)
    a = analyze(ain)
    check("analyze_output", a)
    assert a["total"] == len(c["events"]) == sum(a["by_level"].values())
    assert sum(s["count"] for s in a["services"]) == a["total"]
    names = [s["service"] for s in a["services"]]
    assert names == sorted(set(names), key=lambda s: s.encode())
    for s in a["services"]:
        lat = [e["latency_ms"] for e in c["events"] if e["service"] == s["service"]]
        errs = sum(1 for e in c["events"] if e["service"] == s["service"] and e["level"] in ("error", "fatal"))
        assert s["errors"] == errs and s["error_permille"] == (1000 * errs) // len(lat)
        assert s["p50_latency_ms"] == oracle_percentile(lat, 50)
        assert s["p95_latency_ms"] == oracle_percentile(lat, 95)
        assert s["max_latency_ms"] == max(lat)
    groups = Counter((e["service"], e["message"]) for e in c["events"] if e["level"] in ("error", "fatal"))
    top = [(t["service"], t["message"], t["count"]) for t in a["top_errors"]]
    assert len(top) == min(5, len(groups))
    assert all(groups[(s, m)] == k for s, m, k in top)
    if len(groups) > 5:
        assert min(k for _, _, k in top) >= max(k for g, k in groups.items() if (g[0], g[1], k) not in top)
    if c["events"]:
        epochs = [e["epoch_s"] for e in c["events"]]
        assert a["first_ts"] == next(e["ts"] for e in c["events"] if e["epoch_s"] == min(epochs))
        assert a["last_ts"] == next(e["ts"] for e in c["events"] if e["epoch_s"] == max(epochs))

    rin = {"analysis": a, "thresholds": effective_thresholds(thresholds)}
    check("report_input", rin)
    r = report(rin)
    check("report_output", r)
    assert r == report(json.loads(json.dumps(rin)))
    sev = {a_["severity"] for a_ in r["alerts"]}
    assert r["status"] == ("critical" if "critical" in sev else "degraded" if sev else "ok")
    assert r["summary"] == f"{a['total']} events from {len(a['services'])} services; {len(r['alerts'])} alerts; status {r['status']}"
    for alert in r["alerts"]:
        assert alert["value"] >= alert["threshold"]
        assert (alert["severity"] == "critical") == (alert["value"] >= 2 * alert["threshold"])


def test_large_batch_is_fast_and_valid():
    records = [f"2026-11-29T10:{i % 60:02d}:{i % 60:02d}Z {'error' if i % 7 == 0 else 'info'} svc{i % 13} {i} m{i % 11}"
               for i in range(10_000)]
    c = collect({"source": "big", "records": records})
    assert c["counts"]["accepted"] == 10_000
    check("collect_output", c)
    a = analyze({"source": "big", "events": c["events"]})
    check("analyze_output", a)
    assert len(a["services"]) == 13 and len(a["top_errors"]) == 5
