"""W3C traceparent parsing/formatting and id generation."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl.protocol.trace import (
    TraceContext, format_traceparent, new_span_id, new_trace_id, parse_traceparent,
)

GOOD = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_parse_spec_example():
    ctx = parse_traceparent(GOOD)
    assert ctx == TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01")
    assert ctx.traceparent == GOOD


@pytest.mark.parametrize("bad", [
    None, 1, "", GOOD.upper(), GOOD + "-", GOOD[:-1], "ff" + GOOD[2:], "01" + GOOD[2:],
    "00-" + "0" * 32 + "-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",
    GOOD.replace("-", "_"), GOOD + "\n", "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
])
def test_invalid_traceparents(bad):
    assert parse_traceparent(bad) is None


def test_new_ids_are_valid_and_seedable():
    rng_a, rng_b = random.Random(7), random.Random(7)
    ids_a = [(new_trace_id(rng_a), new_span_id(rng_a)) for _ in range(50)]
    ids_b = [(new_trace_id(rng_b), new_span_id(rng_b)) for _ in range(50)]
    assert ids_a == ids_b and len(set(ids_a)) == 50
    for t, s in ids_a + [(new_trace_id(), new_span_id())]:
        assert parse_traceparent(format_traceparent(t, s)) == TraceContext(t, s, "01")


def test_format_rejects_invalid():
    with pytest.raises(ValueError):
        format_traceparent("0" * 32, "1" * 16)


@settings(max_examples=200, derandomize=True)
@given(st.text(max_size=60))
def test_parse_never_raises(s):
    ctx = parse_traceparent(s)
    assert ctx is None or ctx.traceparent == s
