"""Payloads compared with exact integers: 2^53 and 2^53 + 1 are different tasks.

The mistake: payload equality compares integers exactly, so a resubmission an
implementation with double-precision numbers cannot tell apart from the original is an
idempotency_conflict instead of a replay (SPEC §8: numbers are equal as IEEE 754
doubles). Patched: the ``json_equal`` used by the task table and by agents compares
numbers exactly.
"""
from launch_common import patch


def _make(original):
    def json_equal(a, b):
        if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool) and not isinstance(b, bool):
            return a == b
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
        return original(a, b)
    return json_equal


patch("reference_impl.orchestrator.tasks:json_equal", _make)
patch("reference_impl.agents.service:json_equal", _make)
