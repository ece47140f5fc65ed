"""Topology wiring (fake services, then the reference), and the fault catalogues
(auth, drift, hostile, memory, fake agent in drifted modes) checked against the reference."""
from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from graders import oracle
from graders.client import Connection, make_request
from graders.drivers.process import ProcessDriver
from graders.faults import auth, drift, hostile, memory
from graders.faults.fake_agent import FakeAgent
from graders.faults.proxy import DropReply, Partition
from graders.manifest import load_manifest
from graders.topology import FAST_SETTINGS, Topology

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "tests" / "fixtures" / "fake_service"
REFERENCE = ROOT / "reference_impl"
TOKEN = "topology-test-token"
HAVE_REFERENCE = (REFERENCE / "faultdrill.toml").is_file() and (REFERENCE / "main.py").is_file()
needs_reference = pytest.mark.skipif(not HAVE_REFERENCE, reason="reference_impl not present yet")


def test_fake_topology_wiring():
    topo = Topology.up(load_manifest(FAKE), ProcessDriver(), seed=3, token=TOKEN,
                       env_overrides={"orchestrator": {"FD_WORKERS": "2"}})
    try:
        env = json.loads(topo.deployment.read_memory("orchestrator", "env.json"))
        for role, var in (("collector", "FD_COLLECTOR_ADDR"), ("analyzer", "FD_ANALYZER_ADDR"),
                          ("reporter", "FD_REPORTER_ADDR")):
            host, port = topo.agent_proxy[role].address
            assert env[var] == f"{host}:{port}"
            assert topo.agent_proxy[role].upstream == (topo.endpoint(role).host, topo.endpoint(role).port)
        assert env["FD_WORKERS"] == "2" and topo.settings["FD_WORKERS"] == "2"
        assert all(env[k] == v for k, v in FAST_SETTINGS.items())
        reply = topo.request("hello", {"versions": [1]})
        assert reply["type"] == "hello_ok" and reply["payload"]["role"] == "orchestrator"
        assert topo.client_proxy.frames("upstream")[0].frame["token"] == TOKEN
        direct = topo.request("hello", {}, direct=True)
        assert direct["type"] == "hello_ok" and len(topo.client_proxy.frames("upstream")) == 1
        topo.client_proxy.add(Partition())
        topo.deployment.pause("collector")
        topo.heal()
        assert not topo.client_proxy.toxics
        with topo.connect_agent("collector") as c:
            assert c.request(make_request("hello", {}, token=TOKEN), timeout=3)["type"] == "hello_ok"
    finally:
        report = topo.close()
    assert report.ok, report


# --- against the reference ------------------------------------------------------------
@pytest.fixture(scope="module")
def ref():
    if not HAVE_REFERENCE:
        pytest.skip("reference_impl not present yet")
    topo = Topology.up(load_manifest(REFERENCE), ProcessDriver(), seed=11, token=TOKEN)
    yield topo
    report = topo.close()
    assert report.ok, report


@pytest.fixture
def healed(ref):
    ref.heal()
    yield ref
    ref.heal()


def submit(topo, task_id, task_input, **kw):
    return topo.request("submit", {"task_type": "triage", "input": task_input}, task_id=task_id, **kw)


@needs_reference
def test_reference_triage_through_proxies(healed):
    task_input = oracle.generate_input(random.Random(21), 50)
    reply = submit(healed, "topo-ok-1", task_input)
    assert reply["type"] == "submit_ok", reply
    assert reply["payload"]["result"] == oracle.expected_result("triage", task_input)
    again = submit(healed, "topo-ok-1", task_input)
    assert again["replay"] is True and again["payload"]["result"] == reply["payload"]["result"]
    for role, step in (("collector", "collect"), ("analyzer", "analyze"), ("reporter", "report")):
        types = [e.frame.get("type") for e in healed.agent_proxy[role].frames("upstream") if e.frame]
        assert step in types


@needs_reference
def test_reference_drop_reply_retried_executes_once(healed):
    task_input = oracle.generate_input(random.Random(22), 10)
    proxy = healed.agent_proxy["analyzer"]
    proxy.clear_events()
    tid = proxy.add(DropReply(match="analyze"))
    # drop only the first reply: remove the toxic once one reply was dropped
    import threading

    def lift():
        proxy.wait_for(lambda ev: any(e.kind == "drop" for e in ev), 5)
        proxy.remove(tid)
    th = threading.Thread(target=lift)
    th.start()
    reply = submit(healed, "topo-drop-1", task_input)
    th.join(6)
    assert reply["type"] == "submit_ok", reply
    analyze_frames = [e for e in proxy.frames("upstream") if e.frame and e.frame.get("type") == "analyze"]
    assert len(analyze_frames) >= 2                                  # retried
    assert len({e.frame["msg_id"] for e in analyze_frames}) == len(analyze_frames)
    replies = [e.frame for e in proxy.frames("downstream") if e.frame and e.frame.get("type") == "analyze_ok"]
    assert replies[0]["replay"] is False and replies[-1]["replay"] is True   # executed once


@needs_reference
def test_reference_agent_down_upstream_failed(healed):
    proxy = healed.agent_proxy["collector"]
    proxy.set_down(True)
    t0 = time.monotonic()
    reply = submit(healed, "topo-down-1", oracle.generate_input(random.Random(23), 5))
    assert time.monotonic() - t0 < int(FAST_SETTINGS["FD_TASK_DEADLINE_MS"]) / 1000 + 2
    assert reply["type"] == "error", reply
    err = reply["error"]
    assert err["name"] == "upstream_failed" and err["details"]["agent"] == "collector"
    assert err["details"]["attempts"] == int(FAST_SETTINGS["FD_RETRY_MAX_ATTEMPTS"])


@needs_reference
def test_reference_auth_attacks_unauthorized(ref):
    attacks = auth.attacks(TOKEN)
    assert len({a.name for a in attacks}) == len(attacks) >= 12
    with ref.connect(direct=True) as conn:
        for attack in attacks:
            reply = conn.request(attack.frame, timeout=5)
            assert reply["type"] == "error" and reply["error"]["name"] == "unauthorized", attack.name
            assert "unauthorized" in reply["error"]["message"]
            text = json.dumps(reply)
            assert TOKEN not in text and (attack.wrong_token is None or attack.wrong_token not in text)


@needs_reference
def test_reference_drift_cases(ref):
    task_input = oracle.generate_input(random.Random(24), 5)
    with ref.connect(direct=True) as conn:
        for case in drift.submit_cases(TOKEN, task_input):
            reply = conn.request(case.frame, timeout=8)
            assert reply["type"] == "error", (case.name, reply)
            err = reply["error"]
            assert err["name"] in case.errors, (case.name, err)
            if err["name"] == "schema_violation" and case.paths:
                assert err["details"]["path"] in case.paths, (case.name, err)
            if err["name"] == "unsupported_version":
                assert err["details"]["supported"] == [1]


@needs_reference
@pytest.mark.parametrize("mode", ["renamed_field", "wrong_type", "v2_only"])
def test_reference_drifted_agent_rejected(ref, mode):
    agent = FakeAgent("analyzer", mode, token=TOKEN)
    proxy = ref.agent_proxy["analyzer"]
    original = proxy.upstream
    proxy.set_upstream(*agent.address)
    proxy.close_connections()
    try:
        reply = submit(ref, f"topo-drift-{mode}", oracle.generate_input(random.Random(25), 5))
    finally:
        proxy.set_upstream(*original)
        proxy.close_connections()
        agent.close()
    assert reply["type"] == "error" and reply["error"]["name"] == "upstream_failed", reply
    cause = reply["error"]["details"]["cause"]
    if mode == "v2_only":
        assert cause["name"] == "unsupported_version"
    else:
        assert cause["name"] == "schema_violation"
        assert cause["details"]["path"] in agent.expected_paths(), cause
    assert reply["error"]["details"]["attempts"] == 1     # definite: not retried


@needs_reference
@settings(max_examples=60, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(frame=hostile.hostile_frames(TOKEN))
def test_reference_hostile_frames(ref, frame):
    ep = ref.endpoint("collector")
    with Connection(ep.host, ep.port, timeout=5) as conn:
        conn.send_raw(frame.data)
        reply = conn.recv(timeout=5)
        assert reply["type"] == "error" and reply["error"]["name"] in frame.expected, (frame, reply)
        if frame.path and reply["error"]["name"] == "schema_violation":
            assert reply["error"]["details"]["path"] == frame.path, (frame, reply)
        # the connection stays usable afterwards
        ok = conn.request(make_request("hello", {"versions": [1], "role": "orchestrator"}, token=TOKEN))
        assert ok["type"] == "hello_ok"


@needs_reference
@pytest.mark.slow
def test_reference_huge_line_closes(ref):
    # Each service has its own frame limit (SPEC §4: 1 MiB for the orchestrator, 16 MiB
    # for agents); one byte past the collector's must close the connection.
    from graders.client import FRAME_LIMITS
    limit = FRAME_LIMITS["collector"]
    ep = ref.endpoint("collector")
    data = b'{"v":1,"pad":"' + b"a" * (limit + 10) + b'"}\n'
    with Connection(ep.host, ep.port, timeout=10) as conn:
        conn.send_raw(data)
        reply = conn.recv(timeout=10)
        assert reply["error"]["name"] == "frame_too_large"
        assert reply["error"]["details"]["limit_bytes"] == limit
        assert conn.wait_closed(5)


@needs_reference
def test_reference_memory_corruption_quarantined(ref):
    task_input = oracle.generate_input(random.Random(26), 5)
    assert submit(ref, "topo-mem-1", task_input)["type"] == "submit_ok"
    dep = ref.deployment
    files = [f for f in dep.memory_files("collector") if f.startswith("records/")]
    assert "records/topo-mem-1.json" in files
    original = dep.read_memory("collector", "records/topo-mem-1.json")
    assert json.loads(original)["task_id"] == "topo-mem-1"
    dep.write_memory("collector", "records/topo-mem-1.json",
                     memory.garbage(random.Random(1), 300))
    dep.write_memory("collector", "records/topo-mem-2.json", memory.truncated(original))
    dep.make_unreadable("collector", "records/topo-mem-3.json")
    dep.restart("collector")
    from graders.client import http_get
    ep = dep.endpoint("collector")
    assert http_get(ep.host, ep.http_port, "/readyz")[0] == 200
    quarantined = [f for f in dep.memory_files("collector") if f.startswith("quarantine/")]
    assert any("topo-mem-1.json" in f for f in quarantined), quarantined
    assert any("topo-mem-2.json" in f for f in quarantined), quarantined
    assert any('"memory_corrupt"' in line for line in dep.logs("collector", current_run=True))


def test_memory_fault_contents():
    rng = random.Random(3)
    assert memory.truncated(b'{"a": 1}') == b'{"a"'
    assert len(memory.garbage(rng, 100)) == 100 and memory.garbage(rng, 10)[0] == 0xFF
    assert not isinstance(json.loads(memory.wrong_shape()), dict)
    assert memory.empty() == b""
    big = memory.oversized(17)
    assert len(big) > memory.MAX_RECORD_BYTES and json.loads(big)["format"] == 1
    with pytest.raises(UnicodeDecodeError):
        memory.not_utf8().decode("utf-8")
    rec = json.dumps({"format": 1, "task_id": "t-1"}).encode()
    assert json.loads(memory.mismatched_task_id(rec))["task_id"] != "t-1"
    assert set(memory.CORRUPTIONS) >= {"truncated", "garbage", "wrong_shape", "empty"}
