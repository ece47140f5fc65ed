"""The orchestrator's task table: idempotency by task_id, durable task log, alerts (SPEC §9, §11, §13.2).

What is durable, and why only that: a task record is written twice per run - when the
task is accepted (``queued``: §9.3 idempotency must hold across restarts, and a crash must
leave a record that start-up turns into ``failed``, §11.1) and when it finishes (the result
a replay returns). Step progress (``running``, attempts, step timelines) lives in memory
only: ``status`` and the dashboard read memory, and after a crash the task is failed
anyway. At start-up the table is rebuilt from the store and a task found ``queued`` or
``running`` is marked ``failed`` with a ``timeout`` error so that resubmitting it runs it
again.

Locking: ``lock`` guards the in-memory table only and is never held across I/O; each
``store.put`` runs outside it (the store orders puts of one task itself). Nothing that
reports success is published before its record is durable: the final state becomes
visible only after the final put, and a lookup of a task whose admission record is still
being written waits for that write (bounded). The finish write waits for the admission
write too, so the final record can never be overwritten by the older ``queued`` one.
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
#: Bound on waiting for another thread's admission write of the same task (one fsync).
ADMISSION_WRITE_WAIT_S = 10.0
ALERT_WINDOW = 20
ALERT_MIN_FINISHED = 5
#: Tasks whose per-attempt timings are kept (in memory, for the dashboard), newest runs.
ATTEMPT_LOGS_MAX = 1000


def _view(rec: dict) -> dict:
    """A snapshot of a table record for a reader: shallow, with its own step list.

    Cheap on purpose (a deep copy of the task input and result on every status, submit and
    step change cost more CPU than the rest of the orchestrator's bookkeeping). It is a
    consistent snapshot because nested values of a record are never mutated in place:
    ``input`` and ``result`` are replaced, never edited; the step list is replaced by
    ``update_steps``/``finish`` with copies of the pipeline's step dicts; ``status`` is a
    top-level key. Readers must treat what they get as read-only.
    """
    out = dict(rec)
    out["steps"] = [dict(s) for s in rec.get("steps") or []]
    return out


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
        # task_id -> set once its admission record is durable (or its write failed).
        self._admission_written: dict[str, threading.Event] = {}
        # task_id -> the current run's attempts (pipeline.attempt_entry), oldest first. In
        # memory only and never part of a record: the records' schemas are the contract's.
        self._attempts: OrderedDict[str, list[dict]] = OrderedDict()

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
        """A copy of the task's record as readers see it; waits (bounded) while the task's
        admission record is being written, so a ``status_ok`` never reports a task that a
        crash in the next millisecond would make unknown."""
        self._await_admission_write(task_id)
        with self.lock:
            rec = self._tasks.get(task_id)
            return _view(rec) if rec is not None else None

    def _await_admission_write(self, task_id: str) -> None:
        with self.lock:
            pending = self._admission_written.get(task_id)
        if pending is not None:
            pending.wait(timeout=ADMISSION_WRITE_WAIT_S)

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
            # The request's payload is not modified by anyone after validation: kept as is.
            new = {"task_id": task_id, "task_type": task_type, "input": task_input,
                   "status": "queued", "result": None, "error": None, "steps": [],
                   "submitted_at": self.now_iso(), "finished_at": None}
            if not enqueue(task_id):
                return "busy", None
            self._started_mono[task_id] = self.clock()
            self._done[task_id] = threading.Event()
            self._attempts.pop(task_id, None)  # a new run: the old run's attempts are history
            written = threading.Event()
            self._admission_written[task_id] = written
            self._tasks[task_id] = new
            self._tasks.move_to_end(task_id)
            snapshot = _view(new)
        # Durable before the caller replies (``submit_ok`` with ``queued``, or the final
        # reply later); outside the lock so other tasks' admissions and status requests
        # never wait for this fsync.
        try:
            self._persist(snapshot)
        finally:
            written.set()
            with self.lock:
                if self._admission_written.get(task_id) is written:
                    del self._admission_written[task_id]
        return "queued", snapshot

    # -- transitions --------------------------------------------------------------------

    def submitted_monotonic(self, task_id: str) -> float:
        with self.lock:
            return self._started_mono.get(task_id, self.clock())

    def mark_running(self, task_id: str) -> dict:
        """In memory only: on disk the task stays ``queued`` until it finishes, which start-up
        treats exactly like ``running`` (both become ``failed``)."""
        with self.lock:
            rec = self._tasks[task_id]
            rec["status"] = "running"
            return _view(rec)

    def add_attempt(self, task_id: str, entry: dict) -> None:
        """Keep one finished attempt of the task's current run (dashboard only)."""
        with self.lock:
            log = self._attempts.get(task_id)
            if log is None:
                log = self._attempts[task_id] = []
                while len(self._attempts) > ATTEMPT_LOGS_MAX:
                    self._attempts.popitem(last=False)
            log.append(entry)

    def attempts(self, task_id: str) -> list[dict]:
        """The current run's attempts, oldest first (copies); [] when none are known."""
        with self.lock:
            return [dict(e) for e in self._attempts.get(task_id, ())]

    def update_steps(self, task_id: str, steps: list[dict]) -> None:
        """Step progress for ``status`` and the dashboard: in memory only (see the module
        docstring); the final step list is written with the final record."""
        copied = [dict(s) for s in steps]
        with self.lock:
            rec = self._tasks.get(task_id)
            if rec is not None and rec["status"] in ACTIVE:
                rec["steps"] = copied

    def finish(self, task_id: str, *, ok: bool, result: dict | None, error: dict | None,
               steps: list[dict]) -> dict:
        """Write the final record, then publish it: readers (status, replays, the waiting
        submit) see the outcome only once it is durable. If the write fails the task is
        published as ``failed`` (``internal_error``) so that it is not stuck ``running``
        and a resubmission runs it again; the write error is re-raised for the log."""
        self._await_admission_write(task_id)
        with self.lock:
            final = dict(self._tasks[task_id])
        final["status"] = "succeeded" if ok else "failed"
        final["result"] = result if ok else None
        final["error"] = None if ok else error
        final["steps"] = [dict(s) for s in steps]
        final["finished_at"] = self.now_iso()
        write_error: BaseException | None = None
        try:
            self._persist(final)
        except Exception as exc:  # noqa: BLE001 - published as failed below, then re-raised
            write_error = exc
            final["status"] = "failed"
            final["result"] = None
            final["error"] = make_error_object(
                "internal_error", f"the task record could not be stored: {type(exc).__name__}")
        with self.lock:
            self._tasks[task_id] = final
            self._finished.append((task_id, final["status"]))
            self._evaluate_alert()
            self._started_mono.pop(task_id, None)
            event = self._done.pop(task_id, None)
            snapshot = _view(final)
        if event is not None:
            event.set()
        if write_error is not None:
            raise write_error
        return snapshot

    def wait_done(self, task_id: str, timeout_s: float) -> dict | None:
        """Block (bounded) until the task finishes; the final record, or None on timeout."""
        with self.lock:
            event = self._done.get(task_id)
            rec = self._tasks.get(task_id)
            if event is None:
                return _view(rec) if rec is not None else None
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
        """One durable put of ``rec`` (a private copy: the store may keep references).
        Called WITHOUT ``lock``; the record was built here from validated parts, so the
        store skips its schema pass (``trusted``) - files are validated on load."""
        self.store.put(rec["task_id"], {k: v for k, v in rec.items()
                                        if k not in ("format", "task_id", "seq", "stored_at")},
                       trusted=True)
        with self.lock:
            self._forget_pruned()
        self.after_put()

    def _forget_pruned(self) -> None:
        """Drop finished tasks that retention removed from disk (active ones stay).

        O(pruned) per put: the store names what it pruned. Only if it pruned more than it
        remembers (a burst beyond ``PRUNED_LOG_MAX``) is the whole table compared with the
        store (O(retention), rare)."""
        if self.store.counters.get("pruned", 0) == self._pruned_seen:
            return
        gone, pruned = self.store.take_pruned()
        complete = len(gone) >= pruned - self._pruned_seen
        self._pruned_seen = pruned
        if complete:
            for task_id in gone:
                rec = self._tasks.get(task_id)
                if rec is not None and rec["status"] not in ACTIVE and task_id not in self.store:
                    del self._tasks[task_id]
                    self._attempts.pop(task_id, None)
            return
        stored = set(self.store.task_ids())
        for task_id in [t for t, r in self._tasks.items() if r["status"] not in ACTIVE and t not in stored]:
            del self._tasks[task_id]
            self._attempts.pop(task_id, None)
