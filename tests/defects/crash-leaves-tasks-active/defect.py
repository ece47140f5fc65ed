"""Tasks a crash left active stay active: after a restart they are queued or running forever.

The mistake: the task log is loaded at start-up as it is, so a task that was queued or
running when the orchestrator was killed keeps that status; no worker will ever run it,
and a resubmission is told in_progress for ever (SPEC §11.1: such a task is marked failed
with a timeout error so that a resubmission runs it again). Patched: ``TaskTable.recover``
runs with no status counted as active.
"""
from launch_common import patch


def _make(original):
    from reference_impl.orchestrator import tasks

    def recover(self):
        saved = tasks.ACTIVE
        tasks.ACTIVE = ()
        try:
            return original(self)
        finally:
            tasks.ACTIVE = saved
    return recover


patch("reference_impl.orchestrator.tasks:TaskTable.recover", _make)
