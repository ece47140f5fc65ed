"""The fault proxy passes a peer's reset or close on promptly (H12 item b).

Why it matters: checks time retries and backoff gaps through the proxy. If a reset from
the server reached the client only after the proxy's socket timeout (250 ms), an
orchestrator without any backoff would still show 250 ms gaps and pass. The bound here
(50 ms, on loopback) is far below that timeout and far above scheduling noise.
"""
from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from graders.faults.proxy import FaultProxy, ResetPeer

BOUND_S = 0.050
ROUNDS = 5


class _Server:
    """Accepts connections; on the first bytes of each, resets or closes it (mode), or
    records how the client's side ended (mode 'observe')."""

    def __init__(self, mode: str):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.address = self.sock.getsockname()
        self.ended: list[tuple[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket):
        c.settimeout(3.0)
        with c:
            try:
                c.recv(100)
            except OSError:
                return
            if self.mode == "reset":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif self.mode == "observe":
                try:
                    data = c.recv(100)
                    self.ended.append(("eof" if not data else "data", time.monotonic()))
                except ConnectionResetError:
                    self.ended.append(("reset", time.monotonic()))
                except OSError as exc:
                    self.ended.append((type(exc).__name__, time.monotonic()))

    def close(self):
        self._stop.set()
        self.sock.close()
        self._thread.join(2.0)


def _client_end(proxy: FaultProxy) -> tuple[str, float]:
    """Connect through the proxy, send one line, return how and how fast the
    connection ended as seen by the client."""
    with socket.create_connection(proxy.address, timeout=3.0) as c:
        time.sleep(0.05)               # let the proxy connect upstream and start its threads
        t0 = time.monotonic()
        c.sendall(b'{"v":1}\n')
        try:
            data = c.recv(100)
            how = "eof" if not data else f"data {data!r}"
        except ConnectionResetError:
            how = "reset"
        return how, time.monotonic() - t0


@pytest.mark.parametrize("mode,expected", [("reset", "reset"), ("close", "eof")])
def test_server_reset_or_close_reaches_the_client_promptly(mode, expected):
    server = _Server(mode)
    proxy = FaultProxy("prop", server.address, seed=1).start()
    try:
        results = [_client_end(proxy) for _ in range(ROUNDS)]
    finally:
        proxy.close()
        server.close()
    assert all(how == expected for how, _ in results), results
    worst = max(dt for _, dt in results)
    assert worst < BOUND_S, f"{mode} took {worst * 1000:.1f} ms through the proxy: {results}"


def test_client_reset_reaches_the_server_promptly():
    server = _Server("observe")
    proxy = FaultProxy("prop", server.address, seed=2).start()
    delays = []
    try:
        for i in range(ROUNDS):
            c = socket.create_connection(proxy.address, timeout=3.0)
            c.sendall(b"x\n")
            time.sleep(0.05)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            t0 = time.monotonic()
            c.close()
            deadline = time.monotonic() + 2.0
            while len(server.ended) <= i and time.monotonic() < deadline:
                time.sleep(0.001)
            assert len(server.ended) > i, "the server never saw the client go away"
            how, at = server.ended[i]
            assert how == "reset", server.ended
            delays.append(at - t0)
    finally:
        proxy.close()
        server.close()
    assert max(delays) < BOUND_S, [round(d * 1000, 1) for d in delays]


def test_reset_peer_toxic_resets_the_client_promptly():
    server = _Server("observe")
    proxy = FaultProxy("prop", server.address, seed=3).start()
    try:
        with socket.create_connection(proxy.address, timeout=3.0) as c:
            time.sleep(0.05)
            t0 = time.monotonic()
            proxy.add(ResetPeer(timeout_ms=0))
            try:
                data = c.recv(100)
                how = "eof" if not data else "data"
            except ConnectionResetError:
                how = "reset"
            dt = time.monotonic() - t0
    finally:
        proxy.close()
        server.close()
    assert how == "reset"
    # the writer notices timer toxics on its 20 ms tick; the reset itself must not add
    # the socket timeout on top of that
    assert dt < BOUND_S + 0.020, f"{dt * 1000:.1f} ms"
