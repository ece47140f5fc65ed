"""An incident's fault schedule run against a live system.

Each fault has `at_s` (seconds after the incident starts), optionally `repeat_every_s`
and `jitter_s` (each occurrence is delayed by a seeded uniform [0, jitter_s), so two
seeds differ and one seed replays exactly); the schedule applies them through
`Actions.apply` on one daemon thread and records every application (or its error) with a
timestamp, for the drill's timeline. Random choices inside a fault (which records to
damage) come from the actions' seeded generator. `stop()` is bounded.
"""
from __future__ import annotations

import random
import threading
import time
from typing import Iterator

__all__ = ["Schedule", "plan", "SCHEDULE_KEYS"]

#: Keys of a scheduled fault that are about *when*, not *what*.
SCHEDULE_KEYS = ("at_s", "repeat_every_s", "jitter_s")


def plan(faults: list[dict], seed: int) -> Iterator[tuple[float, int]]:
    """(offset in seconds, fault index) in time order, endless for repeating faults (pure)."""
    rng = random.Random(f"faultdrill-schedule:{seed}")

    def jitter(i: int) -> float:
        j = float(faults[i].get("jitter_s") or 0.0)
        return rng.uniform(0.0, j) if j else 0.0

    due = [(float(f["at_s"]) + jitter(i), float(f["at_s"]), i) for i, f in enumerate(faults)]
    while due:
        due.sort()
        at, nominal, i = due.pop(0)
        yield round(at, 3), i
        rep = faults[i].get("repeat_every_s")
        if rep:
            nxt = nominal + float(rep)
            due.append((nxt + jitter(i), nxt, i))


class Schedule:
    def __init__(self, actions, faults, *, seed: int = 0, on_event=None):
        self.actions = actions
        self.seed = seed
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

    def _run(self) -> None:
        t0 = time.monotonic()
        for at, i in plan(self.faults, self.seed):
            if self._stop.wait(max(0.0, t0 + at - time.monotonic())):
                return
            fault = {k: v for k, v in self.faults[i].items() if k not in SCHEDULE_KEYS}
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
