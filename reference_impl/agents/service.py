"""One generic agent service; the role decides the single step it serves (SPEC §1, §10.4, §11).

The step itself is pure (``reference_impl.work``); this module adds what makes it safe to
call over an unreliable network: idempotency keyed by (task_id, step) with replay and
conflict detection, and a durable record written *before* the ``_ok`` reply so an
acknowledged result is never lost and a retried request never executes twice. Requests
for the same task are serialised by a per-task lock, so two concurrent deliveries of one
request execute once and the second is a replay.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from reference_impl.agents.base import FramedService, Trace
from reference_impl.protocol.envelope import Request, ok_reply, validate_payload
from reference_impl.protocol.errors import ProtocolError
from reference_impl.protocol.framing import AGENT_MAX_FRAME_BYTES
from reference_impl.protocol.schema import json_equal
from reference_impl.work import STEPS

ROLE_STEP = {"collector": "collect", "analyzer": "analyze", "reporter": "report"}


class KeyedLocks:
    """A lock per key, created on demand and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, list] = {}

    @contextmanager
    def hold(self, key: str, timeout_s: float):
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        acquired = entry[0].acquire(timeout=timeout_s)
        try:
            yield acquired
        finally:
            if acquired:
                entry[0].release()
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    self._locks.pop(key, None)


class AgentService(FramedService):
    """Serves one step with idempotency and durable memory."""

    #: How long a second delivery of a task waits for the first to finish before it is
    #: told ``in_progress`` (the step itself takes milliseconds; fsync dominates).
    SAME_TASK_WAIT_S = 5.0
    #: Step requests can outgrow a client's 1 MiB (SPEC §4, large payloads).
    max_frame_bytes = AGENT_MAX_FRAME_BYTES

    def __init__(self, role: str, *, token: str, logger, registry, store) -> None:
        if role not in ROLE_STEP:
            raise ValueError(f"not an agent role: {role!r}")
        self.role = role
        self.step = ROLE_STEP[role]
        self.capabilities = (self.step,)
        super().__init__(token=token, logger=logger, registry=registry)
        self.store = store
        self._locks = KeyedLocks()
        self.m_executed = registry.counter("faultdrill_steps_executed_total",
                                           "Steps executed (not replayed).", labels=("step",))
        self.m_replayed = registry.counter("faultdrill_steps_replayed_total",
                                           "Steps answered from memory.", labels=("step",))

    def dispatch(self, request: Request, trace: Trace) -> dict:
        validate_payload(request)
        task_id = request.task_id
        with self._locks.hold(task_id, self.SAME_TASK_WAIT_S) as acquired:
            if not acquired:
                raise ProtocolError("in_progress", f"task {task_id} is being executed",
                                    task_id=task_id, retry_after_ms=100)
            record = self.store.get(task_id)
            if record is not None and record.get("step") == self.step:
                if json_equal(record.get("input"), request.payload):
                    self.m_replayed.inc(step=self.step)
                    self.log.info(f"{self.step} replayed from memory", event="step_replayed",
                                  step=self.step, seq=record.get("seq"))
                    return ok_reply(request, record["output"], replay=True, traceparent=trace.traceparent)
                raise ProtocolError("idempotency_conflict",
                                    f"task {task_id} already has a {self.step} result for a different payload",
                                    task_id=task_id)
            output = STEPS[self.step](request.payload)
            # Built here from a schema-checked payload and our own output: the store skips
            # its record schema pass (files are validated on load). Different tasks write
            # in parallel (the store's lock covers bookkeeping, not the fsyncs).
            stored = self.store.put(task_id, {"step": self.step, "input": request.payload, "output": output},
                                    trusted=True)
            self.sync_pruned()
            self.m_executed.inc(step=self.step)
            # Not a required event (SPEC §12; the `request` line follows): debug, to keep
            # the stderr writes per request at one.
            self.log.debug(f"{self.step} executed and stored", event="step_executed", step=self.step,
                           seq=stored.get("seq"))
            return ok_reply(request, output, replay=False, traceparent=trace.traceparent)

    def readiness(self) -> tuple[bool, list[str]]:
        reasons = []
        if not getattr(self.store, "loaded", True):
            reasons.append("memory not loaded")
        elif not self.store.writable():
            reasons.append("memory not writable")
        return (not reasons), reasons
