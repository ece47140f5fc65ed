"""A failed task is stuck: resubmitting it is answered in_progress forever.

The mistake: the task table treats any known task that has not succeeded as still
active, so after a step failure (an agent down) or a crash the same task can never run
again, however often the client retries (SPEC §9.3: a failed task with the same payload
is run again, replay false). Patched: ``TaskTable.admit`` answers in_progress for a failed
task resubmitted with the same payload.
"""
import copy

from launch_common import patch


def _make(original):
    from reference_impl.orchestrator import tasks

    def admit(self, task_id, task_type, task_input, enqueue):
        with self.lock:
            rec = self._tasks.get(task_id)
            if rec is not None and rec.get("status") == "failed" \
                    and tasks.same_submission(rec, task_type, task_input):
                return "in_progress", copy.deepcopy(rec)
        return original(self, task_id, task_type, task_input, enqueue)
    return admit


patch("reference_impl.orchestrator.tasks:TaskTable.admit", _make)
