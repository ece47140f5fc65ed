"""FaultProxy: each toxic's observable effect against a tiny NDJSON echo server."""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from graders.client import ConnectionClosed, ClientTimeout, Connection
from graders.faults.proxy import (Bandwidth, Corrupt, DropReply, Duplicate, FaultProxy, LimitData,
                                  Latency, Partition, ResetPeer, SlowClose, Slicer, Timeout)

pytestmark = pytest.mark.timeout(60)


class EchoServer:
    """Replies {"echo": <request>, "n": <times this msg_id was seen>} to each JSON line."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.address = self.sock.getsockname()
        self.seen: dict = {}
        self.lines: list[bytes] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(10)
        buf = b""
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    with self.lock:
                        self.lines.append(line)
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        conn.sendall(b'{"error":"bad"}\n')
                        continue
                    with self.lock:
                        key = obj.get("id")
                        self.seen[key] = self.seen.get(key, 0) + 1
                        n = self.seen[key]
                    reply = {"echo": obj, "n": n}
                    if "msg_id" in obj:
                        reply["in_reply_to"] = obj["msg_id"]
                    conn.sendall(json.dumps(reply).encode() + b"\n")

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.fixture
def echo():
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxy(echo):
    p = FaultProxy("test", echo.address, seed=7).start()
    yield p
    p.close()


def rtt(conn, obj, timeout=5.0):
    t0 = time.monotonic()
    reply = conn.request(obj, timeout=timeout)
    return reply, time.monotonic() - t0


def test_passthrough_and_recording(proxy, echo):
    with Connection(*proxy.address) as c:
        reply, _ = rtt(c, {"id": "a"})
        assert reply == {"echo": {"id": "a"}, "n": 1}
        c.send_raw(b"not json\n")
        assert c.recv() == {"error": "bad"}
    ups = proxy.wait_for(lambda ev: [e for e in ev if e.kind == "frame" and e.direction == "upstream"]
                         if len([e for e in ev if e.kind == "frame"]) >= 4 else None, 3)
    assert [e.frame for e in ups] == [{"id": "a"}, None]
    assert ups[1].raw == b"not json" and ups[1].size == 8
    downs = proxy.frames("downstream")
    assert downs[0].frame == {"echo": {"id": "a"}, "n": 1}
    assert ups[0].t <= downs[0].t
    assert proxy.connections_opened == 1
    assert any(e.kind == "open" for e in proxy.events)


def test_latency_adds_delay(proxy):
    with Connection(*proxy.address) as c:
        _, base = rtt(c, {"id": 1})
        tid = proxy.add(Latency(latency_ms=150, stream="downstream"))
        _, slow = rtt(c, {"id": 2})
        proxy.add(Latency(latency_ms=100, stream="upstream"))
        _, slower = rtt(c, {"id": 3})
        proxy.remove(tid)
        proxy.clear()
        _, fast = rtt(c, {"id": 4})
    assert 0.14 <= slow <= 0.14 + 0.3 + base
    assert 0.24 <= slower <= 0.24 + 0.3 + base
    assert fast < 0.1


def test_latency_jitter_within_bounds(proxy):
    proxy.add(Latency(latency_ms=100, jitter_ms=50))
    with Connection(*proxy.address) as c:
        times = [rtt(c, {"id": i})[1] for i in range(5)]
    assert all(0.045 <= t <= 0.4 for t in times), times


def test_timeout_blackholes_then_closes(proxy):
    proxy.add(Timeout(timeout_ms=300, stream="upstream"))
    with Connection(*proxy.address) as c:
        c.send({"id": "x"})
        t0 = time.monotonic()
        with pytest.raises(ConnectionClosed):
            c.recv(timeout=3)
        assert 0.25 <= time.monotonic() - t0 <= 1.5
    assert any(e.kind == "drop" for e in proxy.events)


def test_timeout_zero_never_closes(proxy):
    proxy.add(Timeout(timeout_ms=0))
    with Connection(*proxy.address) as c:
        c.send({"id": "x"})
        with pytest.raises(ClientTimeout):
            c.recv(timeout=0.5)


def test_reset_peer_gives_econnreset(proxy):
    with Connection(*proxy.address) as c:
        rtt(c, {"id": 1})
        proxy.add(ResetPeer(timeout_ms=100))
        time.sleep(0.3)
        with pytest.raises(ConnectionClosed) as info:
            c.send({"id": 2})
            c.recv(timeout=3)
        assert info.value.reset
    proxy.clear()
    proxy.add(ResetPeer())              # timeout 0: new connections are reset at once
    raw = socket.create_connection(proxy.address, timeout=3)
    time.sleep(0.2)
    with pytest.raises(ConnectionResetError):
        raw.recv(100)
    raw.close()


def test_limit_data_closes_after_n_bytes(proxy):
    proxy.add(LimitData(bytes=30, stream="downstream"))
    raw = socket.create_connection(proxy.address, timeout=3)
    raw.sendall(b'{"id":"aaaaaaaaaa"}\n{"id":"b"}\n')
    got = b""
    while True:
        chunk = raw.recv(1000)
        if not chunk:
            break
        got += chunk
    raw.close()
    assert len(got) == 30
    assert got == b'{"echo": {"id": "aaaaaaaaaa"}, "n": 1}\n'[:30]
    assert any(e.kind == "limit" for e in proxy.events)


def test_slicer_splits_but_content_intact(proxy, echo):
    proxy.add(Slicer(average_size=5, size_variation=2, delay_us=2000, stream="upstream"))
    payload = {"id": "slice", "data": "x" * 200}
    with Connection(*proxy.address) as c:
        reply, elapsed = rtt(c, payload)
    assert reply["echo"] == payload
    assert elapsed >= 0.05   # ~40 pieces, 2 ms apart
    assert echo.lines[-1] == json.dumps(payload, separators=(",", ":")).encode()


def test_bandwidth_limits_rate(proxy):
    proxy.add(Bandwidth(rate_kb_s=20, stream="upstream"))
    payload = {"id": "bw", "data": "y" * 10_000}
    with Connection(*proxy.address) as c:
        reply, elapsed = rtt(c, payload)
    assert reply["echo"] == payload
    assert 0.35 <= elapsed <= 2.5   # ~10 KB at 20 KB/s = 0.5 s


def test_slow_close_delays_close(proxy):
    proxy.add(SlowClose(delay_ms=400, stream="downstream"))
    raw = socket.create_connection(proxy.address, timeout=3)
    raw.sendall(b'{"id":1}\n')
    assert raw.recv(1000).endswith(b"\n")
    raw.shutdown(socket.SHUT_WR)      # the echo server closes at EOF; the proxy delays that
    t0 = time.monotonic()
    assert raw.recv(100) == b""
    assert time.monotonic() - t0 >= 0.35
    raw.close()


def test_drop_reply_delivers_request_but_client_sees_close(proxy, echo):
    proxy.add(DropReply())
    with Connection(*proxy.address) as c:
        c.send({"id": "dropped"})
        with pytest.raises(ConnectionClosed):
            c.recv(timeout=3)
    assert echo.seen.get("dropped") == 1
    drops = [e for e in proxy.events if e.kind == "drop"]
    assert drops and drops[0].frame["echo"] == {"id": "dropped"}


def test_duplicate_delivers_twice_and_swallows_extra_reply(proxy, echo):
    proxy.add(Duplicate())
    with Connection(*proxy.address) as c:
        r1, _ = rtt(c, {"id": "d1"})
        r2, _ = rtt(c, {"id": "d2"})
        with pytest.raises(ClientTimeout):
            c.recv(timeout=0.3)
    assert r1 == {"echo": {"id": "d1"}, "n": 1} and r2 == {"echo": {"id": "d2"}, "n": 1}
    assert echo.seen["d1"] == 2 and echo.seen["d2"] == 2
    assert len([e for e in proxy.events if e.kind == "duplicate"]) == 2


def test_partition_is_one_way_and_keeps_connection(proxy, echo):
    tid = proxy.add(Partition(stream="downstream"))
    with Connection(*proxy.address) as c:
        c.send({"id": "p"})
        with pytest.raises(ClientTimeout):
            c.recv(timeout=0.5)
        assert echo.seen.get("p") == 1      # the request went through
        proxy.remove(tid)
        reply, _ = rtt(c, {"id": "q"})      # same connection still works
        assert reply["echo"] == {"id": "q"}
    proxy.add(Partition())                  # default: upstream
    with Connection(*proxy.address) as c:
        c.send({"id": "never"})
        with pytest.raises(ClientTimeout):
            c.recv(timeout=0.4)
    assert "never" not in echo.seen


def test_corrupt_flips_a_byte(proxy):
    proxy.add(Corrupt(probability=1.0, stream="downstream"))
    raw = socket.create_connection(proxy.address, timeout=3)
    raw.sendall(b'{"id":"c"}\n')
    got = b""
    while not got.endswith(b"\n"):
        got += raw.recv(1000)
    raw.close()
    clean = b'{"echo": {"id": "c"}, "n": 1}\n'
    assert len(got) == len(clean) and got != clean
    assert sum(a != b for a, b in zip(got, clean)) == 1


def test_down_refuses_and_up_again(proxy):
    proxy.set_down(True)
    with pytest.raises(OSError):
        socket.create_connection(proxy.address, timeout=1).close()
    proxy.set_down(False)
    with Connection(*proxy.address) as c:
        assert rtt(c, {"id": "up"})[0]["echo"] == {"id": "up"}


def test_down_closes_open_connections(proxy):
    with Connection(*proxy.address) as c:
        rtt(c, {"id": 1})
        proxy.set_down(True)
        assert c.wait_closed(2.0)
    proxy.set_down(False)


def test_refused_upstream_is_recorded(echo):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    with FaultProxy("dead", ("127.0.0.1", port)) as p:
        with Connection(*p.address) as c:
            # The proxy resets the client as soon as the upstream refuses, which can land
            # before our send completes: either way the client sees the connection die.
            with pytest.raises((ConnectionClosed, OSError)):
                c.send({"id": 1})
                c.recv(timeout=3)
        assert p.wait_for(lambda ev: any(e.kind == "refused" for e in ev), 2)


def _toxicity_pattern(echo, seed):
    outcomes = []
    with FaultProxy("tox", echo.address, seed=seed) as p:
        p.add(Partition(toxicity=0.5))
        for i in range(12):
            with Connection(*p.address) as c:
                c.send({"id": f"t{seed}-{i}"})
                try:
                    c.recv(timeout=0.25)
                    outcomes.append(1)
                except ClientTimeout:
                    outcomes.append(0)
    return outcomes


def test_toxicity_is_reproducible_with_seed(echo):
    a = _toxicity_pattern(echo, 42)
    b = _toxicity_pattern(echo, 42)
    print("toxicity pattern seed=42:", a)
    assert a == b
    assert 0 < sum(a) < len(a)       # a genuine mix at toxicity 0.5


def test_toxicity_zero_never_applies(proxy):
    proxy.add(Partition(toxicity=0.0))
    with Connection(*proxy.address) as c:
        assert rtt(c, {"id": "z"})[0]["echo"] == {"id": "z"}


def test_frames_split_across_chunks_are_recorded_whole(proxy):
    raw = socket.create_connection(proxy.address, timeout=3)
    raw.sendall(b'{"id":')
    time.sleep(0.1)
    raw.sendall(b'"split"}\r\n\n')
    got = b""
    while not got.endswith(b"\n"):
        got += raw.recv(1000)
    raw.close()
    ups = proxy.wait_for(lambda ev: [e for e in ev if e.kind == "frame" and e.direction == "upstream"], 2)
    assert [e.frame for e in ups] == [{"id": "split"}]


def test_close_is_bounded_with_open_connections(echo):
    p = FaultProxy("many", echo.address).start()
    conns = [Connection(*p.address) for _ in range(10)]
    for c in conns:
        c.request({"id": "m"})
    t0 = time.monotonic()
    p.close()
    assert time.monotonic() - t0 < 5
    for c in conns:
        assert c.wait_closed(2.0)
        c.close()


def test_drop_reply_and_duplicate_match_a_request_type(proxy, echo):
    proxy.add(DropReply(match="work"))
    with Connection(*proxy.address) as c:
        assert rtt(c, {"id": "h1", "msg_id": "m1", "type": "hello"})[0]["n"] == 1
        c.send({"id": "w1", "msg_id": "m2", "type": "work"})
        with pytest.raises(ConnectionClosed):
            c.recv(timeout=3)
    proxy.clear()
    proxy.add(Duplicate(match="work"))
    with Connection(*proxy.address) as c:
        rtt(c, {"id": "h2", "msg_id": "m3", "type": "hello"})
        rtt(c, {"id": "w2", "msg_id": "m4", "type": "work"})
        assert rtt(c, {"id": "h3", "msg_id": "m5", "type": "hello"})[0]["echo"]["id"] == "h3"
    assert echo.seen["h2"] == 1 and echo.seen["w2"] == 2 and echo.seen["h3"] == 1
