"""An incident's fault schedule run against a live system.

Each fault has `at_s` (seconds after the incident starts) and optionally
`repeat_every_s`; the schedule applies them through `Actions.apply` on one daemon thread
and records every application (or its error) with a timestamp, for the drill's timeline.
Random choices inside a fault (which records to damage) come from the actions' seeded
generator, so a seed replays the same incident. `stop()` is bounded.
"""
from __future__ import annotations

import threading
import time

__all__ = ["Schedule"]


class Schedule:
    def __init__(self, actions, faults, *, on_event=None):
        self.actions = actions
        self.faults = [dict(f) for f in faults]
        self.events: list[dict] = []
        self._on_event = on_event
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.started_at: float | None = None

    def start(self) -> "Schedule":
        self.started_at = time.time()
        self._thread = threading.Thread(target=self._run, daemon=True, name="incident-schedule")
        self._thread.start()
        return self

    def _plan(self):
        """(due offset, fault index) pairs in time order, generated lazily."""
        due = [(float(f["at_s"]), i) for i, f in enumerate(self.faults)]
        while due:
            due.sort()
            at, i = due.pop(0)
            yield at, i
            rep = self.faults[i].get("repeat_every_s")
            if rep:
                due.append((at + float(rep), i))

    def _run(self) -> None:
        t0 = time.monotonic()
        for at, i in self._plan():
            if self._stop.wait(max(0.0, t0 + at - time.monotonic())):
                return
            fault = {k: v for k, v in self.faults[i].items() if k not in ("at_s", "repeat_every_s")}
            entry = {"t": time.time(), "offset_s": round(time.monotonic() - t0, 2), "fault": fault}
            try:
                entry["result"] = self.actions.apply(fault)
            except Exception as exc:  # noqa: BLE001 - recorded, the schedule goes on
                entry["error"] = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.events.append(entry)
            if self._on_event is not None:
                self._on_event(entry)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
