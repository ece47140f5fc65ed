"""The error-rate alert never fires.

The mistake: the alert is evaluated against the wrong condition, so TaskErrorRateHigh
never appears in /api/alerts however many tasks fail (SPEC §13.2: firing when at least 5
of the last 20 finished tasks finished and at least half of them failed). Patched:
``TaskTable._alert_state`` always says not firing.
"""
from launch_common import patch

patch("reference_impl.orchestrator.tasks:TaskTable._alert_state",
      lambda original: lambda self: (False, 0.0))
