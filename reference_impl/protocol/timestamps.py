"""The SPEC's one timestamp format: RFC 3339 UTC with milliseconds, ``...T14:50:31.123Z``.

Why a module of its own: every log line, every stored record and every task carries one,
so it sits on the hot path of all four services (several per task). ``datetime`` +
``strftime`` per call was a measurable share of the orchestrator's CPU; the date-and-time
prefix changes once a second, so it is formatted once per second and only the
milliseconds are appended per call. Pure: callers read the clock and pass the time.
"""
from __future__ import annotations

import time  # gmtime/strftime only: no clock is read here

__all__ = ["rfc3339_ms"]

# (whole second, its "YYYY-MM-DDTHH:MM:SS." prefix); replaced as one tuple, so threads
# never see a second paired with another second's prefix.
_prefix: tuple[int, str] = (-1, "")


def rfc3339_ms(epoch: float) -> str:
    """``epoch`` (seconds since 1970) as ``YYYY-MM-DDTHH:MM:SS.mmmZ``: rounded to the
    microsecond first, as ``datetime.fromtimestamp`` does, then truncated to the
    millisecond (so ``x.1239`` is ``.123``)."""
    global _prefix
    second, micros = divmod(round(epoch * 1_000_000), 1_000_000)
    cached = _prefix
    if cached[0] != second:
        cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)))
        _prefix = cached
    return f"{cached[1]}{micros // 1000:03d}Z"
