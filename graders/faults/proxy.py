"""A frame-aware TCP fault proxy, in Toxiproxy's vocabulary, run inside the grader.

Why our own proxy: checks need faults that are reproducible (every random choice comes
from the proxy's seed), observable (every NDJSON frame crossing the proxy is recorded with
a monotonic timestamp, which is how retries, backoff gaps and duplicate executions are
measured) and protocol-aware (dropping exactly the reply of a request, duplicating a
request) — beyond what a byte-level proxy can do.

Model: each accepted client connection gets one upstream connection ("link"). Each
direction has a reader thread (records frames, queues chunks with their arrival time) and
a writer thread (applies the active toxics in order, then writes). "upstream" is
client -> server, "downstream" server -> client. A toxic applies to a connection with
probability `toxicity`, decided once per (connection, toxic) from the seed, as in
Toxiproxy; toxics added or removed while a connection is open take effect on it at once.

Toxics and their default `stream` (Toxiproxy's default is downstream):
  Latency, Bandwidth, SlowClose, Timeout, ResetPeer, Slicer, LimitData, Corrupt: downstream
  Partition: upstream;  DropReply acts on replies and Duplicate on requests (stream unused).
"""
from __future__ import annotations

import collections
import itertools
import queue
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from graders.decode import try_decode_object

__all__ = ["FaultProxy", "ProxyEvent", "Toxic", "Latency", "Bandwidth", "SlowClose", "Timeout",
           "ResetPeer", "Slicer", "LimitData", "DropReply", "Duplicate", "Corrupt", "Partition"]

UPSTREAM, DOWNSTREAM = "upstream", "downstream"
_TICK = 0.02                   # writer wake-up period: resolution of timer toxics
_SOCK_TIMEOUT = 0.25           # every socket op is bounded; loops re-check `closed`
_MAX_LINE = 2 * 1024 * 1024    # frame-splitting buffers are capped
_MAX_EVENTS = 200_000
_EOF, _RESET = object(), object()


# --- toxics ----------------------------------------------------------------------------
@dataclass(kw_only=True)
class Toxic:
    stream: str = DOWNSTREAM
    toxicity: float = 1.0

    def __post_init__(self) -> None:
        if self.stream not in (UPSTREAM, DOWNSTREAM):
            raise ValueError(f"stream must be {UPSTREAM!r} or {DOWNSTREAM!r}")
        if not 0.0 <= self.toxicity <= 1.0:
            raise ValueError("toxicity must be within [0, 1]")

    @property
    def kind(self) -> str:
        return type(self).__name__.lower()


@dataclass
class Latency(Toxic):
    latency_ms: int = 0
    jitter_ms: int = 0


@dataclass
class Bandwidth(Toxic):
    rate_kb_s: float = 1.0


@dataclass
class SlowClose(Toxic):
    delay_ms: int = 0


@dataclass
class Timeout(Toxic):
    """Blackhole: data is dropped; the connection is closed after timeout_ms (0 = never)."""
    timeout_ms: int = 0


@dataclass
class ResetPeer(Toxic):
    timeout_ms: int = 0


@dataclass
class Slicer(Toxic):
    average_size: int = 1
    size_variation: int = 0
    delay_us: int = 0


@dataclass
class LimitData(Toxic):
    bytes: int = 0


@dataclass
class DropReply(Toxic):
    """Deliver the request; swallow the next reply frame and close the client's connection.
    With `match` (a request type, e.g. "analyze"), only a reply whose `in_reply_to` is the
    msg_id of such a request on this connection is dropped; other replies pass."""
    match: str | None = None
    stream: str = field(default=DOWNSTREAM, kw_only=True)


@dataclass
class Duplicate(Toxic):
    """Deliver each request frame twice; swallow the reply to the extra copy.
    With `match` (a request type), only requests of that type are duplicated."""
    match: str | None = None
    stream: str = field(default=UPSTREAM, kw_only=True)


@dataclass
class Corrupt(Toxic):
    """Each frame in `stream` is corrupted with `probability`: one byte is flipped."""
    probability: float = 1.0


@dataclass
class Partition(Toxic):
    """One-way partition: drop everything in `stream`, keep the connection open."""
    stream: str = field(default=UPSTREAM, kw_only=True)


@dataclass(frozen=True)
class ProxyEvent:
    """kind: open, close, frame, drop, duplicate, corrupt, reset, refused, limit, timeout,
    oversize. `frame` is the decoded object for frames that are JSON objects; `raw` keeps the
    first 4 KiB of a frame line that is not. `direction` is meaningful for frame events."""
    t: float
    conn_id: int
    kind: str
    direction: str
    frame: dict | None = None
    size: int = 0
    raw: bytes | None = None


def _decode(line: bytes) -> tuple[dict | None, bytes | None]:
    """A recorded frame through the one bounded decoder (graders/decode.py)."""
    obj = try_decode_object(line, max_bytes=_MAX_LINE)
    return (obj, None) if obj is not None else (None, line[:4096])


# --- one connection --------------------------------------------------------------------
class _Pipe:
    """One direction of a link: reader thread -> queue -> writer thread."""

    def __init__(self, link: "_Link", direction: str, src: socket.socket, dst: socket.socket):
        self.link, self.direction, self.src, self.dst = link, direction, src, dst
        self.q: queue.Queue = queue.Queue()
        self.rng = random.Random(f"{link.proxy.seed}:{link.id}:{direction}")
        self.passed = 0                  # bytes written (for LimitData)
        self.rec_buf = bytearray()
        self.rec_skipping = False
        self.wbuf = bytearray()
        self.threads = [threading.Thread(target=self._read, daemon=True,
                                         name=f"proxy-{link.proxy.name}-{link.id}-{direction}-r"),
                        threading.Thread(target=self._write, daemon=True,
                                         name=f"proxy-{link.proxy.name}-{link.id}-{direction}-w")]

    # reader side
    def _record(self, data: bytes) -> None:
        self.rec_buf += data
        while True:
            nl = self.rec_buf.find(b"\n")
            if nl < 0:
                break
            line = bytes(self.rec_buf[:nl]).rstrip(b"\r")
            del self.rec_buf[: nl + 1]
            if self.rec_skipping:
                self.rec_skipping = False
                continue
            if line:
                frame, raw = _decode(line)
                if frame is not None and self.direction == UPSTREAM:
                    self.link.note_request(frame)
                self.link.event("frame", self.direction, frame, len(line), raw)
        if len(self.rec_buf) > _MAX_LINE:
            if not self.rec_skipping:
                self.link.event("oversize", self.direction, None, len(self.rec_buf))
            self.rec_skipping = True
            self.rec_buf.clear()

    def _read(self) -> None:
        link = self.link
        while not link.closed.is_set():
            try:
                data = self.src.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                if not link.closed.is_set():
                    self.q.put(_RESET)
                return
            except OSError:
                self.q.put(_EOF)
                return
            if not data:
                self.q.put(_EOF)
                return
            self._record(data)
            self.q.put((time.monotonic(), data))

    # writer side
    def _send(self, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            if self.link.closed.is_set():
                return False
            try:
                n = self.dst.send(view)
            except socket.timeout:
                continue
            except OSError:
                self.link.close("send failed")
                return False
            view = view[n:]
        return True

    def _sleep_until(self, target: float) -> bool:
        while True:
            left = target - time.monotonic()
            if left <= 0:
                return True
            if self.link.closed.wait(min(left, 0.05)):
                return False

    def _emit(self, data: bytes, toxics: list[Toxic]) -> bool:
        """Final stage: LimitData, Slicer, Bandwidth, then the socket."""
        limit = next((t for t in toxics if isinstance(t, LimitData)), None)
        cut = False
        if limit is not None and self.passed + len(data) >= limit.bytes:
            data = data[: max(0, limit.bytes - self.passed)]
            cut = True
        pieces = [data]
        slicer = next((t for t in toxics if isinstance(t, Slicer)), None)
        if slicer is not None and data:
            pieces, i = [], 0
            while i < len(data):
                size = max(1, slicer.average_size + self.rng.randint(-slicer.size_variation,
                                                                     slicer.size_variation))
                pieces.append(data[i:i + size])
                i += size
        bandwidth = next((t for t in toxics if isinstance(t, Bandwidth)), None)
        for k, piece in enumerate(pieces):
            if bandwidth is not None:
                step = max(1, int(bandwidth.rate_kb_s * 1024 / 20))
                for j in range(0, len(piece), step):
                    part = piece[j:j + step]
                    t0 = time.monotonic()
                    if not self._send(part):
                        return False
                    if not self._sleep_until(t0 + len(part) / (bandwidth.rate_kb_s * 1024)):
                        return False
            elif not self._send(piece):
                return False
            self.passed += len(piece)
            if slicer is not None and k < len(pieces) - 1 and slicer.delay_us:
                if not self._sleep_until(time.monotonic() + slicer.delay_us / 1e6):
                    return False
        if cut:
            self.link.event("limit", self.direction, None, self.passed)
            self.link.close(f"limit_data reached in {self.direction}")
            return False
        return True

    def _frame_mode(self, toxics: list[Toxic]) -> bool:
        kinds = {type(t) for t in toxics}
        if Corrupt in kinds:
            return True
        if self.direction == UPSTREAM:
            return Duplicate in self.link.all_active() or bool(self.link.reply_plan)
        return DropReply in self.link.all_active() or bool(self.link.reply_plan)

    def _corrupt(self, line: bytes) -> bytes:
        body = bytearray(line)
        pos = self.rng.randrange(len(body))
        while True:
            new = body[pos] ^ self.rng.randrange(1, 256)
            if new not in (0x0A, 0x0D):
                break
        body[pos] = new
        return bytes(body)

    def _frames_out(self, toxics: list[Toxic]) -> bytes | None:
        """Apply frame toxics to the complete lines in wbuf; None means the link is closed."""
        link = self.link
        active = link.all_active()
        drop_reply = link.active_instance(DropReply)
        duplicate = link.active_instance(Duplicate)
        corrupt = next((t for t in toxics if isinstance(t, Corrupt)), None)
        out = bytearray()
        while True:
            nl = self.wbuf.find(b"\n")
            if nl < 0:
                break
            line = bytes(self.wbuf[: nl + 1])
            del self.wbuf[: nl + 1]
            body = line.rstrip(b"\r\n")
            if not body:
                out += line
                continue
            if self.direction == DOWNSTREAM:
                frame, raw = _decode(body) if drop_reply is not None else (None, None)
                if drop_reply is not None and (drop_reply.match is None or (
                        frame is not None and link.request_type(frame.get("in_reply_to"))
                        == drop_reply.match)):
                    link.event("drop", self.direction, frame, len(body), raw)
                    if out:
                        self._emit(bytes(out), toxics)
                    link.close("drop_reply")
                    return None
                plan = link.reply_plan.popleft() if link.reply_plan else "pass"
                if plan == "swallow":
                    frame, raw = _decode(body)
                    link.event("drop", self.direction, frame, len(body), raw)
                    continue
            if corrupt is not None and self.rng.random() < corrupt.probability:
                link.event("corrupt", self.direction, None, len(body))
                line = self._corrupt(body) + line[len(body):]
            out += line
            if self.direction == UPSTREAM and (duplicate is not None or link.reply_plan):
                link.reply_plan.append("pass")
                frame, raw = _decode(body)
                if duplicate is not None and (duplicate.match is None or (
                        frame is not None and frame.get("type") == duplicate.match)):
                    link.reply_plan.append("swallow")
                    link.event("duplicate", self.direction, frame, len(body), raw)
                    out += line
        if len(self.wbuf) > _MAX_LINE:
            out += self.wbuf
            self.wbuf.clear()
        return bytes(out)

    def _write(self) -> None:
        link = self.link
        while not link.closed.is_set():
            try:
                item = self.q.get(timeout=_TICK)
            except queue.Empty:
                item = None
            toxics = link.active(self.direction)
            now = time.monotonic()
            for toxic, since in link.timers(self.direction):
                if isinstance(toxic, ResetPeer) and now - since >= toxic.timeout_ms / 1000:
                    link.reset("reset_peer")
                    return
                if (isinstance(toxic, Timeout) and toxic.timeout_ms > 0
                        and now - since >= toxic.timeout_ms / 1000):
                    link.event("timeout", self.direction, None, 0)
                    link.close("timeout toxic")
                    return
            if item is None:
                continue
            if item is _RESET:
                link.reset(f"{self.direction} peer reset")
                return
            if item is _EOF:
                if self.wbuf and not self._emit(bytes(self.wbuf), toxics):
                    return
                self.wbuf.clear()
                slow = next((t for t in toxics if isinstance(t, SlowClose)), None)
                if slow is not None and not self._sleep_until(time.monotonic() + slow.delay_ms / 1000):
                    return
                if self.direction == UPSTREAM:
                    try:
                        self.dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                else:
                    link.close("server closed")
                return
            arrived, data = item
            if any(isinstance(t, (Timeout, Partition)) for t in toxics):
                link.event("drop", self.direction, None, len(data))
                continue
            lat = next((t for t in toxics if isinstance(t, Latency)), None)
            if lat is not None:
                delay = lat.latency_ms + (self.rng.uniform(-lat.jitter_ms, lat.jitter_ms)
                                          if lat.jitter_ms else 0)
                if not self._sleep_until(arrived + max(0.0, delay) / 1000):
                    return
            if self._frame_mode(toxics):
                self.wbuf += data
                out = self._frames_out(toxics)
                if out is None:
                    return
                data = out
            elif self.wbuf:
                data = bytes(self.wbuf) + data
                self.wbuf.clear()
            if data and not self._emit(data, toxics):
                return


class _Link:
    def __init__(self, proxy: "FaultProxy", conn_id: int, client: socket.socket):
        self.proxy, self.id, self.client = proxy, conn_id, client
        self.server: socket.socket | None = None
        self.closed = threading.Event()
        self.reply_plan: collections.deque[str] = collections.deque()
        self._activation: dict[str, tuple[bool, float]] = {}
        self._requests: dict[str, str] = {}          # msg_id -> request type, upstream
        self._lock = threading.Lock()
        self.pipes: list[_Pipe] = []

    def event(self, kind: str, direction: str, frame: dict | None = None, size: int = 0,
              raw: bytes | None = None) -> None:
        self.proxy._event(ProxyEvent(time.monotonic(), self.id, kind, direction, frame, size, raw))

    def _enabled(self, tid: str, toxic: Toxic) -> tuple[bool, float]:
        with self._lock:
            state = self._activation.get(tid)
            if state is None:
                rng = random.Random(f"{self.proxy.seed}:{self.id}:{tid}")
                state = (rng.random() < toxic.toxicity, time.monotonic())
                self._activation[tid] = state
            return state

    def active(self, direction: str) -> list[Toxic]:
        return [t for tid, t in self.proxy._toxic_items()
                if t.stream == direction and not isinstance(t, (DropReply, Duplicate))
                and self._enabled(tid, t)[0]]

    def note_request(self, frame: dict) -> None:
        msg_id, rtype = frame.get("msg_id"), frame.get("type")
        if isinstance(msg_id, str) and isinstance(rtype, str):
            with self._lock:
                if len(self._requests) > 10_000:
                    self._requests.clear()
                self._requests[msg_id] = rtype

    def request_type(self, msg_id: Any) -> str | None:
        with self._lock:
            return self._requests.get(msg_id) if isinstance(msg_id, str) else None

    def active_instance(self, cls: type) -> Toxic | None:
        for tid, t in self.proxy._toxic_items():
            if isinstance(t, cls) and self._enabled(tid, t)[0]:
                return t
        return None

    def all_active(self) -> set[type]:
        return {type(t) for tid, t in self.proxy._toxic_items() if self._enabled(tid, t)[0]}

    def timers(self, direction: str) -> list[tuple[Toxic, float]]:
        out = []
        for tid, t in self.proxy._toxic_items():
            if t.stream == direction and isinstance(t, (ResetPeer, Timeout)):
                enabled, since = self._enabled(tid, t)
                if enabled:
                    out.append((t, since))
        return out

    def start(self) -> None:
        host, port = self.proxy.upstream
        try:
            if not port:
                raise ConnectionRefusedError("no upstream configured")
            server = socket.create_connection((host, port), timeout=2.0)
        except OSError as exc:
            self.event("refused", UPSTREAM, None, 0, str(exc).encode()[:200])
            self.reset("upstream refused", record=False)
            return
        self.server = server
        for s in (self.client, server):
            s.settimeout(_SOCK_TIMEOUT)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pipes = [_Pipe(self, UPSTREAM, self.client, server),
                      _Pipe(self, DOWNSTREAM, server, self.client)]
        if self.closed.is_set():     # closed (e.g. set_down) while connecting
            server.close()
            return
        for pipe in self.pipes:
            for th in pipe.threads:
                th.start()

    def _socks(self) -> list[socket.socket]:
        return [s for s in (self.client, self.server) if s is not None]

    def close(self, reason: str = "") -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for s in self._socks():
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.event("close", DOWNSTREAM, None, 0, reason.encode() or None)
        self.proxy._forget(self)

    def reset(self, reason: str = "", record: bool = True) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for s in self._socks():
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            # A reader thread blocked in recv() on this socket holds the kernel file open,
            # so close() alone would send the RST only when that recv times out
            # (_SOCK_TIMEOUT later). SHUT_RD wakes the reader at once without sending
            # anything to the peer; the abortive close (linger 0) then goes out promptly.
            try:
                s.shutdown(socket.SHUT_RD)
            except OSError:
                pass
            s.close()
        if record:
            self.event("reset", DOWNSTREAM, None, 0, reason.encode() or None)
        self.proxy._forget(self)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for pipe in self.pipes:
            for th in pipe.threads:
                if th.is_alive():
                    th.join(max(0.0, deadline - time.monotonic()))


# --- the proxy -------------------------------------------------------------------------
class FaultProxy:
    """`FaultProxy(name, upstream=(host, port), seed=123)`; `start()`, then `address`."""

    def __init__(self, name: str, upstream: tuple[str, int], seed: int = 123, *,
                 listen_host: str = "127.0.0.1", listen_port: int = 0):
        self.name = name
        self.upstream = (upstream[0], int(upstream[1]))
        self.seed = seed
        self._listen = (listen_host, listen_port)
        self._toxics: dict[str, Toxic] = {}
        self._tid = itertools.count(1)
        self._lock = threading.Lock()
        self._events: list[ProxyEvent] = []
        self._events_cv = threading.Condition(self._lock)
        self._links: set[_Link] = set()
        self._conn_ids = itertools.count(1)
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._extra_hosts: list[str] = []                 # see listen_also()
        self._extra: list[tuple[socket.socket, threading.Thread]] = []
        self._down = False
        self._closed = False
        self.connections_opened = 0
        self.address: tuple[str, int] | None = None

    # lifecycle
    def start(self) -> "FaultProxy":
        self._bind()
        return self

    def _listen_on(self, addr: tuple[str, int]) -> tuple[socket.socket, threading.Thread]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(256)
        except OSError:
            sock.close()
            raise
        sock.settimeout(0.1)
        thread = threading.Thread(target=self._accept_loop, args=(sock,), daemon=True,
                                  name=f"proxy-{self.name}-accept-{addr[0]}")
        return sock, thread

    def _bind(self) -> None:
        sock, thread = self._listen_on(self.address or self._listen)
        self.address = sock.getsockname()[:2]
        self._listener, self._accept_thread = sock, thread
        extra = []
        try:
            for host in self._extra_hosts:
                extra.append(self._listen_on((host, self.address[1])))
        except OSError:
            for s, _t in extra:
                s.close()
            self._listener = None
            sock.close()
            raise
        self._extra = extra
        thread.start()
        for _s, t in extra:
            t.start()

    def listen_also(self, host: str) -> None:
        """Accept connections on `host` too, at the same port as `address` (which stays
        what grader-side clients use). Why: a service in a container reaches the grader's
        host only at its network's gateway address, and the Docker driver points it at
        `<gateway>:<port of this proxy>`. Kept across set_down/set_up. Bind a specific
        address, never the wildcard: the proxy must not be exposed beyond that network."""
        if host in ("0.0.0.0", "", "::"):
            raise ValueError("a fault proxy never listens on a wildcard address")
        if self.address is None or self._listener is None:
            raise RuntimeError("start() the proxy before listen_also()")
        if host == self.address[0] or host in self._extra_hosts:
            return
        sock, thread = self._listen_on((host, self.address[1]))
        self._extra_hosts.append(host)
        self._extra.append((sock, thread))
        thread.start()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Every (host, port) the proxy accepts on: `address` first."""
        if self.address is None:
            return []
        return [tuple(self.address), *((h, self.address[1]) for h in self._extra_hosts)]

    def _accept_loop(self, sock: socket.socket) -> None:
        while self._listener is sock or any(s is sock for s, _t in self._extra):
            try:
                client, _ = sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.connections_opened += 1
                link = _Link(self, next(self._conn_ids), client)
                self._links.add(link)
            link.event("open", UPSTREAM)
            threading.Thread(target=link.start, daemon=True,
                             name=f"proxy-{self.name}-{link.id}-connect").start()

    def _unbind(self) -> None:
        sock, self._listener = self._listener, None
        extra, self._extra = self._extra, []
        for s in [sock, *(s for s, _t in extra)]:
            if s is not None:
                s.close()
        for t in [self._accept_thread, *(t for _s, t in extra)]:
            if t is not None and t.is_alive():
                t.join(2.0)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._unbind()
        self.close_connections(timeout=3.0)

    def close_connections(self, timeout: float = 3.0) -> None:
        """Close every open connection (clients see EOF)."""
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close("proxy closing connections")
        for link in links:
            link.join(timeout / max(1, len(links)) + 0.5)

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_upstream(self, host: str, port: int) -> None:
        self.upstream = (host, int(port))

    def set_down(self, down: bool) -> None:
        """Down: new connections are refused and open ones closed; up: listen again."""
        if down == self._down:
            return
        self._down = down
        if down:
            self._unbind()
            self.close_connections()
        else:
            self._bind()

    @property
    def down(self) -> bool:
        return self._down

    # toxics
    def add(self, toxic: Toxic) -> str:
        with self._lock:
            tid = f"{toxic.kind}-{next(self._tid)}"
            self._toxics[tid] = toxic
        return tid

    def remove(self, tid: str) -> None:
        with self._lock:
            self._toxics.pop(tid, None)

    def clear(self) -> None:
        with self._lock:
            self._toxics.clear()

    @property
    def toxics(self) -> dict[str, Toxic]:
        with self._lock:
            return dict(self._toxics)

    def _toxic_items(self) -> list[tuple[str, Toxic]]:
        with self._lock:
            return list(self._toxics.items())

    # events
    def _event(self, ev: ProxyEvent) -> None:
        with self._lock:
            if len(self._events) < _MAX_EVENTS:
                self._events.append(ev)
            self._events_cv.notify_all()

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    @property
    def events(self) -> list[ProxyEvent]:
        with self._lock:
            return list(self._events)

    def frames(self, direction: str) -> list[ProxyEvent]:
        return [e for e in self.events if e.kind == "frame" and e.direction == direction]

    def clear_events(self) -> None:
        with self._lock:
            self._events.clear()

    def wait_for(self, predicate: Callable[[list[ProxyEvent]], Any], timeout: float) -> Any:
        """Wait (bounded) until predicate(events) is truthy; returns its last value."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                value = predicate(list(self._events))
                left = deadline - time.monotonic()
                if value or left <= 0:
                    return value
                self._events_cv.wait(min(left, 0.1))

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._links)
