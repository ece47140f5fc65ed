"""The orchestrator's task table: idempotency by task_id, durable task log, alerts (SPEC §9, §11, §13.2).

Every state change is written through ``RecordStore.put`` (durable before it returns), so
the table survives restarts: at start-up it is rebuilt from the store, and a task found
``queued`` or ``running`` (the orchestrator died under it) is marked ``failed`` with a
``timeout`` error so that resubmitting it runs it again (§11.1). The in-memory copy is the
one readers see; the lock makes each transition atomic with its write.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict, deque
from typing import Callable

from reference_impl.protocol.errors import make_error_object
from reference_impl.protocol.schema import json_equal

ACTIVE = ("queued", "running")
ALERT_WINDOW = 20
ALERT_MIN_FINISHED = 5


def same_submission(record: dict, task_type: str, task_input: dict) -> bool:
    """SPEC §9.3: the same task when ``task_type`` and ``input`` are equal JSON values."""
    return record.get("task_type") == task_type and json_equal(record.get("input"), task_input)


class TaskTable:
    """All known tasks, newest last; thread-safe."""

    def __init__(self, store, *, now_iso: Callable[[], str], deadline_ms: int = 10000,
                 clock: Callable[[], float] = time.monotonic,
                 after_put: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.after_put = after_put
        self.deadline_ms = deadline_ms
        self.now_iso = now_iso
        self.clock = clock
        self.lock = threading.RLock()
        self._tasks: OrderedDict[str, dict] = OrderedDict()
        self._done: dict[str, threading.Event] = {}
        self._started_mono: dict[str, float] = {}
        self._finished: deque[tuple[str, str]] = deque(maxlen=ALERT_WINDOW)
        self._alert_since: str | None = None
        self._pruned_seen = 0

    # -- start-up ---------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Load the task log; fail tasks a crash left active. Returns the ids it failed."""
        failed = []
        with self.lock:
            records = []
            for task_id in self.store.task_ids():
                rec = self.store.get(task_id)
                if rec is not None:
                    records.append(rec)
            records.sort(key=lambda r: (r.get("submitted_at") or "", r.get("seq", 0)))
            for rec in records:
                rec.pop("stored_at", None)
                if rec.get("status") in ACTIVE:
                    step = next((s["step"] for s in rec.get("steps", []) if s.get("status") == "running"), None)
                    rec["status"] = "failed"
                    rec["error"] = make_error_object(
                        "timeout", "the orchestrator stopped while this task was active",
                        step=step, timeout_ms=self.deadline_ms)
                    for s in rec.get("steps", []):
                        if s.get("status") == "running":
                            s["status"] = "failed"
                            s["finished_at"] = self.now_iso()
                            s["error"] = rec["error"]
                    rec["finished_at"] = self.now_iso()
                    self._persist(rec)
                    failed.append(rec["task_id"])
                self._tasks[rec["task_id"]] = rec
            finished = sorted((r for r in self._tasks.values() if r.get("finished_at")),
                              key=lambda r: r["finished_at"])
            for rec in finished[-ALERT_WINDOW:]:
                self._finished.append((rec["task_id"], rec["status"]))
            self._evaluate_alert()
        return failed

    # -- admission (SPEC §9.3) -----------------------------------------------------------

    def lookup(self, task_id: str) -> dict | None:
        with self.lock:
            rec = self._tasks.get(task_id)
            return copy.deepcopy(rec) if rec is not None else None

    def admit(self, task_id: str, task_type: str, task_input: dict,
              enqueue: Callable[[str], bool]) -> tuple[str, dict | None]:
        """Decide what a submit means and, for a new run, queue and record it atomically.

        Returns ``(verdict, record)`` where verdict is ``replay`` (succeeded, same payload),
        ``in_progress``, ``conflict``, ``busy`` (``enqueue`` refused) or ``queued``.
        """
        with self.lock:
            rec = self._tasks.get(task_id)
            if rec is not None:
                if not same_submission(rec, task_type, task_input):
                    return "conflict", copy.deepcopy(rec)
                if rec["status"] == "succeeded":
                    return "replay", copy.deepcopy(rec)
                if rec["status"] in ACTIVE:
                    return "in_progress", copy.deepcopy(rec)
            new = {"task_id": task_id, "task_type": task_type, "input": copy.deepcopy(task_input),
                   "status": "queued", "result": None, "error": None, "steps": [],
                   "submitted_at": self.now_iso(), "finished_at": None}
            if not enqueue(task_id):
                return "busy", None
            self._started_mono[task_id] = self.clock()
            self._done[task_id] = threading.Event()
            self._tasks[task_id] = new
            self._tasks.move_to_end(task_id)
            self._persist(new)
            return "queued", copy.deepcopy(new)

    # -- transitions --------------------------------------------------------------------

    def submitted_monotonic(self, task_id: str) -> float:
        with self.lock:
            return self._started_mono.get(task_id, self.clock())

    def mark_running(self, task_id: str) -> dict:
        with self.lock:
            rec = self._tasks[task_id]
            rec["status"] = "running"
            self._persist(rec)
            return copy.deepcopy(rec)

    def update_steps(self, task_id: str, steps: list[dict]) -> None:
        with self.lock:
            rec = self._tasks[task_id]
            rec["steps"] = copy.deepcopy(steps)
            self._persist(rec)

    def finish(self, task_id: str, *, ok: bool, result: dict | None, error: dict | None,
               steps: list[dict]) -> dict:
        with self.lock:
            rec = self._tasks[task_id]
            rec["status"] = "succeeded" if ok else "failed"
            rec["result"] = result if ok else None
            rec["error"] = None if ok else error
            rec["steps"] = copy.deepcopy(steps)
            rec["finished_at"] = self.now_iso()
            self._persist(rec)
            self._finished.append((task_id, rec["status"]))
            self._evaluate_alert()
            self._started_mono.pop(task_id, None)
            event = self._done.pop(task_id, None)
            snapshot = copy.deepcopy(rec)
        if event is not None:
            event.set()
        return snapshot

    def wait_done(self, task_id: str, timeout_s: float) -> dict | None:
        """Block (bounded) until the task finishes; the final record, or None on timeout."""
        with self.lock:
            event = self._done.get(task_id)
            rec = self._tasks.get(task_id)
            if event is None:
                return copy.deepcopy(rec) if rec is not None else None
        if not event.wait(timeout=max(0.0, timeout_s)):
            return None
        return self.lookup(task_id)

    def active_count(self) -> int:
        with self.lock:
            return sum(1 for r in self._tasks.values() if r["status"] in ACTIVE)

    # -- views --------------------------------------------------------------------------

    @staticmethod
    def status_payload(rec: dict) -> dict:
        return {k: copy.deepcopy(rec.get(k)) for k in
                ("task_id", "task_type", "status", "submitted_at", "finished_at", "result", "error", "steps")}

    def list_payload(self, limit: int = 100) -> dict:
        with self.lock:
            newest = list(reversed(self._tasks.values()))[:max(0, limit)]
            return {"tasks": [{"task_id": r["task_id"], "task_type": r["task_type"], "status": r["status"],
                               "submitted_at": r["submitted_at"]} for r in newest]}

    def recent(self, limit: int) -> list[dict]:
        with self.lock:
            return [copy.deepcopy(r) for r in list(reversed(self._tasks.values()))[:limit]]

    def alerts(self) -> list[dict]:
        with self.lock:
            firing, value = self._alert_state()
            if not firing:
                return []
            return [{"name": "TaskErrorRateHigh", "severity": "critical", "value": value,
                     "since": self._alert_since,
                     "summary": f"{sum(1 for _, s in self._finished if s == 'failed')} of the last "
                                f"{len(self._finished)} finished tasks failed"}]

    def _alert_state(self) -> tuple[bool, float]:
        finished = len(self._finished)
        failed = sum(1 for _, s in self._finished if s == "failed")
        if finished < ALERT_MIN_FINISHED:
            return False, 0.0
        return failed * 2 >= finished, failed / finished

    def _evaluate_alert(self) -> None:
        firing, _ = self._alert_state()
        if firing and self._alert_since is None:
            self._alert_since = self.now_iso()
        elif not firing:
            self._alert_since = None

    # -- persistence --------------------------------------------------------------------

    def _persist(self, rec: dict) -> None:
        self.store.put(rec["task_id"], {k: v for k, v in rec.items()
                                        if k not in ("format", "task_id", "seq", "stored_at")})
        self._forget_pruned()
        self.after_put()

    def _forget_pruned(self) -> None:
        """Drop finished tasks that retention removed from disk (active ones stay)."""
        pruned = self.store.counters.get("pruned", 0)
        if pruned == self._pruned_seen:
            return
        self._pruned_seen = pruned
        for task_id in [t for t, r in self._tasks.items() if r["status"] not in ACTIVE and t not in self.store]:
            del self._tasks[task_id]
