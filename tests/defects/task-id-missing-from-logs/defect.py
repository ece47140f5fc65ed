"""task_id missing from logs: every log line has ``"task_id": null``.

The mistake: the logger carries the trace context but not the task, so nobody can follow
one task across the four services' logs (SPEC §12: every line about a task carries its
task_id). Lines stay valid JSON with every required field.
Patched: ``Logger.format_line`` formats each line with the task_id context cleared.
"""
from launch_common import patch


def _make(original):
    from reference_impl.runtime.logs import log_context

    def format_line(self, level, msg, event, fields):
        with log_context(task_id=None):
            return original(self, level, msg, event, fields)
    return format_line


patch("reference_impl.runtime.logs:Logger.format_line", _make)
