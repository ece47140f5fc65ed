"""Schema drift (SPEC §14): drifted client frames and a drifted agent.

Why: a v1 service must answer v2-shaped or drifted input with an actionable error naming
what is wrong (`unsupported_version`, or `schema_violation` with the JSON path), and an
orchestrator must reject drifted *replies* from an agent (§10.2) instead of misreading them.
`submit_cases` gives the client side with the acceptable error names and paths;
`DriftedAgent` is a small server thread that impersonates an agent in a chosen drifted way
and can be put behind an agent proxy (`proxy.set_upstream(*agent.address)`).
"""
from __future__ import annotations

import copy
import json
import socket
import threading
from dataclasses import dataclass, field

from .. import oracle
from ..client import make_request

__all__ = ["DriftCase", "submit_cases", "DriftedAgent", "AGENT_MODES"]


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


# --- the drifted agent -----------------------------------------------------------------
AGENT_MODES = {
    "v2_only": "hello -> unsupported_version supported [2]; work -> unsupported_version",
    "hello_ok_v2": "hello -> hello_ok claiming version 2 (not offered); work answered v2-style",
    "renamed_field": "correct results, but the output's main list renamed (events -> entries,"
                     " services -> groups, alerts -> findings)",
    "missing_field": "correct results without `source`",
    "wrong_type": "correct results with a count/total as a string",
    "extra_field": "correct results plus an unknown member `v2_extra`",
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


@dataclass
class DriftedAgent:
    """An agent impersonator speaking the framing, drifted in one way (see AGENT_MODES)."""
    role: str
    mode: str
    token: str
    host: str = "127.0.0.1"
    received: list[dict] = field(default_factory=list)
    work_requests: int = 0

    def __post_init__(self) -> None:
        if self.mode not in AGENT_MODES:
            raise ValueError(f"unknown mode {self.mode!r}; modes: {sorted(AGENT_MODES)}")
        if self.role not in _STEP_OF:
            raise ValueError(f"role must be an agent role, not {self.role!r}")
        self.step = _STEP_OF[self.role]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.host, 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.address = self._sock.getsockname()[:2]
        self._threads: list[threading.Thread] = []

    def start(self) -> "DriftedAgent":
        th = threading.Thread(target=self._accept, daemon=True, name=f"drifted-{self.role}")
        th.start()
        self._threads.append(th)
        return self

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        for th in self._threads:
            th.join(2.0)

    def __enter__(self) -> "DriftedAgent":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            th = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            th.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        buf = b""
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                if len(buf) > 2 * 1024 * 1024 and b"\n" not in buf:
                    return
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if not line.strip():
                        continue
                    try:
                        conn.sendall(json.dumps(self.answer(line)).encode() + b"\n")
                    except OSError:
                        return

    @staticmethod
    def _error(req: dict, code: int, name: str, message: str, **details) -> dict:
        return {"v": 1, "type": "error", "in_reply_to": req.get("msg_id"),
                "task_id": req.get("task_id"),
                "error": {"code": code, "name": name, "definite": True, "retryable": False,
                          "message": message, "details": details}}

    def answer(self, line: bytes) -> dict:
        """The reply to one request line (pure apart from recording)."""
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except ValueError:
            return {"v": 1, "type": "error", "in_reply_to": None, "task_id": None,
                    "error": {"code": 12, "name": "malformed_frame", "definite": True,
                              "retryable": False, "message": "not JSON",
                              "details": {"reason": "not json"}}}
        with self._lock:
            self.received.append(req)
        if req.get("token") != self.token:
            return self._error(req, 20, "unauthorized", "unauthorized: missing or invalid token")
        rtype = req.get("type")
        if rtype == "hello":
            if self.mode == "v2_only":
                return self._error(req, 22, "unsupported_version",
                                   "no common version; supported: [2]", supported=[2])
            version = 2 if self.mode == "hello_ok_v2" else 1
            return {"v": version, "type": "hello_ok", "in_reply_to": req.get("msg_id"),
                    "task_id": None,
                    "payload": {"version": version, "role": self.role,
                                "capabilities": [self.step],
                                "limits": {"max_frame_bytes": 1048576, "max_depth": 32}}}
        if rtype != self.step:
            return self._error(req, 10, "not_supported", f"type {rtype!r} is not served here",
                               type=rtype)
        with self._lock:
            self.work_requests += 1
        if self.mode == "v2_only":
            return self._error(req, 22, "unsupported_version",
                               "protocol version 1 is not supported; supported: [2]",
                               supported=[2])
        try:
            output = getattr(oracle, self.step)(req.get("payload") or {})
        except Exception as exc:   # noqa: BLE001 - a bad request gets a plain error here
            return self._error(req, 21, "schema_violation", f"bad input: {exc}",
                               path="$.payload", expected="valid input")
        output = self._drift(output)
        reply = {"v": 1, "type": f"{self.step}_ok", "in_reply_to": req.get("msg_id"),
                 "task_id": req.get("task_id"), "replay": False, "payload": output}
        if self.mode == "hello_ok_v2":
            reply["v"] = 2
        return reply

    def _drift(self, output: dict) -> dict:
        out = copy.deepcopy(output)
        if self.mode == "renamed_field":
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
        return EXPECTED_REPLY_PATHS.get((self.mode, self.step), ())
