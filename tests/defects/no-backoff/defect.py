"""Retries without backoff: a failed step is retried at once, attempt after attempt.

The mistake: the retry loop has a bound on attempts but no wait between them, so a
struggling agent is hammered and a transient failure exhausts every attempt in a few
milliseconds. Patched: the pipeline's ``backoff_delay_ms`` always returns 0.
"""
from launch_common import patch

patch("reference_impl.orchestrator.pipeline:backoff_delay_ms",
      lambda original: (lambda *args, **kwargs: 0.0))
