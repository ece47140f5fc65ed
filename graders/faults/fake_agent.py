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
import struct
import threading
import time

from .. import oracle
from .loopback import MAX_PARTIAL_LINE, LoopbackServer, abort, parse_frame

__all__ = ["FakeAgent", "MODES", "EXPECTED_REPLY_PATHS", "DEFINITE_REFUSALS"]

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
#: SPEC §10.3: the definite, non-retryable errors after which a step ends at once; mode
#: `refuse_<name>` answers every work request with that error (code, details).
DEFINITE_REFUSALS = {
    "unauthorized": (20, {}),
    "schema_violation": (21, {"path": "$.payload.source", "expected": "string"}),
    "unsupported_version": (22, {"supported": [1]}),
    "idempotency_conflict": (30, {"task_id": None}),
    "not_supported": (10, {"type": None}),
    "malformed_frame": (12, {"reason": "not JSON"}),
    "frame_too_large": (13, {"limit_bytes": 1048576}),
}
for _name, (_code, _d) in DEFINITE_REFUSALS.items():
    MODES[f"refuse_{_name}"] = f"answers every work request {_name} ({_code}, definite, not retryable)"
_STEP_OF = {"collector": "collect", "analyzer": "analyze", "reporter": "report"}
#: SO_TIMESTAMPNS (asm-generic value; the socket module does not export it): the kernel
#: stamps each received segment, so arrival times do not include the grader's own
#: scheduling delay.
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
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
    one in `work_times` (time.monotonic) and in `work_arrivals` (wall clock, the kernel's
    receive timestamp when the system gives one), and in `reply_sent` the wall-clock time
    just before each work reply was handed to the kernel (so `work_arrivals[n+1] -
    reply_sent[n]` is a lower bound of the caller's wait that excludes the grader's own
    delays). Lines that are not JSON objects are ignored. With `token`, a
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
        self.work_arrivals: list[float] = []
        self.reply_sent: list[float] = []
        self.kernel_timestamps = True
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._serve, f"fake-{role}")
        self.address = self._server.address

    def _lines(self, conn: socket.socket):
        """(line, arrival wall-clock time) as the kernel stamped the segment that completed
        the line; falls back to the time of the read where timestamps are unavailable."""
        try:
            conn.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        except OSError:
            self.kernel_timestamps = False
        buf = b""
        while not self._server.stop.is_set():
            try:
                chunk, anc, _flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(16))
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            stamp = None
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
                    sec, nsec = struct.unpack("qq", data[:16])
                    stamp = sec + nsec / 1e9
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                yield line, stamp      # None: the caller stamps it (data read before setsockopt)
            if len(buf) > MAX_PARTIAL_LINE:
                return

    def _serve(self, conn: socket.socket) -> None:
        for line, arrived in self._lines(conn):
            req = parse_frame(line)
            if req is None:
                continue
            reply = self.answer(req, arrived=arrived)
            if reply is None:
                abort(conn)
                return
            try:
                if req.get("type") != "hello":
                    with self._lock:
                        self.reply_sent.append(time.time())
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                return
            if self.mode == "refuse_frame_too_large" and req.get("type") != "hello":
                return   # a real server closes the connection after frame_too_large

    def answer(self, req: dict, *, arrived: float | None = None) -> dict | None:
        """The reply to one request (None: reset the connection). Pure apart from recording."""
        rtype = req.get("type")
        with self._lock:
            self.requests.append(req)
            if rtype != "hello":
                self.work_times.append(time.monotonic())
                if arrived is None:
                    self.kernel_timestamps = False
                self.work_arrivals.append(time.time() if arrived is None else arrived)
        base = {"v": 1, "in_reply_to": req.get("msg_id"), "task_id": req.get("task_id")}
        if self.token is not None and req.get("token") != self.token:
            return dict(base, type="error", error=_err(
                20, "unauthorized", True, False, "unauthorized: missing or invalid token", {}))
        work = rtype != "hello"
        if self.mode == "reset" and work:
            return None
        if self.mode == "internal_error" and work:
            return dict(base, type="error", error=_err(
                14, "internal_error", False, True, "the agent failed unexpectedly", {}))
        if self.mode == "unauthorized" and work:
            return dict(base, type="error", task_id=None, error=_err(
                20, "unauthorized", True, False, "unauthorized: missing or invalid token", {}))
        if self.mode.startswith("refuse_") and work:
            name = self.mode[len("refuse_"):]
            code, details = DEFINITE_REFUSALS[name]
            details = {k: (req.get("task_id") if k == "task_id" else rtype if k == "type" else v)
                       for k, v in details.items()}
            return dict(base, type="error", error=_err(
                code, name, True, False, f"{name} (injected by the grader's fake agent)", details))
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
