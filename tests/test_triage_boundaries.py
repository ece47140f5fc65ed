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
