"""Fuzzing figure: frames, envelopes and payloads thrown at each service of the reference.

Why three layers: a frame fuzzer (random bytes, bad UTF-8, deep nesting, non-objects)
exercises the framing; envelope cases (wrong field types, every token attack, drifted
submits) the request checks; payload cases (seeded valid inputs, the same with one field
replaced by an arbitrary JSON value, arbitrary objects) the schema validation and the work.
The verdict per request is the issue's: a *structured* error (an error object whose code
and name agree with the SPEC table, flags right, on the request's msg_id when readable) or
a *correct* answer (an `_ok` payload equal to the grader's independent oracle), and the
service still up (it answers `hello` on a fresh connection after every batch). Frame cases
carry their own expected error names (graders/faults/hostile.py), which are also checked.
Seeded: hypothesis runs with `derandomize=False` under an explicit `@seed`, no database.
"""
from __future__ import annotations

import copy
import json
import itertools
import random
from collections import Counter

from hypothesis import HealthCheck, given, settings, seed as hseed
from hypothesis import strategies as st

from graders import oracle
from graders.client import ClientError, Connection, make_request
from graders.faults import auth, drift, hostile

from .systems import reference

__all__ = ["SPEC_ERRORS", "structured_error", "run_fuzz"]

#: SPEC §6: name -> (code, definite, retryable).
SPEC_ERRORS = {
    "timeout": (1, False, True), "not_supported": (10, True, False), "busy": (11, True, True),
    "malformed_frame": (12, True, False), "frame_too_large": (13, True, False),
    "internal_error": (14, False, True), "unauthorized": (20, True, False),
    "schema_violation": (21, True, False), "unsupported_version": (22, True, False),
    "idempotency_conflict": (30, True, False), "in_progress": (31, True, True),
    "upstream_failed": (40, True, True),
}
ROLES = ("orchestrator", "collector", "analyzer", "reporter")
MSG_TYPE = {"orchestrator": "submit", "collector": "collect", "analyzer": "analyze",
            "reporter": "report"}


def structured_error(reply: dict) -> str | None:
    """None when `reply` is a well-formed SPEC error reply, else what is wrong with it."""
    if reply.get("type") != "error" or reply.get("v") != 1:
        return f"not an error reply: type={reply.get('type')!r}"
    err = reply.get("error")
    if not isinstance(err, dict):
        return "no error object"
    name = err.get("name")
    if name not in SPEC_ERRORS:
        return f"unknown error name {name!r}"
    code, definite, retryable = SPEC_ERRORS[name]
    if err.get("code") != code or err.get("definite") is not definite or err.get("retryable") is not retryable:
        return f"{name}: code/flags disagree with the SPEC table: {err}"
    if not isinstance(err.get("message"), str) or not isinstance(err.get("details"), dict):
        return f"{name}: message/details missing"
    return None


def _valid_payload(role: str, rng: random.Random) -> dict:
    task_input = oracle.generate_input(rng, rng.randint(0, 12))
    if role == "orchestrator":
        return {"task_type": "triage", "input": task_input}
    if role == "collector":
        return {"source": task_input["source"], "records": task_input["records"]}
    collected = oracle.collect({"source": task_input["source"], "records": task_input["records"]})
    if role == "analyzer":
        return {"source": collected["source"], "events": collected["events"]}
    analysis = oracle.analyze({"source": collected["source"], "events": collected["events"]})
    return {"analysis": analysis, "thresholds": {"error_permille": rng.randint(0, 1000),
                                                 "p95_latency_ms": rng.randint(0, 5000)}}


def _expected(role: str, payload: dict) -> dict:
    """The oracle's answer for a payload (raises when the oracle cannot compute one)."""
    if role == "orchestrator":
        return oracle.expected_result(payload["task_type"], payload["input"])
    return {"collector": oracle.collect, "analyzer": oracle.analyze,
            "reporter": oracle.report}[role](payload)


_json = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False, allow_infinity=False)
                     | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=12)


def _mutate(payload: dict, data, depth: int = 0) -> dict:
    """Replace one value somewhere in the payload (top level or one level down)."""
    out = copy.deepcopy(payload)
    key = data.draw(st.sampled_from(sorted(out)), label="key")
    target = out[key]
    if isinstance(target, dict) and target and data.draw(st.booleans(), label="deeper"):
        sub = data.draw(st.sampled_from(sorted(target)), label="subkey")
        target[sub] = data.draw(_json, label="value")
    elif isinstance(target, list) and target and data.draw(st.booleans(), label="deeper"):
        target[data.draw(st.integers(0, len(target) - 1), label="index")] = data.draw(_json, label="value")
    elif data.draw(st.booleans(), label="drop"):
        del out[key]
    else:
        out[key] = data.draw(_json, label="value")
    return out


class _Tally:
    def __init__(self):
        self.tried = Counter()
        self.bad: list[str] = []
        self.outcomes = Counter()

    def fail(self, msg: str) -> None:
        if len(self.bad) < 50:
            self.bad.append(msg)


def _exchange(ep, data: bytes, timeout: float = 10.0) -> dict | Exception:
    try:
        with Connection(ep.host, ep.port, timeout=timeout) as conn:
            conn.send_raw(data)
            return conn.recv(timeout=timeout)
    except (ClientError, OSError) as exc:
        return exc


def _alive(ep, token: str) -> bool:
    try:
        with Connection(ep.host, ep.port, timeout=5) as conn:
            return conn.request(make_request("hello", {"versions": [1], "role": "orchestrator"},
                                             token=token))["type"] == "hello_ok"
    except (ClientError, OSError):
        return False


def run_fuzz(seed: int, *, frames: int = 100, envelopes: int = 60, payloads: int = 100,
             log=print) -> dict:
    """Keys: per role {frames, envelopes, payloads, failures, alive}; totals; failures list."""
    token = f"fuzz-{seed}"
    ids = itertools.count()
    per_role: dict[str, dict] = {}
    all_bad: list[str] = []
    cfg = settings(max_examples=1, database=None, deadline=None, derandomize=False,
                   suppress_health_check=list(HealthCheck))
    with reference(token) as ref:
        for role in ROLES:
            ep = ref.deployment.endpoint(role)
            tally = _Tally()
            alive_checks = []

            # 1. frames: hostile bytes with their own expected error names
            @hseed(seed)
            @settings(cfg, max_examples=frames)
            @given(frame=hostile.hostile_frames(token))
            def fuzz_frames(frame):
                tally.tried["frames"] += 1
                reply = _exchange(ep, frame.data)
                if isinstance(reply, Exception):
                    tally.fail(f"{role} frame {frame!r}: {type(reply).__name__}: {reply}")
                    return
                problem = structured_error(reply)
                if problem or reply["error"]["name"] not in frame.expected:
                    tally.fail(f"{role} frame {frame!r}: {problem or reply['error']['name']}")
                tally.outcomes[reply.get("error", {}).get("name")] += 1
            fuzz_frames()
            alive_checks.append(_alive(ep, token))

            # 2. envelopes: wrong field types, token attacks, drifted submits
            cases: list[tuple[str, bytes, frozenset | None]] = []
            for attack in auth.attacks(token):
                cases.append((f"auth:{attack.name}", hostile._line(
                    json.dumps(attack.frame).encode()), frozenset({"unauthorized", "schema_violation"})))
            if role == "orchestrator":
                for case in drift.submit_cases(token, oracle.generate_input(random.Random(seed), 5),
                                               task_id_prefix=f"fz{seed}"):
                    cases.append((f"drift:{case.name}", hostile._line(
                        json.dumps(case.frame).encode()), case.errors))

            @hseed(seed + 1)
            @settings(cfg, max_examples=max(1, envelopes - len(cases)))
            @given(frame=hostile.envelope_wrong_types(token))
            def fuzz_envelopes(frame):
                cases.append((frame.name, frame.data, frame.expected))
            fuzz_envelopes()
            for name, data, expected in cases:
                tally.tried["envelopes"] += 1
                reply = _exchange(ep, data)
                if isinstance(reply, Exception):
                    tally.fail(f"{role} envelope {name}: {type(reply).__name__}: {reply}")
                    continue
                problem = structured_error(reply)
                if problem or (expected and reply["error"]["name"] not in expected):
                    tally.fail(f"{role} envelope {name}: {problem or reply['error']['name']}")
                tally.outcomes[reply.get("error", {}).get("name")] += 1
            alive_checks.append(_alive(ep, token))

            # 3. payloads: valid (checked against the oracle), mutated, arbitrary
            @hseed(seed + 2)
            @settings(cfg, max_examples=payloads)
            @given(kind=st.sampled_from(["valid", "mutated", "mutated", "arbitrary"]),
                   rseed=st.integers(0, 2**32), data=st.data())
            def fuzz_payloads(kind, rseed, data):
                tally.tried["payloads"] += 1
                payload = _valid_payload(role, random.Random(rseed))
                if kind == "mutated":
                    payload = _mutate(payload, data)
                elif kind == "arbitrary":
                    payload = data.draw(st.dictionaries(st.text(max_size=10), _json, max_size=5))
                frame = make_request(MSG_TYPE[role], payload, token=token,
                                     task_id=f"fz{seed}-{role[:3]}-{next(ids)}")
                reply = _exchange(ep, hostile._line(json.dumps(frame).encode()))
                if isinstance(reply, Exception):
                    tally.fail(f"{role} payload {kind}: {type(reply).__name__}: {reply}")
                    return
                if reply.get("type") == f"{MSG_TYPE[role]}_ok":
                    got = reply.get("payload") or {}
                    if role == "orchestrator":
                        got = got.get("result")
                    try:
                        want = _expected(role, payload)
                    except Exception as exc:   # noqa: BLE001 - the oracle refuses: answer was wrong
                        want = f"<oracle refused: {exc}>"
                    if got != want:
                        tally.fail(f"{role} payload {kind}: ok reply differs from the oracle")
                    tally.outcomes["ok"] += 1
                    if kind == "valid":
                        tally.outcomes["ok_valid"] += 1
                else:
                    problem = structured_error(reply)
                    if problem:
                        tally.fail(f"{role} payload {kind}: {problem}")
                    elif kind == "valid":
                        tally.fail(f"{role} valid payload refused: {reply['error']['name']}")
                    tally.outcomes[reply.get("error", {}).get("name")] += 1
            fuzz_payloads()
            alive_checks.append(_alive(ep, token))
            running = ref.deployment.running(role)
            per_role[role] = {"frames": tally.tried["frames"], "envelopes": tally.tried["envelopes"],
                              "payloads": tally.tried["payloads"], "failures": len(tally.bad),
                              "alive_after_each_batch": all(alive_checks) and running,
                              "outcomes": dict(tally.outcomes)}
            all_bad += tally.bad
            log(f"  fuzz {role}: {per_role[role]['frames']} frames, {per_role[role]['envelopes']} envelopes, "
                f"{per_role[role]['payloads']} payloads, {len(tally.bad)} failures, "
                f"alive {per_role[role]['alive_after_each_batch']}")
    total = sum(r["frames"] + r["envelopes"] + r["payloads"] for r in per_role.values())
    return {"per_service": per_role, "requests": total,
            "failures": sum(r["failures"] for r in per_role.values()),
            "all_alive": all(r["alive_after_each_batch"] for r in per_role.values()),
            "failure_samples": all_bad[:20], "seed": seed}
