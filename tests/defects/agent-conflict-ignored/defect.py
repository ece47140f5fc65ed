"""Agents ignore conflicts: a stored step is replayed whatever the new input is.

The mistake: an agent finds (task_id, step) in memory and answers with the stored output
without comparing the stored input with the new one, so a different input under the same
task_id silently gets another input's result instead of idempotency_conflict (SPEC §10.4).
Patched: the agent service's ``json_equal`` (its input comparison) always says equal.
"""
from launch_common import patch

patch("reference_impl.agents.service:json_equal",
      lambda original: (lambda a, b: True))
