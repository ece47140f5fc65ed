"""Backoff without the cap: d keeps doubling past FD_RETRY_CAP_MS.

The mistake: the delay before attempt n+1 is drawn from [d/2, d] with d = base x
2^(n-1), but FD_RETRY_CAP_MS is never applied, so with many attempts the waits grow to
seconds and a task spends its whole deadline sleeping (SPEC §10.3: d = min(cap, base x
2^(n-1))). With the shared grading settings (4 attempts, base 100, cap 800) d never
reaches the cap, so only a check with more attempts sees it. Patched: the pipeline's
``backoff_delay_ms`` is called with an unbounded cap.
"""
from launch_common import patch


def _make(original):
    def uncapped(attempts_made, base_ms, cap_ms, rng, retry_after_ms=None):
        return original(attempts_made, base_ms, 2 ** 62, rng, retry_after_ms)
    return uncapped


patch("reference_impl.orchestrator.pipeline:backoff_delay_ms", _make)
