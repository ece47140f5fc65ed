"""The reference orchestrator's readiness (SPEC §13): ready when every agent answered
hello within the last 2 s, probing stale agents on each /readyz.

Why these tests: right after a start under load, /readyz once answered 503 "analyzer: no
hello" although the analyzer was fine — the cached hello was stale and the probe thread
finished just after readiness stopped waiting for it, so the stale cache was reported.
Readiness must judge a stale agent by the probe's own outcome.
"""
from __future__ import annotations

import io
import json
import socket
import threading
import time

import pytest

from reference_impl.memory.store import RecordStore, utc_timestamp
from reference_impl.orchestrator import service as service_mod
from reference_impl.orchestrator.client import AgentClient
from reference_impl.orchestrator.pipeline import Settings
from reference_impl.orchestrator.service import OrchestratorService
from reference_impl.runtime.logs import Logger
from reference_impl.runtime.metrics import Registry

TOKEN = "tok-readiness-test"
AGENTS = ("collector", "analyzer", "reporter")


class HelloAgent:
    """Answers every frame with hello_ok after `delay_s` (or with a v2-only error)."""

    def __init__(self, role: str, delay_s: float = 0.0, v2_only: bool = False):
        self.role, self.delay_s, self.v2_only = role, delay_s, v2_only
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.hellos = 0
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

    def _serve(self, c):
        c.settimeout(2.0)
        with c:
            buf = b""
            while b"\n" not in buf:
                try:
                    data = c.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
            req = json.loads(buf.split(b"\n", 1)[0])
            self.hellos += 1
            if self._stop.wait(self.delay_s):
                return
            if self.v2_only:
                reply = {"v": 1, "type": "error", "in_reply_to": req["msg_id"], "task_id": None,
                         "error": {"code": 22, "name": "unsupported_version", "definite": True,
                                   "retryable": False, "message": "v2 only", "details": {"supported": [2]}}}
            else:
                reply = {"v": 1, "type": "hello_ok", "in_reply_to": req["msg_id"], "task_id": None,
                         "payload": {"version": 1, "role": self.role, "capabilities": [],
                                     "limits": {"max_frame_bytes": 1048576, "max_depth": 32}}}
            try:
                c.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                pass

    def close(self):
        self._stop.set()
        self.sock.close()
        self._thread.join(2.0)


def _service(tmp_path, ports: dict[str, int]) -> OrchestratorService:
    store = RecordStore(tmp_path / "memory", 100)
    store.load()
    clients = {role: AgentClient(role, ("127.0.0.1", port), TOKEN) for role, port in ports.items()}
    return OrchestratorService(
        token=TOKEN, logger=Logger("orchestrator", stream=io.StringIO()), registry=Registry(),
        store=store, routes={"triage": ["collect", "analyze", "report"]}, clients=clients,
        settings=Settings(), deadline_ms=3000, queue_size=4, workers=1, now_iso=utc_timestamp)


@pytest.fixture
def agents():
    made: list[HelloAgent] = []

    def make(**kinds):
        out = {}
        for role in AGENTS:
            a = HelloAgent(role, **kinds.get(role, {}))
            made.append(a)
            out[role] = a
        return out

    yield make
    for a in made:
        a.close()


def test_ready_after_probing_agents_never_contacted(tmp_path, agents):
    ag = agents()
    svc = _service(tmp_path, {r: a.port for r, a in ag.items()})
    assert svc.readiness() == (True, [])
    assert all(a.hellos == 1 for a in ag.values())
    # within the 2 s window the cached hello is enough: no new probe
    assert svc.readiness() == (True, [])
    assert all(a.hellos == 1 for a in ag.values())


def test_a_stale_hello_is_probed_again_not_reported(tmp_path, agents):
    ag = agents()
    svc = _service(tmp_path, {r: a.port for r, a in ag.items()})
    assert svc.readiness()[0]
    for client in svc.clients.values():
        client.last_hello_ok = time.monotonic() - 5.0     # the cache went stale
    assert svc.readiness() == (True, [])
    assert all(a.hellos == 2 for a in ag.values())


def test_a_probe_scheduled_late_is_still_judged_by_its_outcome(tmp_path, agents, monkeypatch):
    """A probe that starts late under load (simulated: 0.35 s before it runs) and then
    completes within its own bound must count: the agent answered hello."""
    ag = agents()
    svc = _service(tmp_path, {r: a.port for r, a in ag.items()})
    assert svc.readiness()[0]
    for client in svc.clients.values():
        client.last_hello_ok = time.monotonic() - 5.0
    slow = svc.clients["analyzer"]
    original = slow.probe

    def late_probe(timeout_s):
        time.sleep(0.35)
        return original(min(timeout_s, 0.6))

    monkeypatch.setattr(slow, "probe", late_probe)
    ag["analyzer"].delay_s = 0.55         # finishes ~0.9 s after readiness started probing
    t0 = time.monotonic()
    ready, reasons = svc.readiness()
    assert (ready, reasons) == (True, []), reasons
    assert time.monotonic() - t0 < service_mod.PROBE_TIMEOUT_S + service_mod.PROBE_JOIN_SLACK_S + 0.2


def test_unready_agents_are_named_with_the_reason(tmp_path, agents):
    ag = agents(analyzer={"delay_s": 1.5}, reporter={"v2_only": True})
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()                                   # nothing listens there: refused
    ports = {"collector": dead_port, "analyzer": ag["analyzer"].port, "reporter": ag["reporter"].port}
    svc = _service(tmp_path, ports)
    t0 = time.monotonic()
    ready, reasons = svc.readiness()
    elapsed = time.monotonic() - t0
    assert not ready
    by_role = {r.split(":", 1)[0]: r for r in reasons}
    assert set(by_role) == {"collector", "analyzer", "reporter"}, reasons
    assert "refused" in by_role["collector"]
    assert "timed out" in by_role["analyzer"]
    assert "unsupported_version" in by_role["reporter"]
    # probes run in parallel, each bounded by PROBE_TIMEOUT_S (SPEC: at most 1 s per agent)
    assert elapsed < service_mod.PROBE_TIMEOUT_S + 0.5
