"""Routes ignored: every task type runs the whole triage pipeline.

The mistake: FD_ROUTES is parsed and validated, but the pipeline the orchestrator runs is
always collect, analyze, report, so a `parse` task returns a report instead of the collect
output and a `stats` task an alert summary instead of the analysis (SPEC §10.1: the task
type's pipeline, and the result is its last step's output). Patched: the configuration's
``parse_routes`` maps every task type to the full pipeline.
"""
from launch_common import patch


def _make(original):
    def parse_routes(value):
        return {task_type: ["collect", "analyze", "report"] for task_type in original(value)}
    return parse_routes


patch("reference_impl.runtime.config:parse_routes", _make)
