"""Retry backoff (SPEC §10.3): equal jitter, so every gap has a lower bound of d/2.

Pure: the random source is passed in, so tests (and replays) are deterministic.
"""

from __future__ import annotations

import random


def backoff_ceiling_ms(attempts_made: int, base_ms: int, cap_ms: int) -> int:
    """``d = min(cap, base * 2^(n-1))`` for the wait before attempt n+1 (n >= 1)."""
    if attempts_made < 1:
        raise ValueError("backoff is defined after at least one attempt")
    # Cap the exponent first so a large n cannot build a huge integer.
    exponent = min(attempts_made - 1, 62)
    return min(cap_ms, base_ms * (1 << exponent))


def backoff_delay_ms(attempts_made: int, base_ms: int, cap_ms: int, rng: random.Random,
                     retry_after_ms: int | None = None) -> float:
    """A uniformly random delay in ``[d/2, d]``, or ``retry_after_ms`` when that is larger."""
    d = backoff_ceiling_ms(attempts_made, base_ms, cap_ms)
    delay = rng.uniform(d / 2.0, float(d))
    if retry_after_ms is not None and retry_after_ms > delay:
        delay = float(retry_after_ms)
    return delay
