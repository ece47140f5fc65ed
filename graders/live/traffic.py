"""A seeded background traffic generator: keeps a live system busy like production.

Why: an operator reads symptoms off a system that is doing work - error rates, retries,
latency, alerts only move when tasks flow. The generator submits triage tasks at a steady
rate through the client hop (so the client proxy sees them), from a few "services" with a
few log lines each; task n's input depends only on (seed, n), so a drill replays the same
traffic. Outcomes (ok, or the error name; latency) are kept in a bounded window for the
drill report and the tests.

`task_input(seed, n)` is pure; `TrafficGenerator` does the I/O on daemon threads, every
request bounded by the client timeout, and `stop()` joins them within a bound.
"""
from __future__ import annotations

import collections
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..client import ClientError, Connection, make_request

__all__ = ["task_input", "TrafficGenerator", "Outcome"]

_SOURCES = ("web-1", "web-2", "payments", "search", "batch")
_SERVICES = ("payments", "auth", "search", "cart", "inventory")
_LEVELS = ("info", "info", "info", "warn", "error", "debug")
_MESSAGES = ("ok", "card declined", "timeout talking to db", "cache miss", "retrying",
             "user not found")
MAX_OUTCOMES = 5000


def task_input(seed: int, n: int) -> dict:
    """The triage input of task n (pure): 3-8 log records, one of them sometimes malformed."""
    rng = random.Random(f"faultdrill-traffic:{seed}:{n}")
    records: list = []
    for i in range(rng.randint(3, 8)):
        sec = (n * 7 + i) % 60
        records.append(f"2026-11-29T10:{(n // 60) % 60:02d}:{sec:02d}Z {rng.choice(_LEVELS)} "
                       f"{rng.choice(_SERVICES)} {rng.randint(5, 1500)} {rng.choice(_MESSAGES)}")
    if rng.random() < 0.3:
        records.append("not a log line")
    return {"source": rng.choice(_SOURCES), "records": records}


@dataclass(frozen=True)
class Outcome:
    t: float            # monotonic time the reply (or failure) arrived
    n: int
    task_id: str
    outcome: str        # "ok", an error name, or "transport" (no reply)
    latency_s: float


class TrafficGenerator:
    """Submits `rate` tasks per second to `address` (the client hop) with `token`.

    `workers` requests may be in flight at once; when all are busy a tick is skipped and
    counted (`skipped`), so a hung system does not pile up threads."""

    def __init__(self, address: tuple[str, int], token: str, *, seed: int, rate: float = 4.0,
                 workers: int = 4, timeout: float = 15.0, prefix: str | None = None,
                 on_outcome: Callable[[Outcome], None] | None = None):
        if rate <= 0 or rate > 200:
            raise ValueError("traffic rate must be within (0, 200] tasks per second")
        self.address, self.token, self.seed = address, token, seed
        self.rate, self.timeout = rate, timeout
        self.prefix = prefix or f"live-{seed}"
        self._on_outcome = on_outcome
        self._slots = threading.Semaphore(max(1, workers))
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.outcomes: collections.deque[Outcome] = collections.deque(maxlen=MAX_OUTCOMES)
        self.sent = 0
        self.skipped = 0
        self._ticker: threading.Thread | None = None

    def start(self) -> "TrafficGenerator":
        self._ticker = threading.Thread(target=self._tick, daemon=True, name="traffic-ticker")
        self._ticker.start()
        return self

    def set_rate(self, rate: float) -> None:
        if rate <= 0 or rate > 200:
            raise ValueError("traffic rate must be within (0, 200] tasks per second")
        self.rate = rate

    def _tick(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            next_at += 1.0 / self.rate
            if not self._slots.acquire(blocking=False):
                with self._lock:
                    self.skipped += 1
            else:
                with self._lock:
                    n = self.sent
                    self.sent += 1
                    self._threads = [t for t in self._threads if t.is_alive()]
                    t = threading.Thread(target=self._one, args=(n,), daemon=True,
                                         name=f"traffic-{n}")
                    self._threads.append(t)
                t.start()
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _one(self, n: int) -> None:
        task_id = f"{self.prefix}-{n}"
        frame = make_request("submit", {"task_type": "triage", "input": task_input(self.seed, n)},
                             token=self.token, task_id=task_id)
        started = time.monotonic()
        try:
            with Connection(*self.address, timeout=self.timeout) as conn:
                reply = conn.request(frame, timeout=self.timeout)
            if reply.get("type") == "submit_ok":
                outcome = "ok"
            else:
                outcome = str((reply.get("error") or {}).get("name") or reply.get("type"))
        except (ClientError, OSError):
            outcome = "transport"
        finally:
            self._slots.release()
        rec = Outcome(time.monotonic(), n, task_id, outcome, time.monotonic() - started)
        with self._lock:
            self.outcomes.append(rec)
        if self._on_outcome is not None:
            self._on_outcome(rec)

    def recent(self, seconds: float) -> list[Outcome]:
        since = time.monotonic() - seconds
        with self._lock:
            return [o for o in self.outcomes if o.t >= since]

    def stats(self, window_s: float = 10.0) -> dict:
        """Totals and the last `window_s` seconds: counts per outcome, mean latency."""
        with self._lock:
            every = list(self.outcomes)
            sent, skipped = self.sent, self.skipped
        since = time.monotonic() - window_s
        recent = [o for o in every if o.t >= since]
        by = collections.Counter(o.outcome for o in recent)
        return {"seed": self.seed, "rate": self.rate, "sent": sent, "skipped": skipped,
                "answered": len(every), "window_s": window_s, "recent": dict(by),
                "recent_mean_latency_s": (round(sum(o.latency_s for o in recent) / len(recent), 4)
                                          if recent else None)}

    def stop(self, timeout: float = 5.0) -> None:
        """Stop ticking; wait (bounded) for in-flight requests to finish or time out."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        if self._ticker is not None:
            self._ticker.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
