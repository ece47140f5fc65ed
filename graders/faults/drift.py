"""Schema drift (SPEC §14), client side: drifted `submit` frames.

Why: a v1 service must answer v2-shaped or drifted input with an actionable error naming
what is wrong (`unsupported_version`, or `schema_violation` with the JSON path).
`submit_cases` gives the frames with the acceptable error names and paths. The agent side
(an orchestrator must reject drifted *replies*, §10.2) is `fake_agent.FakeAgent`, whose
modes include the drifted ones.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

from ..client import make_request

__all__ = ["DriftCase", "submit_cases"]


@dataclass(frozen=True)
class DriftCase:
    name: str
    frame: dict
    errors: frozenset[str]            # acceptable error names
    paths: tuple[str, ...] = ()       # acceptable details.path (schema_violation); empty: any
    description: str = ""


def _base_submit(token: str, task_id: str, task_input: dict) -> dict:
    return make_request("submit", {"task_type": "triage", "input": task_input, "wait": True},
                        token=token, task_id=task_id)


def submit_cases(token: str, task_input: dict, *, task_id_prefix: str = "drift") -> list[DriftCase]:
    """Drifted `submit` frames, each with a fresh task_id."""
    cases: list[DriftCase] = []
    sv = frozenset({"schema_violation"})

    def case(name, mutate, errors, paths=(), description=""):
        frame = _base_submit(token, f"{task_id_prefix}-{name}", copy.deepcopy(task_input))
        mutate(frame)
        cases.append(DriftCase(name, frame, frozenset(errors), tuple(paths), description))

    def put(path, value):
        def mutate(frame):
            *parents, last = path
            node = frame
            for key in parents:
                node = node[key]
            node[last] = value
        return mutate

    def rename(path, old, new):
        def mutate(frame):
            node = frame
            for key in path:
                node = node[key]
            node[new] = node.pop(old)
        return mutate

    def delete(path, key):
        def mutate(frame):
            node = frame
            for k in path:
                node = node[k]
            node.pop(key, None)
        return mutate

    case("v2", put(["v"], 2), {"unsupported_version"}, description="protocol version 2")
    case("v_string", put(["v"], "1"), sv, ["$.v"], "version as a string")
    case("records_renamed", rename(["payload", "input"], "records", "entries"), sv,
         ["$.payload.input.records", "$.payload.input.entries", "$.payload.input"],
         "v2 renamed records -> entries")
    case("task_type_renamed", rename(["payload"], "task_type", "kind"), sv,
         ["$.payload.task_type", "$.payload.kind", "$.payload"], "v2 renamed task_type -> kind")
    case("source_missing", delete(["payload", "input"], "source"), sv,
         ["$.payload.input.source"], "required member missing")
    case("extra_payload_field", put(["payload", "priority"], "high"), sv,
         ["$.payload.priority", "$.payload"], "unknown payload member")
    case("extra_envelope_field", put(["deadline_ms"], 5000), sv,
         ["$.deadline_ms", "$"], "unknown envelope member (the envelope is closed)")
    case("records_not_array", put(["payload", "input", "records"], "one line"), sv,
         ["$.payload.input.records"], "records as a string")
    case("task_type_int", put(["payload", "task_type"], 3), sv, ["$.payload.task_type"],
         "task_type as an integer")
    case("threshold_string", put(["payload", "input", "thresholds"],
                                 {"error_permille": "50", "p95_latency_ms": 1000}), sv,
         ["$.payload.input.thresholds.error_permille"], "threshold as a string")
    case("wait_string", put(["payload", "wait"], "yes"), sv, ["$.payload.wait"],
         "wait as a string")
    case("payload_array", put(["payload"], [task_input]), sv, ["$.payload"],
         "payload as an array")
    case("msg_id_int", put(["msg_id"], 17), sv, ["$.msg_id"], "msg_id as an integer")
    return cases
