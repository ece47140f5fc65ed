"""The orchestrator ignores conflicts: any payload under a known task_id is "the same".

The mistake: a resubmission is matched by task_id alone, so a different payload under a
succeeded task's id silently gets the other payload's stored result, and one under a
running task is told in_progress (SPEC §9.3: a different payload is idempotency_conflict).
Patched: ``same_submission`` always says the payloads are equal.
"""
from launch_common import patch

patch("reference_impl.orchestrator.tasks:same_submission",
      lambda original: lambda record, task_type, task_input: True)
