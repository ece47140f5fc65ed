"""Log lines without span_id.

The mistake: the logger writes task_id and trace_id but leaves out the span of the
current request, so one request's lines cannot be told from another's within a trace
(SPEC §12: span_id, string or null, is required on every line). Patched:
``Logger.format_line`` drops the span_id member.
"""
import json

from launch_common import patch


def _make(original):
    def format_line(self, level, msg, event, fields):
        record = json.loads(original(self, level, msg, event, fields))
        record.pop("span_id", None)
        return json.dumps(record, separators=(",", ":"))
    return format_line


patch("reference_impl.runtime.logs:Logger.format_line", _make)
