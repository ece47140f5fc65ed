"""Load generators: closed loop (N clients back to back) and open loop (a fixed rate).

Why two: throughput and latency under steady concurrency come from a closed loop (each
client sends its next task when the previous reply arrives); overload needs an open loop,
where arrivals follow a schedule that does not slow down when the server does (otherwise
the generator would politely stop overloading it). Every wait is bounded by `timeout`;
every task id is unique; the frames come from `make_frame(i)` so the same inputs drive
the reference and the relay.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from graders.client import ClientError, Connection

__all__ = ["LoadResult", "closed_loop", "open_loop"]


@dataclass
class LoadResult:
    elapsed: float = 0.0
    ok_latencies: list[float] = field(default_factory=list)        # seconds, `_ok` replies
    error_latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    transport_errors: int = 0
    wrong_results: int = 0
    late_sends: int = 0          # open loop: sends more than 5 ms behind schedule
    sent: int = 0

    @property
    def ok(self) -> int:
        return len(self.ok_latencies)

    def error_counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in sorted(self.error_latencies.items())}

    def merge(self, other: "LoadResult") -> None:
        self.elapsed += other.elapsed
        self.ok_latencies += other.ok_latencies
        for k, v in other.error_latencies.items():
            self.error_latencies[k] += v
        self.transport_errors += other.transport_errors
        self.wrong_results += other.wrong_results
        self.late_sends += other.late_sends
        self.sent += other.sent


Check = Callable[[int, dict], bool]


def _record(result: LoadResult, lock: threading.Lock, i: int, reply: dict, latency: float,
            check: Check | None) -> None:
    with lock:
        if reply.get("type", "").endswith("_ok"):
            result.ok_latencies.append(latency)
            if check is not None and not check(i, reply):
                result.wrong_results += 1
        else:
            name = (reply.get("error") or {}).get("name", "?")
            result.error_latencies[str(name)].append(latency)


def closed_loop(addr: tuple[str, int], make_frame: Callable[[int], dict], *, clients: int,
                duration: float, timeout: float = 15.0, check: Check | None = None,
                start_index: int = 0) -> LoadResult:
    """`clients` threads, each on its own persistent connection, send tasks back to back
    for `duration` seconds. Throughput = ok / elapsed."""
    result = LoadResult()
    lock = threading.Lock()
    counter = iter(range(start_index, start_index + 10**9))
    stop_at = time.monotonic() + duration

    def client() -> None:
        conn = None
        try:
            while time.monotonic() < stop_at:
                with lock:
                    i = next(counter)
                    result.sent += 1
                frame = make_frame(i)
                try:
                    if conn is None:
                        conn = Connection(*addr, timeout=timeout)
                    t0 = time.perf_counter()
                    reply = conn.request(frame, timeout=timeout)
                    latency = time.perf_counter() - t0
                except (ClientError, OSError):
                    with lock:
                        result.transport_errors += 1
                    if conn is not None:
                        conn.close()
                        conn = None
                    continue
                _record(result, lock, i, reply, latency, check)
        finally:
            if conn is not None:
                conn.close()

    t_start = time.monotonic()
    threads = [threading.Thread(target=client, daemon=True, name=f"bench-client-{k}")
               for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + timeout + 5)
    result.elapsed = time.monotonic() - t_start
    return result


def open_loop(addr: tuple[str, int], make_frame: Callable[[int], dict], *, rate: float,
              duration: float, senders: int, timeout: float = 15.0, check: Check | None = None,
              start_index: int = 0) -> LoadResult:
    """Arrivals every 1/rate seconds for `duration`; `senders` threads on their own
    persistent connections take the next arrival, wait for its time and send it. A send
    more than 5 ms behind its scheduled time is counted in `late_sends` (too few senders)."""
    result = LoadResult()
    lock = threading.Lock()
    total = max(1, int(rate * duration))
    t0 = time.monotonic() + 0.05
    next_k = [0]

    def sender() -> None:
        conn = None
        try:
            while True:
                with lock:
                    k = next_k[0]
                    if k >= total:
                        return
                    next_k[0] += 1
                    result.sent += 1
                due = t0 + k / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -0.005:
                    with lock:
                        result.late_sends += 1
                frame = make_frame(start_index + k)
                try:
                    if conn is None:
                        conn = Connection(*addr, timeout=timeout)
                    s = time.perf_counter()
                    reply = conn.request(frame, timeout=timeout)
                    latency = time.perf_counter() - s
                except (ClientError, OSError):
                    with lock:
                        result.transport_errors += 1
                    if conn is not None:
                        conn.close()
                        conn = None
                    continue
                _record(result, lock, start_index + k, reply, latency, check)
        finally:
            if conn is not None:
                conn.close()

    threads = [threading.Thread(target=sender, daemon=True, name=f"bench-sender-{k}")
               for k in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + timeout + 5)
    result.elapsed = time.monotonic() - t0
    return result
