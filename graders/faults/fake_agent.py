"""A fake agent run inside the grader: it speaks the framing and answers hello/work in one
chosen drifted or failing way (see MODES).

Why a fake rather than a damaged real agent: the fault has to be exact and identical for
every submission; the orchestrator reaches the fake through the agent's fault proxy
(`proxy.set_upstream(*fake.address)`), so nothing in the submission is restarted or
reconfigured. Its work results come from the grader's oracle, so only the injected drift
or failure differs from what a correct agent would say.
"""
from __future__ import annotations

import copy
import json
import socket
import threading
import time

from .. import oracle
from .loopback import LoopbackServer, abort, parse_frame, read_lines

__all__ = ["FakeAgent", "MODES", "EXPECTED_REPLY_PATHS"]

#: mode -> what the fake does, phrased to follow "a fake agent that ..." (checks note it).
MODES = {
    # failing agents
    "reset": "resets every work request",
    "internal_error": "answers every work request internal_error (14, retryable)",
    "unauthorized": "refuses every work request as unauthorized (20, definite)",
    # version drift
    "v2_only": "speaks only protocol v2",
    "hello_ok_v2": "answers hello with hello_ok claiming version 2 (not offered) and work v2-style",
    # schema drift of the work reply (correct results otherwise)
    "drift_schema": "answers with renamed output fields",
    "renamed_field": "renames the output's main list (events -> entries, services -> groups,"
                     " alerts -> findings)",
    "missing_field": "answers results without `source`",
    "wrong_type": "answers results with a count/total as a string",
    "extra_field": "answers results with an unknown member `v2_extra`",
}
_STEP_OF = {"collector": "collect", "analyzer": "analyze", "reporter": "report"}
_RENAMES = {"collect": ("events", "entries"), "analyze": ("services", "groups"),
            "report": ("alerts", "findings")}
#: The JSON path (from the reply envelope) a correct orchestrator should name, per mode/step.
EXPECTED_REPLY_PATHS = {
    ("renamed_field", "collect"): ("$.payload.events", "$.payload.entries", "$.payload"),
    ("renamed_field", "analyze"): ("$.payload.services", "$.payload.groups", "$.payload"),
    ("renamed_field", "report"): ("$.payload.alerts", "$.payload.findings", "$.payload"),
    ("missing_field", "collect"): ("$.payload.source",),
    ("missing_field", "analyze"): ("$.payload.source",),
    ("missing_field", "report"): ("$.payload.source",),
    ("wrong_type", "collect"): ("$.payload.counts.received",),
    ("wrong_type", "analyze"): ("$.payload.total",),
    ("wrong_type", "report"): ("$.payload.summary",),
    ("extra_field", "collect"): ("$.payload.v2_extra", "$.payload"),
    ("extra_field", "analyze"): ("$.payload.v2_extra", "$.payload"),
    ("extra_field", "report"): ("$.payload.v2_extra", "$.payload"),
}


def _err(code: int, name: str, definite: bool, retryable: bool, message: str, details: dict) -> dict:
    return {"code": code, "name": name, "definite": definite, "retryable": retryable,
            "message": message, "details": details}


class FakeAgent:
    """A fake `role` agent in one of MODES, listening on `address` from construction on.

    Every request object is recorded in `requests`, with the arrival time of each non-hello
    one in `work_times`. Lines that are not JSON objects are ignored. With `token`, a
    request carrying another token is refused unauthorized first, as a real agent would;
    without it the token is not looked at. Hello is answered hello_ok (except in v2_only),
    a request of the role's step per the mode, any other type not_supported."""

    def __init__(self, role: str, mode: str, *, token: str | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; modes: {sorted(MODES)}")
        if role not in _STEP_OF:
            raise ValueError(f"role must be an agent role, not {role!r}")
        if mode == "drift_schema" and role != "collector":
            raise ValueError("drift_schema renames collect's latency_ms: a collector mode")
        self.role, self.mode, self.token = role, mode, token
        self.step = _STEP_OF[role]
        self.requests: list[dict] = []
        self.work_times: list[float] = []
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._serve, f"fake-{role}")
        self.address = self._server.address

    def _serve(self, conn: socket.socket) -> None:
        for line in read_lines(conn, self._server.stop):
            req = parse_frame(line)
            if req is None:
                continue
            reply = self.answer(req)
            if reply is None:
                abort(conn)
                return
            try:
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                return

    def answer(self, req: dict) -> dict | None:
        """The reply to one request (None: reset the connection). Pure apart from recording."""
        rtype = req.get("type")
        with self._lock:
            self.requests.append(req)
            if rtype != "hello":
                self.work_times.append(time.monotonic())
        base = {"v": 1, "in_reply_to": req.get("msg_id"), "task_id": req.get("task_id")}
        if self.token is not None and req.get("token") != self.token:
            return dict(base, type="error", error=_err(
                20, "unauthorized", True, False, "unauthorized: missing or invalid token", {}))
        work = rtype != "hello"
        if self.mode == "reset" and work:
            return None
        if self.mode == "internal_error" and work:
            return dict(base, type="error", error=_err(
                14, "internal_error", False, True, "the agent failed unexpectedly (injected)", {}))
        if self.mode == "unauthorized" and work:
            return dict(base, type="error", task_id=None, error=_err(
                20, "unauthorized", True, False, "unauthorized: missing or invalid token", {}))
        if self.mode == "v2_only":
            return dict(base, v=2, type="error", error=_err(
                22, "unsupported_version", True, False,
                "this agent speaks protocol version 2 only", {"supported": [2]}))
        version = 2 if self.mode == "hello_ok_v2" else 1
        if rtype == "hello":
            return dict(base, v=version, type="hello_ok", payload={
                "version": version, "role": self.role, "capabilities": [self.step],
                "limits": {"max_frame_bytes": 16777216, "max_depth": 32}})
        if rtype != self.step:
            return dict(base, type="error", error=_err(10, "not_supported", True, False,
                                                       f"{rtype} not served", {"type": rtype}))
        try:
            out = getattr(oracle, self.step)(req.get("payload") or {})
        except Exception as exc:  # noqa: BLE001 - a candidate's malformed work request
            # The orchestrator under test sent a payload the oracle cannot read: answer as a
            # v1 agent would (definitely, not retryable) so the fake keeps serving and the
            # check judges the orchestrator, instead of a silently dead thread.
            return dict(base, type="error", error=_err(
                21, "schema_violation", True, False, f"{self.step} payload unreadable: {exc}",
                {"path": "$.payload", "expected": f"{self.step}_input"}))
        return dict(base, v=version, type=f"{self.step}_ok", replay=False, payload=self._drift(out))

    def _drift(self, output: dict) -> dict:
        out = copy.deepcopy(output)
        if self.mode == "drift_schema":
            for ev in out["events"]:
                ev["latency"] = ev.pop("latency_ms")
        elif self.mode == "renamed_field":
            old, new = _RENAMES[self.step]
            out[new] = out.pop(old)
        elif self.mode == "missing_field":
            out.pop("source", None)
        elif self.mode == "wrong_type":
            if self.step == "collect":
                out["counts"]["received"] = str(out["counts"]["received"])
            elif self.step == "analyze":
                out["total"] = str(out["total"])
            else:
                out["summary"] = len(out["summary"])
        elif self.mode == "extra_field":
            out["v2_extra"] = True
        return out

    def expected_paths(self) -> tuple[str, ...]:
        """The paths a correct orchestrator may name in its schema_violation cause."""
        return EXPECTED_REPLY_PATHS.get((self.mode, self.step), ())

    def work_requests(self) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r.get("type") != "hello"]

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> "FakeAgent":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
