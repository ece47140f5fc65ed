"""No validation between steps: an agent's reply is used without checking its schema.

The mistake: the orchestrator trusts agent replies, so a drifted collector's output is
fed to the analyzer, and the task fails later, at the wrong step, with a cause that
points at the analyzer instead of the collector that drifted (SPEC §10.2).
Patched: the orchestrator service's ``validate`` (used only on step outputs) accepts
anything.
"""
from launch_common import patch

patch("reference_impl.orchestrator.service:validate",
      lambda original: (lambda instance, schema_name, path="$": None))
