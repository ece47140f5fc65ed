"""The orchestrator service: submit/status/list, a bounded queue, workers, readiness, dashboard.

Back-pressure is decided before anything else is done for a submit (SPEC §7 step 6, §15):
if the queue is full the client gets ``busy`` at once, nothing is stored. Accepted tasks
go through ``TaskTable`` (idempotency, durable task log) and then the queue; FD_WORKERS
threads take them and run ``pipeline.run_pipeline`` with a real clock, real sleeps and an
``AgentClient`` per agent. A ``wait: true`` submit blocks its connection thread until the
task finishes, which is bounded by the task deadline.
"""

from __future__ import annotations

import json
import queue
from collections import OrderedDict
import random
import threading
import time
from typing import Callable

from reference_impl.agents.base import FramedService, Trace, type_label
from reference_impl.orchestrator import dashboard
from reference_impl.orchestrator.client import AgentClient
from reference_impl.orchestrator.pipeline import Settings, run_pipeline
from reference_impl.orchestrator.refusals import RefusalLog
from reference_impl.orchestrator.routing import STEP_AGENT, effective_thresholds
from reference_impl.orchestrator.tasks import TaskTable
from reference_impl.protocol.envelope import Request, ok_reply, validate_payload
from reference_impl.protocol.errors import ProtocolError, error_reply
from reference_impl.protocol.schema import validate
from reference_impl.protocol.trace import format_traceparent, new_span_id, new_trace_id, parse_traceparent
from reference_impl.runtime.http import HTML_CONTENT_TYPE, json_response
from reference_impl.runtime.logs import log_context

DEFAULT_THRESHOLDS = {"error_permille": 50, "p95_latency_ms": 1000}
READY_WINDOW_S = 2.0
PROBE_TIMEOUT_S = 0.8
#: A probe bounds itself; this only covers its thread being scheduled late under load.
PROBE_JOIN_SLACK_S = 0.7
#: Extra time a waiting submit allows beyond the task deadline before it gives up.
WAIT_SLACK_S = 2.0


class OrchestratorService(FramedService):
    role = "orchestrator"
    capabilities = ("submit", "status", "list")

    def __init__(self, *, token: str, logger, registry, store, routes: dict[str, list[str]],
                 clients: dict[str, AgentClient], settings: Settings, deadline_ms: int,
                 queue_size: int, workers: int, now_iso: Callable[[], str],
                 rng: random.Random | None = None) -> None:
        super().__init__(token=token, logger=logger, registry=registry)
        self.store = store
        self.routes = routes
        self.clients = clients
        self.settings = settings
        self.deadline_ms = deadline_ms
        self.queue_size = queue_size
        self.workers = workers
        self.now_iso = now_iso
        self.rng = rng or random.Random()
        self.rng_lock = threading.Lock()
        self.table = TaskTable(store, now_iso=now_iso, deadline_ms=deadline_ms,
                               after_put=lambda: self.sync_pruned())
        # Unbounded queue, bounded admission: at most workers + queue_size tasks are
        # admitted (running or waiting) at any time, which also makes FD_QUEUE_SIZE=0 mean
        # "only when a worker is free" (queue.Queue(maxsize=0) would mean unbounded).
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.capacity = workers + queue_size
        self._admitted = 0
        self._admitted_lock = threading.Lock()
        self._stop = threading.Event()
        # Set when the shutdown grace period is about to end with tasks unfinished: every
        # submit still waiting for its task answers `timeout` at once (SPEC §17).
        self._released = threading.Event()
        self._release_grace_ms = 0
        self._threads: list[threading.Thread] = []
        self._running = 0
        self._running_lock = threading.Lock()
        # task_id -> trace id of the run, so that every line about a task (including later
        # status requests without a traceparent) carries the same trace id (SPEC §12).
        self._task_traces: OrderedDict[str, str] = OrderedDict()
        self._traces_lock = threading.Lock()
        # Requests answered with an error without running a task (dashboard, /api/refused).
        # Per-request scratch on the connection thread: the trace id the request was
        # handled under, and whether an error reply is a task's own outcome (not a refusal).
        self.refusals = RefusalLog(now_iso=now_iso, secrets=(token,))
        self._request_local = threading.local()
        self.m_tasks = registry.counter("faultdrill_tasks_total", "Tasks finished, by status.",
                                        labels=("status",))
        self.m_retries = registry.counter("faultdrill_step_retries_total", "Step retries scheduled.",
                                          labels=("step",))
        self.m_busy = registry.counter("faultdrill_busy_rejections_total",
                                       "Submits refused with busy because the queue was full.")
        registry.gauge("faultdrill_queue_depth", "Tasks waiting for a worker.", fn=self.queue.qsize)
        self.m_task_duration = registry.histogram("faultdrill_task_duration_seconds",
                                                  "Time from submit to task end.")

    # -- lifecycle ----------------------------------------------------------------------

    def start_workers(self) -> None:
        failed = self.table.recover()
        for task_id in failed:
            with log_context(task_id=task_id, trace_id=None, span_id=None):
                self.log.warn("task was active when the orchestrator stopped; marked failed",
                              event="task_recovered_failed")
        for i in range(self.workers):
            t = threading.Thread(target=self._worker, name=f"worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def idle(self) -> bool:
        with self._running_lock:
            return self._running == 0 and self.queue.empty()

    def wait_tasks(self, timeout_s: float) -> bool:
        """Bounded wait for the queue and the workers to run dry (drain)."""
        end = time.monotonic() + timeout_s
        while not self.idle():
            if time.monotonic() >= end:
                return False
            time.sleep(0.05)
        return True

    def release_waiters(self, grace_ms: int) -> None:
        """The drain will not see the remaining tasks finish: make every `wait: true`
        submit still waiting answer now with `timeout` (indefinite: the task may still
        complete; its record says so, and a retry replays or re-runs it) instead of being
        closed without a reply when the process exits."""
        self._release_grace_ms = grace_ms
        self._released.set()

    def _wait_for_task(self, task_id: str, timeout_s: float) -> dict | None:
        """Like ``TaskTable.wait_done`` but also returns (the current record) as soon as
        the waiters are released by a shutdown; None when the task is unknown."""
        end = time.monotonic() + timeout_s
        while True:
            left = end - time.monotonic()
            if left <= 0 or self._released.is_set():
                return self.table.lookup(task_id)
            final = self.table.wait_done(task_id, min(left, 0.05))
            if final is not None and final["status"] in ("succeeded", "failed"):
                return final

    def stop_workers(self, timeout_s: float = 1.0) -> None:
        self._stop.set()
        for _ in self._threads:
            self.queue.put_nowait(None)  # wakes an idle worker now, not at its next poll
        end = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(timeout=max(0.0, end - time.monotonic()))

    # -- trace ids ----------------------------------------------------------------------

    MAX_REMEMBERED_TRACES = 10000

    def _remember_trace(self, task_id: str, trace_id: str) -> None:
        with self._traces_lock:
            self._task_traces[task_id] = trace_id
            self._task_traces.move_to_end(task_id)
            while len(self._task_traces) > self.MAX_REMEMBERED_TRACES:
                self._task_traces.popitem(last=False)

    def _trace_for(self, request: Request) -> Trace:
        """The request's traceparent if valid, else the task's own trace, else a new one."""
        ctx = parse_traceparent(request.traceparent) if request.traceparent else None
        if ctx is not None:
            trace = Trace(ctx.trace_id, new_span_id())
        else:
            with self._traces_lock:
                known = self._task_traces.get(request.task_id) if request.task_id else None
            trace = Trace(known or new_trace_id(), new_span_id())
        self._request_local.trace_id = trace.trace_id
        return trace

    def trace_of(self, task_id: str) -> str | None:
        """The trace id a task ran under (what its log lines carry), if still remembered."""
        with self._traces_lock:
            return self._task_traces.get(task_id)

    # -- refused requests -----------------------------------------------------------------

    def _handle(self, item, conn) -> dict | None:
        """The shared frame path, plus: an error reply that is not a task's own outcome is
        a refused request, noted in ``self.refusals`` (a counter and a ring-buffer entry)."""
        local = self._request_local
        local.trace_id = None
        local.task_outcome = False
        reply = super()._handle(item, conn)
        if reply is not None and reply.get("type") == "error" and not local.task_outcome:
            frame = item.kind == "frame"
            name = (reply.get("error") or {}).get("name")
            self.refusals.record(
                reply, request_type=type_label(item.value.get("type")) if frame else None,
                peer=conn.peer if conn is not None else None,
                authenticated=frame and name != "unauthorized", trace_id=local.trace_id)
        return reply

    # -- requests -----------------------------------------------------------------------

    def dispatch(self, request: Request, trace: Trace) -> dict:
        if request.type == "submit":
            return self._submit(request, trace)
        validate_payload(request)
        if request.type == "status":
            rec = self.table.lookup(request.task_id)
            if rec is None:
                raise ProtocolError("not_found", f"no task {request.task_id} was submitted",
                                    task_id=request.task_id)
            return ok_reply(request, TaskTable.status_payload(rec), traceparent=trace.traceparent)
        if request.type == "list":
            limit = request.payload.get("limit", 100)
            return ok_reply(request, self.table.list_payload(limit), traceparent=trace.traceparent)
        raise ProtocolError("not_supported", f"{request.type} is not served here", type=request.type)

    def full(self) -> bool:
        with self._admitted_lock:
            return self._admitted >= self.capacity

    def _busy(self) -> ProtocolError:
        self.m_busy.inc()
        return ProtocolError("busy", f"queue full ({self.queue_size} waiting); retry later",
                             retry_after_ms=self._retry_after_ms())

    def _retry_after_ms(self) -> int:
        return max(50, min(2000, self.settings.base_ms * 2))

    def _submit(self, request: Request, trace: Trace) -> dict:
        if self.full():
            raise self._busy()
        validate_payload(request)
        task_type = request.payload["task_type"]
        if task_type not in self.routes:
            known = sorted(self.routes)
            raise ProtocolError("schema_violation", f"unknown task_type {task_type!r}; known: {known}",
                                path="$.payload.task_type", expected=f"one of {json.dumps(known)}")
        task_id = request.task_id
        task_input = request.payload["input"]

        def enqueue(tid: str) -> bool:
            # Remember the trace before a worker can pick the task up.
            with self._admitted_lock:
                if self._admitted >= self.capacity:
                    return False
                self._admitted += 1
            self._remember_trace(tid, trace.trace_id)
            self.queue.put_nowait(tid)
            return True

        verdict, rec = self.table.admit(task_id, task_type, task_input, enqueue)
        if verdict == "busy":
            raise self._busy()
        if verdict == "conflict":
            raise ProtocolError("idempotency_conflict",
                                f"task {task_id} was already submitted with a different payload",
                                task_id=task_id)
        if verdict == "in_progress":
            raise ProtocolError("in_progress", f"task {task_id} is {rec['status']}",
                                task_id=task_id, retry_after_ms=self._retry_after_ms())
        if verdict == "replay":
            return ok_reply(request, self._result_payload(rec), replay=True, traceparent=trace.traceparent)
        self.log.info(f"task received ({task_type})", event="task_received", task_type=task_type,
                      wait=request.payload.get("wait", True))
        if not request.payload.get("wait", True):
            return ok_reply(request, {"task_id": task_id, "status": "queued"}, replay=False,
                            traceparent=trace.traceparent)
        final = self._wait_for_task(task_id, self.deadline_ms / 1000.0 + WAIT_SLACK_S)
        self._request_local.task_outcome = True  # from here on, an error is the task's, not a refusal
        if final is None or final["status"] not in ("succeeded", "failed"):
            running = [s for s in (final or {}).get("steps") or [] if s.get("status") == "running"]
            step = running[-1].get("step") if running else None
            if self._released.is_set():
                raise ProtocolError("timeout", f"the orchestrator is shutting down and task {task_id} "
                                    f"did not finish within the {self._release_grace_ms} ms grace period",
                                    step=step, timeout_ms=self._release_grace_ms)
            raise ProtocolError("timeout", f"task {task_id} did not finish in time", step=step,
                                timeout_ms=self.deadline_ms)
        if final["status"] == "succeeded":
            return ok_reply(request, self._result_payload(final), replay=False, traceparent=trace.traceparent)
        reply = error_reply(final["error"], request.msg_id, task_id)
        reply["traceparent"] = trace.traceparent
        return reply

    @staticmethod
    def _result_payload(rec: dict) -> dict:
        return {"task_id": rec["task_id"], "status": rec["status"], "result": rec["result"],
                "steps": rec["steps"]}

    # -- workers ------------------------------------------------------------------------

    def _worker(self) -> None:
        while not self._stop.is_set():
            try:
                task_id = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if task_id is None:  # stop_workers' wake-up
                continue
            with self._running_lock:
                self._running += 1
            try:
                self._run_task(task_id)
            except Exception as exc:  # noqa: BLE001 - a worker must survive any one task
                self.log.error(f"worker crashed on task: {type(exc).__name__}: {exc}", event="internal_error")
            finally:
                with self._running_lock:
                    self._running -= 1
                with self._admitted_lock:
                    self._admitted -= 1

    def _run_task(self, task_id: str) -> None:
        rec = self.table.mark_running(task_id)
        trace_id = self._task_traces.get(task_id)
        if trace_id is None:
            trace_id = new_trace_id()
            self._remember_trace(task_id, trace_id)
        started_mono = self.table.submitted_monotonic(task_id)
        deadline = started_mono + self.deadline_ms / 1000.0
        steps = self.routes[rec["task_type"]]
        thresholds = effective_thresholds(rec["input"], DEFAULT_THRESHOLDS)
        step_records: list[dict] = []
        with log_context(task_id=task_id, trace_id=trace_id, span_id=new_span_id()):
            # Not a required event (SPEC §12): debug, to keep the per-task line count (and
            # the stderr writes on the hot path) down.
            self.log.debug(f"task running: {' -> '.join(steps)}", event="task_started", steps=steps)

            def call(step: str, payload: dict, timeout_s: float):
                client = self.clients[STEP_AGENT[step]]
                return client.call(step, payload, task_id=task_id,
                                   traceparent=format_traceparent(trace_id, new_span_id()), timeout_s=timeout_s)

            def validate_output(step: str, payload: dict) -> None:
                validate(payload, f"{step}_output", "$.payload")

            def on_event(event: str, **fields) -> None:
                if event == "retry_scheduled":
                    self.m_retries.inc(step=fields["step"])
                    self.log.warn(f"retrying {fields['step']} in {fields['delay_ms']} ms after {fields.get('cause')}",
                                  event=event, **fields)
                elif event == "step_attempt":
                    self.log.info(f"{event} {fields.get('step')}", event=event, **fields)
                else:  # step_succeeded: not required; task_succeeded/task_failed say the rest
                    self.log.debug(f"{event} {fields.get('step')}", event=event, **fields)

            with self.rng_lock:
                rng = random.Random(self.rng.getrandbits(64))
            outcome = run_pipeline(
                steps, rec["input"], thresholds, call=call, validate_output=validate_output,
                settings=self.settings, deadline=deadline, deadline_ms=self.deadline_ms,
                rng=rng, now_iso=self.now_iso, on_event=on_event, step_records=step_records,
                on_change=lambda: self.table.update_steps(task_id, step_records),
                on_attempt=lambda entry: self.table.add_attempt(task_id, entry))
            final = self.table.finish(task_id, ok=outcome.ok, result=outcome.result, error=outcome.error,
                                      steps=outcome.steps)
            elapsed = time.monotonic() - started_mono
            self.m_tasks.inc(status=final["status"])
            self.m_task_duration.observe(elapsed)
            if outcome.ok:
                self.log.info("task succeeded", event="task_succeeded", duration_ms=int(elapsed * 1000))
            else:
                self.log.warn(f"task failed: {outcome.error.get('message')}", event="task_failed",
                              error=outcome.error.get("name"), duration_ms=int(elapsed * 1000))

    # -- readiness and HTTP ---------------------------------------------------------------

    def readiness(self) -> tuple[bool, list[str]]:
        """Ready when the memory is loaded and every agent answered hello within the last
        READY_WINDOW_S (SPEC §13).

        An agent whose last hello is older than that is probed now, all such agents in
        parallel, and judged by the probe's own outcome: a stale cache is never reported
        as "no hello" merely because a probe was slow to be scheduled (seen right after
        start under load). Each probe bounds itself (PROBE_TIMEOUT_S); the join below only
        guards against a probe thread that never ran."""
        reasons = []
        if not getattr(self.store, "loaded", True):
            reasons.append("memory not loaded")
        stale = {role: c for role, c in self.clients.items() if not c.ready_within(READY_WINDOW_S)}
        outcome: dict[str, str | None] = {}

        def probe(role: str, client: AgentClient) -> None:
            ok = client.probe(PROBE_TIMEOUT_S)
            outcome[role] = None if ok and not client.incompatible else (
                client.last_problem or "hello failed")

        probes = [threading.Thread(target=probe, args=(role, c), daemon=True, name=f"probe-{role}")
                  for role, c in stale.items()]
        for t in probes:
            t.start()
        end = time.monotonic() + PROBE_TIMEOUT_S + PROBE_JOIN_SLACK_S
        for t in probes:
            t.join(timeout=max(0.0, end - time.monotonic()))
        for role in self.clients:
            if role not in stale:
                continue
            if role not in outcome:
                reasons.append(f"{role}: hello probe did not finish within "
                               f"{int((PROBE_TIMEOUT_S + PROBE_JOIN_SLACK_S) * 1000)} ms")
            elif outcome[role] is not None:
                reasons.append(f"{role}: {outcome[role]}")
        return (not reasons), reasons

    def http_routes(self) -> tuple[dict, dict]:
        def page():
            tasks = [TaskTable.status_payload(r) for r in self.table.recent(100)]
            for t in tasks:
                t["trace_id"] = self.trace_of(t["task_id"])
                t["attempt_log"] = self.table.attempts(t["task_id"])
            html = dashboard.render(tasks, self.table.alerts(), refused=self.refusals.snapshot(50))
            return 200, HTML_CONTENT_TYPE, html.encode("utf-8")

        def api_refused():
            return json_response(200, self.refusals.snapshot())

        def api_tasks():
            return json_response(200, self.table.list_payload(100))

        def api_alerts():
            return json_response(200, {"alerts": self.table.alerts()})

        def api_task(task_id: str):
            if task_id.endswith("/attempts"):
                return api_attempts(task_id[:-len("/attempts")])
            rec = self.table.lookup(task_id)
            if rec is None:
                return json_response(404, {"error": "not_found"})
            return json_response(200, TaskTable.status_payload(rec))

        def api_attempts(task_id: str):
            if self.table.lookup(task_id) is None:
                return json_response(404, {"error": "not_found"})
            return json_response(200, {"task_id": task_id, "trace_id": self.trace_of(task_id),
                                       "attempts": self.table.attempts(task_id)})

        return ({"/": page, "/api/tasks": api_tasks, "/api/alerts": api_alerts,
                 "/api/refused": api_refused},
                {"/api/tasks/": api_task})
