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
import json
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from graders.client import ClientError, Connection, encode

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
    """Arrivals every 1/rate seconds for `duration`, each sent on an idle one of up to
    `senders` persistent connections; a send more than 5 ms behind its scheduled time (no
    idle connection, or the loop itself late) is counted in `late_sends`.

    Why one thread and pre-encoded frames: the generator shares the machine with the
    system it overloads, so it must cost as little CPU as possible and add no latency of
    its own. Frames are encoded before the clock starts; one selector loop sends at the
    scheduled times and timestamps each reply when its last byte arrives; replies are
    decoded and checked only after the run. (Thirty-two client threads serialising and
    parsing JSON under one GIL measured their own scheduling as much as the server's.)"""
    total = max(1, int(rate * duration))
    frames = [encode(make_frame(start_index + k)) for k in range(total)]
    result = LoadResult()
    sel = selectors.DefaultSelector()
    idle: list[socket.socket] = []
    opened = 0
    # socket -> [k, sent_at, buffer]
    inflight: dict[socket.socket, list] = {}
    replies: list[tuple[int, float, bytes]] = []

    def close(sock: socket.socket) -> None:
        try:
            sel.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()

    def connection() -> socket.socket | None:
        nonlocal opened
        if idle:
            return idle.pop()
        if opened >= senders:
            return None
        try:
            sock = socket.create_connection(addr, timeout=min(timeout, 5.0))
        except OSError:
            result.transport_errors += 1
            return None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        opened += 1
        return sock

    def lost(sock: socket.socket) -> None:
        nonlocal opened
        inflight.pop(sock, None)
        close(sock)
        opened -= 1
        result.transport_errors += 1

    t0 = time.monotonic() + 0.05
    k = 0
    end_by = t0 + duration + timeout
    while (k < total or inflight) and time.monotonic() < end_by:
        now = time.monotonic()
        starved = False
        while k < total and t0 + k / rate <= now:
            sock = connection()
            if sock is None:
                starved = True   # every connection busy: this arrival waits for a reply
                break
            if now - (t0 + k / rate) > 0.005:
                result.late_sends += 1
            try:
                sock.sendall(frames[k])   # a few KB on loopback: never blocks for long
            except (BlockingIOError, OSError):
                lost(sock)
                k += 1
                result.sent += 1
                continue
            inflight[sock] = [k, time.perf_counter(), bytearray()]
            result.sent += 1
            k += 1
            now = time.monotonic()
        wait = (t0 + k / rate - time.monotonic()) if k < total and not starved else 0.05
        for key, _ in sel.select(timeout=max(0.0, min(wait, 0.05))):
            sock = key.fileobj
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            entry = inflight.get(sock)
            if not chunk:
                if entry is not None:
                    lost(sock)
                else:
                    close(sock)
                    if sock in idle:
                        idle.remove(sock)
                    opened -= 1
                continue
            if entry is None:
                continue    # an unsolicited frame (e.g. a busy notice before a close)
            entry[2] += chunk
            line_end = entry[2].find(b"\n")
            if line_end >= 0:
                replies.append((start_index + entry[0], time.perf_counter() - entry[1],
                                bytes(entry[2][:line_end])))
                del inflight[sock]
                idle.append(sock)
        stale = [s for s, e in inflight.items() if time.perf_counter() - e[1] > timeout]
        for sock in stale:
            lost(sock)
    result.late_sends += total - k          # arrivals never sent (the run ran out of time)
    for sock in list(inflight):
        lost(sock)
    for sock in idle:
        close(sock)
    sel.close()
    result.elapsed = time.monotonic() - t0
    lock = threading.Lock()
    for i, latency, raw in replies:
        try:
            reply = json.loads(raw)
        except ValueError:
            result.transport_errors += 1
            continue
        if not isinstance(reply, dict):
            result.transport_errors += 1
            continue
        _record(result, lock, i, reply, latency, check)
    return result
