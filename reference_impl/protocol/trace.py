"""W3C Trace Context `traceparent` (version 00) parsing and formatting.

Why here and pure: every service needs the same rules to decide whether a client's
trace context is usable (else the orchestrator starts a new trace, SPEC §12), and ids
must be lowercase hex with the all-zero values invalid, exactly as W3C says.
"""

from __future__ import annotations

import random
import re
import secrets
from typing import NamedTuple

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class TraceContext(NamedTuple):
    trace_id: str
    span_id: str
    flags: str

    @property
    def traceparent(self) -> str:
        return format_traceparent(self.trace_id, self.span_id, self.flags)


def parse_traceparent(s) -> TraceContext | None:
    """A TraceContext for a valid version-00 traceparent, else None (never raises)."""
    if not isinstance(s, str) or len(s) != 55:
        return None
    m = _TRACEPARENT.fullmatch(s)
    if not m:
        return None
    version, trace_id, span_id, flags = m.groups()
    if version != "00" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceContext(trace_id, span_id, flags)


# Ids need to be unique, not secret (W3C Trace Context asks for random, not for a
# cryptographic generator): a PRNG seeded from the OS once per process costs no system
# call per id, unlike ``secrets`` (several ids per task on every service).
_PROCESS_RNG = random.Random(secrets.randbits(128))


def _hex(nbytes: int, rng: random.Random | None) -> str:
    rng = rng or _PROCESS_RNG
    while True:
        value = rng.getrandbits(8 * nbytes).to_bytes(nbytes, "big").hex()
        if value.strip("0"):  # all-zero ids are invalid
            return value


def new_trace_id(rng: random.Random | None = None) -> str:
    """32 lowercase hex, never all zero. Pass a seeded `rng` for reproducible ids."""
    return _hex(16, rng)


def new_span_id(rng: random.Random | None = None) -> str:
    """16 lowercase hex, never all zero."""
    return _hex(8, rng)


def format_traceparent(trace_id: str, span_id: str, flags: str = "01") -> str:
    ctx = f"00-{trace_id}-{span_id}-{flags}"
    if parse_traceparent(ctx) is None:
        raise ValueError(f"invalid trace context {ctx!r}")
    return ctx
