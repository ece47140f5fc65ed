"""In-process tests of the agent service on the real server runtime (loopback sockets).

An agent is built exactly as main.py builds it (Logger to a buffer, Registry, RecordStore,
ProtocolServer, SidePort), so these tests see replies, logs, metrics and memory files
without starting processes. Also covers the server's connection cap, idle timeout,
drain, the HTTP side port and TLS (certificates made with ``cryptography``).
"""

from __future__ import annotations

import datetime
import io
import json
import socket
import sys
import ssl
import threading
import time
from pathlib import Path

import pytest

from reference_impl.agents.service import AgentService
from reference_impl.main import agent_record_ok
from reference_impl.memory.store import RecordStore
from reference_impl.runtime import tls
from reference_impl.runtime.http import METRICS_CONTENT_TYPE, SidePort
from reference_impl.runtime.logs import Logger
from reference_impl.runtime.metrics import Registry
from reference_impl.runtime.server import ProtocolServer

sys.path.insert(0, str(Path(__file__).resolve().parent))  # refsystem.py sits next to this file
from refsystem import Client, http_get, metric_value  # noqa: E402

TOKEN = "agent-test-token-9f8e7d"
EVENTS = [{"seq": 0, "ts": "2026-11-29T10:00:00Z", "epoch_s": 1795946400, "level": "error",
           "service": "payments", "latency_ms": 120, "message": "card declined"}]


class Agent:
    """One in-process agent with its server and side port; close() is bounded."""

    def __init__(self, tmp: Path, role: str = "collector", *, max_connections: int = 16,
                 idle_timeout_ms: int = 5000, ssl_context=None) -> None:
        self.stream = io.StringIO()
        self.log = Logger(role, stream=self.stream, secrets=(TOKEN,))
        self.registry = Registry()
        holder = {}
        self.store = RecordStore(tmp / role, 100, validate_record=agent_record_ok,
                                 on_corrupt=lambda *a: holder["s"].on_corrupt(*a))
        self.service = AgentService(role, token=TOKEN, logger=self.log, registry=self.registry, store=self.store)
        holder["s"] = self.service
        self.server = ProtocolServer("127.0.0.1", 0, self.service.handle, max_connections=max_connections,
                                     idle_timeout_ms=idle_timeout_ms, ssl_context=ssl_context,
                                     max_frame_bytes=self.service.max_frame_bytes)
        self.service.install_common_metrics(self.store, lambda: self.server.open_connections)
        self.side = SidePort("127.0.0.1", 0, readiness=self.service.readiness, metrics=self.registry.render)
        self.store.load()
        self.server.start()
        self.side.start()
        self.port = self.server.port

    def client(self, timeout: float = 5.0) -> Client:
        return Client(self.port, timeout=timeout)

    def logs(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]

    def close(self) -> None:
        self.server.begin_drain()
        self.server.close()
        self.side.close()


@pytest.fixture
def agent(tmp_path):
    a = Agent(tmp_path)
    yield a
    a.close()


def req(type_, payload, task_id="t-1", msg_id="m-1", token=TOKEN, **extra):
    env = {"v": 1, "type": type_, "msg_id": msg_id, "token": token, "payload": payload}
    if task_id is not None:
        env["task_id"] = task_id
    env.update(extra)
    return env


COLLECT = {"source": "web-1", "records": ["2026-11-29T10:00:00Z ERROR payments 120 card declined", 7]}


def test_hello_negotiation(agent):
    with agent.client() as c:
        r = c.request(req("hello", {"versions": [2, 1], "role": "orchestrator"}, task_id=None))
        assert r["type"] == "hello_ok" and r["in_reply_to"] == "m-1"
        assert r["payload"] == {"version": 1, "role": "collector", "capabilities": ["collect"],
                                "limits": {"max_frame_bytes": 16777216, "max_depth": 32}}
        r = c.request(req("hello", {"versions": [2, 3]}, task_id=None))
        assert r["error"]["code"] == 22 and r["error"]["details"]["supported"] == [1]


def test_execute_replay_conflict_and_durable_record(agent, tmp_path):
    with agent.client() as c:
        first = c.request(req("collect", COLLECT))
        assert first["type"] == "collect_ok" and first["replay"] is False
        assert first["payload"]["counts"] == {"received": 2, "accepted": 1, "rejected": 1}
        # The record is on disk, in the SPEC layout, before the reply was sent.
        rec = json.loads((tmp_path / "collector" / "records" / "t-1.json").read_text())
        assert rec["step"] == "collect" and rec["input"] == COLLECT and rec["output"] == first["payload"]
        assert rec["format"] == 1 and isinstance(rec["seq"], int)
        reordered = {"records": COLLECT["records"], "source": "web-1"}
        again = c.request(req("collect", reordered, msg_id="m-2"))
        assert again["replay"] is True and again["payload"] == first["payload"] and again["in_reply_to"] == "m-2"
        conflict = c.request(req("collect", {**COLLECT, "source": "web-2"}, msg_id="m-3"))
        assert conflict["error"]["code"] == 30 and conflict["error"]["details"]["task_id"] == "t-1"
    text = agent.registry.render()
    assert metric_value(text, "faultdrill_steps_executed_total", step="collect") == 1
    assert metric_value(text, "faultdrill_steps_replayed_total", step="collect") == 1
    assert metric_value(text, "faultdrill_memory_records") == 1
    # A restarted agent (new process state, same directory) replays from memory.
    agent.close()
    again = Agent(tmp_path)
    try:
        with again.client() as c:
            r = c.request(req("collect", COLLECT, msg_id="m-4"))
            assert r["replay"] is True and r["payload"] == first["payload"]
    finally:
        again.close()


def test_concurrent_duplicates_execute_once(agent):
    results = []

    def send(i):
        with agent.client() as c:
            results.append(c.request(req("collect", COLLECT, task_id="dup", msg_id=f"m-{i}")))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(results) == 8 and all(r["type"] == "collect_ok" for r in results)
    assert sum(1 for r in results if r["replay"] is False) == 1
    assert metric_value(agent.registry.render(), "faultdrill_steps_executed_total", step="collect") == 1


def test_errors_in_spec_order(agent):
    with agent.client() as c:
        assert c.request(req("analyze", {"source": "s", "events": []}))["error"]["name"] == "not_supported"
        assert c.request(req("frobnicate", {}))["error"]["details"] == {"type": "frobnicate"}
        bad = c.request(req("collect", {"source": "web-1", "records": "nope"}))
        assert bad["error"]["code"] == 21 and bad["error"]["details"]["path"] == "$.payload.records"
        assert c.request(req("collect", COLLECT, v=2))["error"]["code"] == 22
        assert c.request(req("collect", COLLECT, extra_field=1))["error"]["code"] == 21
        # Wrong token beats every other problem, and echoes nothing but msg_id.
        r = c.request(req("collect", {"bad": True}, token="nope", v=2))
        assert r["error"]["code"] == 20 and "unauthorized" in r["error"]["message"]
        assert r["task_id"] is None and r["in_reply_to"] == "m-1"
        for token in (None, 5, "x" * 200_000):
            env = req("collect", COLLECT, token=token)
            if token is None:
                del env["token"]
            assert c.request(env)["error"]["name"] == "unauthorized"
    text = agent.registry.render()
    assert metric_value(text, "faultdrill_requests_total", outcome="unauthorized") == 4
    assert metric_value(text, "faultdrill_steps_executed_total") == 0
    logs = agent.logs()
    assert len([r for r in logs if r.get("event") == "unauthorized"]) == 4
    assert TOKEN not in agent.stream.getvalue() and "x" * 1000 not in agent.stream.getvalue()
    for line in logs:
        for key in ("ts", "level", "service", "msg", "task_id", "trace_id", "span_id"):
            assert key in line


def test_bad_frames_keep_connection_and_service_up(agent):
    with agent.client() as c:
        c.send_raw(b"\xff\xfe{{{\n")
        assert c.recv()["error"]["details"]["reason"]
        c.send_raw(b"[1,2]\n" + b"not json\n")
        assert c.recv()["error"]["code"] == 12 and c.recv()["error"]["code"] == 12
        deep = {"v": 1}
        for _ in range(40):
            deep = {"a": deep}
        c.send(req("collect", COLLECT) | {"payload": deep})
        assert c.recv()["error"]["code"] == 12
        assert c.request(req("collect", COLLECT))["type"] == "collect_ok"  # still open and serving
    with agent.client() as c:
        c.send_raw(b"{" + b" " * 16777216)   # one byte over an agent's 16 MiB limit (SPEC §4)
        r = c.recv()
        assert r["error"]["code"] == 13 and r["error"]["details"]["limit_bytes"] == 16777216
        assert c.recv() is None  # closed after frame_too_large
    with agent.client() as c:
        assert c.request(req("hello", {"versions": [1]}, task_id=None))["type"] == "hello_ok"


def test_connection_cap_and_idle_timeout(tmp_path):
    a = Agent(tmp_path, max_connections=2, idle_timeout_ms=300)
    try:
        c1, c2 = a.client(), a.client()
        assert c1.request(req("hello", {"versions": [1]}, task_id=None))["type"] == "hello_ok"
        assert c2.request(req("hello", {"versions": [1]}, task_id=None))["type"] == "hello_ok"
        with a.client() as c3:
            busy = c3.recv()
            assert busy["error"]["name"] == "busy" and busy["in_reply_to"] is None
            assert busy["error"]["details"]["retry_after_ms"] >= 1
            assert c3.recv() is None
        assert metric_value(a.registry.render(), "faultdrill_connections_open") == 2
        t0 = time.monotonic()
        assert c1.recv() is None  # idle connection closed by the server
        assert 0.2 <= time.monotonic() - t0 <= 2.0
        c1.close()
        c2.close()
    finally:
        a.close()


def test_drain_finishes_in_flight_then_refuses_new_connections(tmp_path):
    a = Agent(tmp_path)
    gate = threading.Event()
    original = a.service.dispatch

    def slow(request, trace):
        gate.wait(5)
        return original(request, trace)

    a.service.dispatch = slow
    out = {}

    def call():
        with a.client() as c:
            out["r"] = c.request(req("collect", COLLECT))

    t = threading.Thread(target=call)
    t.start()
    deadline = time.monotonic() + 5
    while a.server.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    a.server.begin_drain()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", a.port), timeout=1).close()
    assert not a.server.wait_idle(0.1)
    gate.set()
    assert a.server.wait_idle(5)
    t.join(timeout=5)
    assert out["r"]["type"] == "collect_ok"
    a.server.close()
    a.side.close()


def test_side_port(agent):
    port = agent.side.port
    assert http_get(port, "/livez")[:2] == (200, "application/json")
    assert json.loads(http_get(port, "/readyz")[2]) == {"status": "ready"}
    status, ctype, body = http_get(port, "/metrics")
    assert status == 200 and ctype == METRICS_CONTENT_TYPE
    for name in ("faultdrill_requests_total", "faultdrill_request_duration_seconds", "faultdrill_connections_open",
                 "faultdrill_memory_records", "faultdrill_memory_corruptions_total", "faultdrill_memory_pruned_total",
                 "faultdrill_steps_executed_total", "faultdrill_steps_replayed_total"):
        assert f"# TYPE {name} " in body.decode()
    assert http_get(port, "/nope")[0] == 404


def test_corrupt_memory_is_quarantined_at_start(tmp_path):
    records = tmp_path / "collector" / "records"
    records.mkdir(parents=True)
    (records / "bad.json").write_bytes(b"\x00garbage{")
    (records / "other.json").write_text(json.dumps({"format": 1, "task_id": "not-other", "seq": 1}))
    a = Agent(tmp_path)
    try:
        quarantined = sorted(p.name for p in (tmp_path / "collector" / "quarantine").iterdir())
        assert len(quarantined) == 2 and quarantined[0].startswith("bad.json")
        assert not (records / "bad.json").exists()
        assert metric_value(a.registry.render(), "faultdrill_memory_corruptions_total") == 2
        corrupt = [r for r in a.logs() if r.get("event") == "memory_corrupt"]
        assert len(corrupt) == 2 and all(r["level"] == "error" and "path" in r for r in corrupt)
        assert a.service.readiness() == (True, [])
        with a.client() as c:  # the task is unknown: it executes afresh
            assert c.request(req("collect", COLLECT, task_id="bad"))["replay"] is False
    finally:
        a.close()


# -- TLS ------------------------------------------------------------------------------------------

def _make_pki(tmp: Path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def write(name, key, cert):
        (tmp / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                            serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))
        (tmp / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "faultdrill test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    write("ca", ca_key, ca)
    import ipaddress
    for i, name in enumerate(("server", "client"), start=2):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(i)
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        write(name, key, cert)


def test_tls_with_client_auth(tmp_path):
    _make_pki(tmp_path)
    p = {n: str(tmp_path / n) for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}
    a = Agent(tmp_path, ssl_context=tls.server_context(p["server.pem"], p["server.key"], p["ca.pem"], True))
    try:
        # Plaintext client: no protocol reply.
        with socket.create_connection(("127.0.0.1", a.port), timeout=3) as s:
            s.sendall(json.dumps(req("hello", {"versions": [1]}, task_id=None)).encode() + b"\n")
            try:
                data = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                data = b""
            assert b"hello_ok" not in data
        # A client without a certificate is refused.
        no_cert = tls.client_context(p["ca.pem"])
        with pytest.raises((ssl.SSLError, OSError)):
            with socket.create_connection(("127.0.0.1", a.port), timeout=3) as raw:
                with no_cert.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    s.sendall(json.dumps(req("hello", {"versions": [1]}, task_id=None)).encode() + b"\n")
                    if not s.recv(4096):
                        raise OSError("closed")
        # With a client certificate signed by the CA it works, through the orchestrator's client.
        from reference_impl.orchestrator.client import AgentClient

        ctx = tls.client_context(p["ca.pem"], p["client.pem"], p["client.key"], True)
        client = AgentClient("collector", f"127.0.0.1:{a.port}", TOKEN, ssl_context=ctx)
        attempt = client.call("collect", COLLECT, task_id="tls-1", traceparent=None, timeout_s=3)
        assert attempt.kind == "ok" and attempt.payload["counts"]["accepted"] == 1
        assert client.ready_within(2.0)
    finally:
        a.close()
