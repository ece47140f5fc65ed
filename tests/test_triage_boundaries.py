"""graders.checks.triage_boundaries: the boundary inputs pipeline.triage_oracle sends
really land on the thresholds, and they tell every off-by-one of SPEC §8.3 apart."""
from __future__ import annotations

import json
import random

from hypothesis import given
from hypothesis import strategies as st

from graders import oracle
from graders.checks import triage_boundaries as tb


@given(st.integers(min_value=0, max_value=1000))
def test_permille_split_gives_exactly_the_value(value):
    errors, count = tb.permille_split(value)
    assert 0 <= errors <= count <= 1000
    assert 1000 * errors // count == value


def _services(task_input):
    collected = oracle.collect({"source": task_input["source"], "records": task_input["records"]})
    assert collected["counts"]["rejected"] == 0
    analysis = oracle.analyze({"source": task_input["source"], "events": collected["events"]})
    return analysis, {s["service"]: s for s in analysis["services"]}


def _thresholds(task_input):
    return {**oracle.DEFAULT_THRESHOLDS, **task_input.get("thresholds", {})}


def _report_with(analysis, limits, fires, critical):
    """SPEC §8.3 with the two comparisons replaced: a candidate's possible mistakes."""
    alerts = []
    for s in analysis["services"]:
        for kind, key, limit in (("error_rate", "error_permille", limits["error_permille"]),
                                 ("latency", "p95_latency_ms", limits["p95_latency_ms"])):
            if fires(s[key], limit):
                alerts.append((s["service"], kind, critical(s[key], limit)))
    return alerts


def test_every_input_puts_a_service_on_each_boundary_value():
    for seed in range(20):
        for what, task_input in tb.boundary_inputs(random.Random(seed)):
            analysis, services = _services(task_input)
            limits = _thresholds(task_input)
            e, l_ = limits["error_permille"], limits["p95_latency_ms"]
            permilles = sorted(s["error_permille"] for n, s in services.items() if n.startswith("err-"))
            p95s = sorted(s["p95_latency_ms"] for n, s in services.items() if n.startswith("lat-"))
            assert permilles == tb.boundary_values(e, 1000), what
            assert p95s == tb.boundary_values(l_, tb.MAX_LATENCY), what
            assert e - 1 in permilles and e in permilles, what
            assert l_ - 1 in p95s or l_ - 1 > tb.MAX_LATENCY, what
            if 2 * e <= 1000:
                assert {2 * e - 1, 2 * e} <= set(permilles), what
            # no error-rate service alerts on latency, and no latency service on errors
            for name, s in services.items():
                if name.startswith("err-"):
                    assert s["p95_latency_ms"] == 0
                else:
                    assert s["error_permille"] == 0
            assert len(json.dumps({"input": task_input})) < 200_000


def test_off_by_one_mistakes_change_the_result():
    """Each wrong comparison gives a different alert list on at least one input: the
    check can fail for each of them."""
    right = (lambda v, t: v >= t, lambda v, t: v >= 2 * t)
    mistakes = {
        "alert only above the threshold": (lambda v, t: v > t, right[1]),
        "alert from one below": (lambda v, t: v >= t - 1, right[1]),
        "critical only above double": (right[0], lambda v, t: v > 2 * t),
        "critical from one below double": (right[0], lambda v, t: v >= 2 * t - 1),
    }
    inputs = tb.boundary_inputs(random.Random(7))
    for name, (fires, critical) in mistakes.items():
        differs = False
        for _what, task_input in inputs:
            analysis, _ = _services(task_input)
            limits = _thresholds(task_input)
            expected = oracle.report({"analysis": analysis, "thresholds": limits})["alerts"]
            assert [(a["service"], a["kind"], a["severity"] == "critical") for a in expected] == \
                _report_with(analysis, limits, *right)
            differs |= _report_with(analysis, limits, fires, critical) != _report_with(analysis, limits, *right)
        assert differs, name


def test_the_input_is_deterministic_for_a_seed():
    assert tb.boundary_inputs(random.Random(3)) == tb.boundary_inputs(random.Random(3))


def _outcomes(task_input):
    """record -> "accepted" or its rejection reason, by the oracle."""
    collected = oracle.collect(task_input)
    out = {task_input["records"][e["seq"]]: "accepted" for e in collected["events"]}
    out.update({task_input["records"][r["seq"]]: r["reason"] for r in collected["rejected"]})
    return out


def test_record_limits_are_each_reached_and_passed_by_one():
    (_what, task_input), *_ = tb.record_boundary_inputs(random.Random(2))
    outcomes = _outcomes(task_input)
    by_length = {len(r): o for r, o in outcomes.items() if len(r) > 1000}
    assert by_length == {tb.MAX_RECORD_CHARS: "accepted", tb.MAX_RECORD_CHARS + 1: "too_long"}
    # code points, not bytes: the long records are mostly 2- and 3-byte characters
    assert all(len(r.encode()) > 2 * tb.MAX_RECORD_CHARS for r in outcomes if len(r) > 1000)
    services = {r.split()[2]: o for r, o in outcomes.items() if r.split()[2].lower().startswith("svv")}
    assert sorted((len(s), o) for s, o in services.items()) == [(64, "accepted"), (65, "bad_service")]
    latency = {r.split()[3]: o for r, o in outcomes.items() if r.split()[2] == "edge"
               and len(r.split()) > 3 and len(r.split()[3]) >= 9}
    assert latency == {"999999999": "accepted", "000000001": "accepted", "0000000001": "bad_latency"}
    assert outcomes.get("2026-11-29T10:00:00Z info edge") == "too_few_fields"
    four = [r for r in outcomes if len(r.split()) == 4]
    assert four and all(outcomes[r] == "accepted" for r in four)
    stamps = {r.split()[0][:19]: o for r, o in outcomes.items() if "edge 1 " in r}
    assert stamps["1970-01-01T00:00:00"] == stamps["9999-12-31T23:59:59"] == "accepted"
    assert stamps["2024-02-29T23:59:59"] == stamps["2026-11-30T00:00:00"] == "accepted"
    for bad in ("1969-12-31T23:59:59", "2100-02-29T00:00:00", "2026-11-31T00:00:00",
                "2026-12-31T24:00:00", "2026-12-31T23:60:00", "2026-12-31T23:59:60"):
        assert stamps[bad] == "bad_timestamp", bad


def test_top_errors_at_and_past_its_limit():
    _records, five, six = tb.record_boundary_inputs(random.Random(4))
    for (_what, task_input), groups in ((five, 5), (six, 6)):
        collected = oracle.collect(task_input)
        assert collected["counts"]["rejected"] == 0
        distinct = {(e["service"], e["message"]) for e in collected["events"]}
        assert len(distinct) == groups
        analysis = oracle.analyze({"source": task_input["source"], "events": collected["events"]})
        assert len(analysis["top_errors"]) == tb.MAX_TOP_ERRORS
