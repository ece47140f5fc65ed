"""Full jitter: each retry waits a uniformly random time in [0, d] instead of [d/2, d].

The mistake: the well-known "full jitter" recipe, which SPEC §10.3 forbids because its
waits have no lower bound: about half of them are shorter than d/2 and some are close
to zero, so from outside a program with this backoff cannot be told from one that
retries at once. Everything else (attempt count, cap, deadline) is right. Patched: the
pipeline's ``backoff_delay_ms`` draws from [0, d].
"""
from launch_common import patch


def _make(original):
    from reference_impl.orchestrator.backoff import backoff_ceiling_ms

    def full_jitter(attempts_made, base_ms, cap_ms, rng, retry_after_ms=None):
        delay = rng.uniform(0.0, float(backoff_ceiling_ms(attempts_made, base_ms, cap_ms)))
        if retry_after_ms is not None and retry_after_ms > delay:
            delay = float(retry_after_ms)
        return delay
    return full_jitter


patch("reference_impl.orchestrator.pipeline:backoff_delay_ms", _make)
