"""The work (SPEC §8): three pure, deterministic steps over JSON payloads.

Each step takes a payload that already passed its input schema and returns the output
payload; no I/O, no clock, no randomness, so agents can replay and graders can compare.
"""

from .analyze import analyze
from .collect import collect
from .report import DEFAULT_THRESHOLDS, effective_thresholds, report

STEPS = {"collect": collect, "analyze": analyze, "report": report}
# Which agent role serves each step, and the payload schemas around it.
STEP_AGENTS = {"collect": "collector", "analyze": "analyzer", "report": "reporter"}
STEP_SCHEMAS = {
    "collect": ("collect_input", "collect_output"),
    "analyze": ("analyze_input", "analyze_output"),
    "report": ("report_input", "report_output"),
}

__all__ = ["collect", "analyze", "report", "STEPS", "STEP_AGENTS", "STEP_SCHEMAS",
           "DEFAULT_THRESHOLDS", "effective_thresholds"]
