"""What every protocol service does with a frame before its own logic runs.

Shared by the three agents and the orchestrator so that the SPEC §7 order, the
``request``/``unauthorized`` log events, the request metrics (§13.1), trace context (§12),
``hello`` negotiation (§14.1) and the drain-time ``busy`` answer are written once. A
service subclasses ``FramedService`` and implements ``dispatch(request, trace)`` for its
own message types (steps 6-9 of §7); everything raised as ``ProtocolError`` becomes an
error reply, anything else becomes ``internal_error`` and a log line, never a dead
connection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from reference_impl.protocol.envelope import Request, ok_reply, parse_request, reply_for_error, validate_payload
from reference_impl.protocol.errors import SUPPORTED_VERSIONS, ProtocolError, error_reply
from reference_impl.protocol.framing import MAX_DEPTH, MAX_FRAME_BYTES
from reference_impl.protocol.trace import format_traceparent, new_span_id, new_trace_id, parse_traceparent
from reference_impl.runtime.logs import log_context

#: Request types that may appear as a metric label; anything else is counted as "other"
#: so that a client cannot grow the label set without bound.
KNOWN_TYPES = frozenset({"hello", "submit", "status", "list", "collect", "analyze", "report"})
DRAIN_RETRY_AFTER_MS = 500


@dataclass(frozen=True)
class Trace:
    """The trace context a request is handled under (ids are hex strings)."""

    trace_id: str
    span_id: str

    @property
    def traceparent(self) -> str:
        return format_traceparent(self.trace_id, self.span_id)


def type_label(value: Any) -> str:
    return value if isinstance(value, str) and value in KNOWN_TYPES else "other"


class FramedService:
    """Base for the four services. Subclasses set ``role``, ``capabilities`` and implement
    ``dispatch``; they call ``install_common_metrics`` with their store."""

    role: str = ""
    capabilities: tuple[str, ...] = ()
    #: The receive limit of this service's TCP port (SPEC §4): 1 MiB on the orchestrator,
    #: 16 MiB on agents; the server's decoder enforces it and hello_ok states it.
    max_frame_bytes: int = MAX_FRAME_BYTES

    def __init__(self, *, token: str, logger, registry) -> None:
        self._token = token
        self.log = logger
        self.registry = registry
        self.draining = False
        self.served_types = frozenset(("hello",) + tuple(self.capabilities))
        self.m_requests = registry.counter(
            "faultdrill_requests_total", "Protocol requests handled, by type and outcome.",
            labels=("type", "outcome"))
        self.m_duration = registry.histogram(
            "faultdrill_request_duration_seconds", "Time to handle one protocol request.",
            labels=("type",))

    # -- metrics shared by every service ------------------------------------------------

    def install_common_metrics(self, store, open_connections) -> None:
        """Gauges read live values; the two memory counters mirror the store's counters."""
        self.registry.gauge("faultdrill_connections_open", "Open protocol connections.",
                            fn=open_connections)
        self.registry.gauge("faultdrill_memory_records", "Records held in durable memory.",
                            fn=lambda: len(store))
        self.m_corruptions = self.registry.counter(
            "faultdrill_memory_corruptions_total", "Corrupt memory files met (and quarantined).")
        self.m_pruned = self.registry.counter(
            "faultdrill_memory_pruned_total", "Records deleted by retention.")
        self._pruned_seen = 0
        self._store_for_metrics = store

    def sync_pruned(self) -> None:
        """Carry the store's prune counter into the metric (called after each put)."""
        store = getattr(self, "_store_for_metrics", None)
        if store is None:
            return
        now = store.counters.get("pruned", 0)
        if now > self._pruned_seen:
            self.m_pruned.inc(now - self._pruned_seen)
            self._pruned_seen = now

    def on_corrupt(self, path, reason: str, quarantined_to) -> None:
        """RecordStore callback (SPEC §11.4): one error line and one count per corrupt file."""
        self.m_corruptions.inc()
        self.log.error("corrupt memory file", event="memory_corrupt", path=str(path), reason=reason,
                       quarantined_to=str(quarantined_to) if quarantined_to else None)

    # -- the frame path -----------------------------------------------------------------

    def handle(self, item, conn) -> dict | None:
        """``ProtocolServer`` handler: one decoded item in, one reply out, never an exception."""
        try:
            return self._handle(item, conn)
        except Exception as exc:  # noqa: BLE001 - last resort: answer, log, keep serving
            self.log.error(f"unexpected failure handling a frame: {type(exc).__name__}: {exc}",
                           event="internal_error")
            return error_reply(ProtocolError("internal_error", "internal error").error_object())

    def _handle(self, item, conn) -> dict | None:
        started = time.monotonic()
        if item.kind != "frame":
            reply = item.value
            name = (reply.get("error") or {}).get("name", "malformed_frame")
            self._account("other", name, started)
            self.log.warn("undecodable frame", event="request", type=None, outcome=name,
                          peer=conn.peer if conn else None)
            return reply
        obj = item.value
        try:
            request = parse_request(obj, token=self._token, served_types=self.served_types)
        except ProtocolError as err:
            return self._refuse(obj, err, started, conn)
        trace = self._trace_for(request)
        with log_context(task_id=request.task_id, trace_id=trace.trace_id, span_id=trace.span_id):
            try:
                if self.draining and request.type != "hello":
                    raise ProtocolError("busy", "shutting down; try again elsewhere or later",
                                        retry_after_ms=DRAIN_RETRY_AFTER_MS)
                if request.type == "hello":
                    reply = self.hello(request, trace)
                else:
                    reply = self.dispatch(request, trace)
            except ProtocolError as err:
                reply = reply_for_error(request, err)
            except Exception as exc:  # noqa: BLE001 - reported, never fatal to the service
                self.log.error(f"internal error handling {request.type}: {type(exc).__name__}: {exc}",
                               event="internal_error", type=request.type)
                reply = reply_for_error(request, ProtocolError(
                    "internal_error", f"internal error while handling {request.type}"))
            outcome = "ok" if reply.get("type") != "error" else reply["error"]["name"]
            self._account(type_label(request.type), outcome, started)
            level = self.log.info if outcome == "ok" else self.log.warn
            level(f"{request.type} -> {outcome}", event="request", type=request.type, outcome=outcome,
                  msg_id=request.msg_id, replay=reply.get("replay"),
                  duration_ms=round((time.monotonic() - started) * 1000, 3))
        return reply

    def _refuse(self, obj: dict, err: ProtocolError, started: float, conn) -> dict:
        reply = reply_for_error(obj, err, token=self._token)
        if err.name == "unauthorized":
            token = obj.get("token")
            self._account("other", "unauthorized", started)
            self.log.warn("unauthorized request refused", event="unauthorized",
                          token_present="token" in obj,
                          token_length=len(token) if isinstance(token, str) else None,
                          peer=conn.peer if conn else None)
            self.log.info("request -> unauthorized", event="request", type=None, outcome="unauthorized")
            return reply
        rtype = obj.get("type")
        task_id = reply.get("task_id")
        self._account(type_label(rtype), err.name, started)
        with log_context(task_id=task_id if isinstance(task_id, str) else None, trace_id=None, span_id=None):
            self.log.warn(f"request refused: {err.message}", event="request",
                          type=type_label(rtype), outcome=err.name)
        return reply

    def _account(self, rtype: str, outcome: str, started: float) -> None:
        self.m_requests.inc(type=rtype, outcome=outcome)
        self.m_duration.observe(time.monotonic() - started, type=rtype)

    @staticmethod
    def _trace_for(request: Request) -> Trace:
        ctx = parse_traceparent(request.traceparent) if request.traceparent else None
        return Trace(trace_id=ctx.trace_id if ctx else new_trace_id(), span_id=new_span_id())

    # -- hello (SPEC §14.1) ---------------------------------------------------------------

    def hello(self, request: Request, trace: Trace) -> dict:
        validate_payload(request)
        offered = set(request.payload.get("versions", []))
        common = offered & set(SUPPORTED_VERSIONS)
        if not common:
            raise ProtocolError("unsupported_version",
                                f"no common protocol version in {sorted(offered)}; supported: "
                                f"{list(SUPPORTED_VERSIONS)}", supported=list(SUPPORTED_VERSIONS))
        payload = {"version": max(common), "role": self.role, "capabilities": list(self.capabilities),
                   "limits": {"max_frame_bytes": self.max_frame_bytes, "max_depth": MAX_DEPTH}}
        return ok_reply(request, payload, traceparent=trace.traceparent)

    def dispatch(self, request: Request, trace: Trace) -> dict:  # pragma: no cover - abstract
        raise ProtocolError("not_supported", f"{request.type} is not served here", type=request.type)
