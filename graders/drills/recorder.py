"""What a drill records: the interviewer's marks and the system's own metrics over time.

`DrillRecord` is the drill's single source of truth: every event (injection, each fault
application, hints given, detected / diagnosed / mitigated marks, notes, heal, the level)
with its wall time and its offset from the start; the symptom watch (when each stated
symptom was first seen); and `MetricSampler`'s series, read once a second from the same
surfaces the candidate sees. `as_json()` is the report's JSON; report.py draws it.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ..manifest import ROLES

__all__ = ["DrillRecord", "MetricSampler", "SERIES", "MARKS"]

MARKS = ("detected", "diagnosed", "mitigated")
#: series name -> (label, unit) as the report shows them.
SERIES = {
    "tasks_ok_per_s": ("tasks succeeded / s", "1/s"),
    "tasks_failed_per_s": ("tasks failed / s", "1/s"),
    "retries_per_s": ("step retries / s", "1/s"),
    "busy_per_s": ("busy rejections / s", "1/s"),
    "refused_per_s": ("unauthorized + malformed requests / s", "1/s"),
    "connections_open": ("orchestrator open connections", ""),
    "memory_records_max": ("largest agent memory (records)", ""),
    "client_latency_s": ("client mean latency (s)", "s"),
    "client_errors": ("client requests that failed (last 2 s)", ""),
    "alert_firing": ("TaskErrorRateHigh firing", "0/1"),
}


@dataclass
class DrillRecord:
    incident: dict
    seed: int
    submission: str
    started_at: float = field(default_factory=time.time)
    events: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    symptoms_seen: dict[int, float] = field(default_factory=dict)   # index -> offset (s)
    symptoms_gone: dict[int, float] = field(default_factory=dict)
    hints_given: int = 0
    level: str | None = None
    ended_at: float | None = None
    end_reason: str = ""
    cleanup_ok: bool | None = None
    sandbox: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def offset(self, t: float | None = None) -> float:
        return round((t if t is not None else time.time()) - self.started_at, 2)

    def add(self, kind: str, text: str = "", **detail) -> dict:
        entry = {"t": time.time(), "offset_s": self.offset(), "kind": kind, "text": text, **detail}
        with self._lock:
            self.events.append(entry)
        return entry

    def first(self, kind: str) -> dict | None:
        with self._lock:
            return next((e for e in self.events if e["kind"] == kind), None)

    def marks(self) -> dict[str, float | None]:
        """Seconds from the injection to each mark (None: never marked)."""
        inject = self.first("inject")
        base = inject["offset_s"] if inject else 0.0
        out = {}
        for m in MARKS:
            e = self.first(m)
            out[m] = round(e["offset_s"] - base, 2) if e else None
        return out

    def as_json(self) -> dict:
        with self._lock:
            events, samples = list(self.events), list(self.samples)
        return {"kind": "faultdrill-drill", "incident": self.incident, "seed": self.seed,
                "submission": self.submission, "started_at": self.started_at,
                "ended_at": self.ended_at, "end_reason": self.end_reason,
                "duration_s": round((self.ended_at or time.time()) - self.started_at, 2),
                "events": events, "samples": samples, "series": {k: v[0] for k, v in SERIES.items()},
                "symptoms_seen": {str(k): v for k, v in self.symptoms_seen.items()},
                "symptoms_gone": {str(k): v for k, v in self.symptoms_gone.items()},
                "hints_given": self.hints_given, "marks_after_injection_s": self.marks(),
                "level": self.level, "cleanup_ok": self.cleanup_ok, "sandbox": self.sandbox}


class MetricSampler:
    """Reads the system's metrics once per `period` into `record.samples` (a thread)."""

    def __init__(self, observer, record: DrillRecord, *, period: float = 1.0):
        self.observer, self.record, self.period = observer, record, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="drill-sampler")
        self._prev: dict | None = None

    def start(self) -> "MetricSampler":
        self._thread.start()
        return self

    def _counters(self) -> dict:
        obs = self.observer
        fams = {role: obs.metrics(role) for role in ROLES}
        o = fams["orchestrator"]
        refused = sum(obs.metric_value(fams[r], "faultdrill_requests_total", {"outcome": "unauthorized"})
                      + obs.metric_value(fams[r], "faultdrill_requests_total", {"outcome": "malformed_frame"})
                      for r in ROLES)
        return {"ok": obs.metric_value(o, "faultdrill_tasks_total", {"status": "succeeded"}),
                "failed": obs.metric_value(o, "faultdrill_tasks_total", {"status": "failed"}),
                "retries": obs.metric_value(o, "faultdrill_step_retries_total"),
                "busy": obs.metric_value(o, "faultdrill_busy_rejections_total"),
                "refused": refused,
                "connections_open": obs.metric_value(o, "faultdrill_connections_open") if o else None,
                "memory_records_max": max((obs.metric_value(fams[r], "faultdrill_memory_records")
                                           for r in ("collector", "analyzer", "reporter") if fams[r]),
                                          default=None),
                "reachable": [r for r in ROLES if fams[r]]}

    def sample_once(self) -> dict:
        now = time.time()
        cur = self._counters()
        prev, self._prev = self._prev, {"t": now, **cur}
        row = {"t": now, "offset_s": self.record.offset(now), "reachable": cur["reachable"],
               "connections_open": cur["connections_open"], "memory_records_max": cur["memory_records_max"],
               "alert_firing": 1 if "TaskErrorRateHigh" in self.observer.alerts() else 0}
        for key, name in (("ok", "tasks_ok_per_s"), ("failed", "tasks_failed_per_s"),
                          ("retries", "retries_per_s"), ("busy", "busy_per_s"), ("refused", "refused_per_s")):
            if prev is None or now <= prev["t"]:
                row[name] = None
            else:
                # A restarted service starts its counters at zero: never a negative rate.
                row[name] = round(max(0.0, cur[key] - prev[key]) / (now - prev["t"]), 3)
        traffic = self.observer.traffic
        recent = traffic.recent(self.period * 2) if traffic is not None else []
        row["client_latency_s"] = (round(sum(o.latency_s for o in recent) / len(recent), 4)
                                   if recent else None)
        row["client_errors"] = sum(1 for o in recent if o.outcome != "ok")
        with self.record._lock:
            self.record.samples.append(row)
        return row

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.sample_once()
            except Exception:  # noqa: BLE001 - a failed read is a gap in the chart, not a crash
                pass
            self._stop.wait(max(0.05, self.period - (time.monotonic() - started)))

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
