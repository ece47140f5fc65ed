"""Static routing (SPEC §10.1): task type -> ordered steps, step -> fixed agent role.

Pure. ``runtime/config.py`` may already have validated ``FD_ROUTES``; ``parse_routes`` is
the same rule in one place so the orchestrator can also accept an already-decoded dict.
"""

from __future__ import annotations

import json

STEP_ORDER = ("collect", "analyze", "report")
STEP_AGENT = {"collect": "collector", "analyze": "analyzer", "report": "reporter"}
AGENT_STEP = {agent: step for step, agent in STEP_AGENT.items()}
DEFAULT_ROUTES = {"triage": ["collect", "analyze", "report"], "parse": ["collect"],
                  "stats": ["collect", "analyze"]}


class RoutesError(ValueError):
    """FD_ROUTES is not a valid routing policy (the service exits with status 2)."""


def parse_routes(value: str | dict | None) -> dict[str, list[str]]:
    """Decode and check a routing policy: pipelines start with collect, steps in order."""
    if value is None or value == "":
        return {k: list(v) for k, v in DEFAULT_ROUTES.items()}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise RoutesError(f"not JSON: {exc}") from None
    if not isinstance(value, dict) or not value:
        raise RoutesError("must be a non-empty JSON object")
    routes: dict[str, list[str]] = {}
    for task_type, steps in value.items():
        if not isinstance(task_type, str) or not task_type:
            raise RoutesError("task types must be non-empty strings")
        if not isinstance(steps, list) or not steps:
            raise RoutesError(f"{task_type}: pipeline must be a non-empty list")
        for s in steps:
            if s not in STEP_AGENT:
                raise RoutesError(f"{task_type}: unknown step {s!r}")
        if list(steps) != list(STEP_ORDER[:len(steps)]):
            raise RoutesError(f"{task_type}: steps must be a prefix of collect, analyze, report")
        routes[task_type] = list(steps)
    return routes


def build_step_payload(step: str, task_input: dict, previous: dict | None,
                       thresholds: dict) -> dict:
    """The payload sent for ``step`` (SPEC §10.2), from the task input and the last output."""
    if step == "collect":
        return {"source": task_input["source"], "records": task_input["records"]}
    if previous is None:
        raise ValueError(f"{step} needs the previous step's output")
    if step == "analyze":
        return {"source": previous["source"], "events": previous["events"]}
    if step == "report":
        return {"analysis": previous, "thresholds": dict(thresholds)}
    raise ValueError(f"unknown step {step!r}")


def effective_thresholds(task_input: dict, defaults: dict) -> dict:
    """Defaults overlaid with whatever members the task's ``thresholds`` gives."""
    merged = dict(defaults)
    given = task_input.get("thresholds") or {}
    for key in ("error_permille", "p95_latency_ms"):
        if key in given:
            merged[key] = given[key]
    return merged
