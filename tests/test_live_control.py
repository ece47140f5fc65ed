"""The live control API against a running reference (one shared system, bounded polls),
and `faultdrill up` + `faultdrill fault` end to end."""
from __future__ import annotations

import http.client
import json
import random
import signal
import socket
import subprocess
import sys
import time

import pytest

from graders import paths
from graders.client import http_get
from graders.live.session import LiveSession
from graders.live.state import LiveClient, LiveClientError
from graders.live.system import LIVE_SETTINGS
from graders.manifest import load_manifest

SEED = 1313


@pytest.fixture(scope="module")
def live():
    session = LiveSession.start(load_manifest(paths.REFERENCE), seed=SEED, token="live-test-token",
                                settings=LIVE_SETTINGS, traffic_rate=8)
    try:
        yield session
    finally:
        report = session.close()
        assert report is None or report.ok, report


def _client(live) -> LiveClient:
    return LiveClient(live.server.address[1], live.api_token)


def _until(cond, timeout=8.0, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(step)
    return cond()


def _window_ok(live, seconds=1.0) -> bool:
    recent = live.traffic.recent(seconds)
    return bool(recent) and all(o.outcome == "ok" for o in recent)


def test_requests_need_the_token_and_a_loopback_host(live):
    port = live.server.address[1]
    for headers, status in (({}, 401), ({"Authorization": "Bearer nope"}, 401),
                            ({"Authorization": f"Bearer {live.api_token}", "Host": "evil.example"}, 403)):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/proxies", headers=headers)
        resp = conn.getresponse()
        body = json.loads(resp.read())
        conn.close()
        assert resp.status == status and "error" in body
    assert live.server.address[0] == "127.0.0.1"


def test_proxies_cover_every_hop_and_toxics_bite_and_go(live):
    api = _client(live)
    proxies = api.call("GET", "/proxies")
    assert sorted(proxies) == ["analyzer", "collector", "orchestrator", "reporter"]
    orch = live.system.deployment.endpoint("orchestrator")
    assert proxies["orchestrator"]["upstream"] == f"{orch.host}:{orch.port}"
    assert _until(lambda: _window_ok(live)), live.traffic.stats()
    toxic = api.call("POST", "/proxies/analyzer/toxics",
                     {"name": "slow", "type": "latency", "attributes": {"latency": 350}})
    assert toxic["attributes"] == {"latency": 350, "jitter": 0}
    with pytest.raises(LiveClientError) as dup:
        api.call("POST", "/proxies/analyzer/toxics", {"name": "slow", "type": "latency"})
    assert dup.value.status == 409
    assert [t["name"] for t in api.call("GET", "/proxies/analyzer/toxics")] == ["slow"]
    slow = lambda: [o for o in live.traffic.recent(1.0) if o.latency_s >= 0.35]  # noqa: E731
    assert _until(slow), live.traffic.stats()
    api.call("DELETE", "/proxies/analyzer/toxics/slow")
    time.sleep(0.5)
    assert _until(lambda: _window_ok(live) and not slow()), live.traffic.stats()
    with pytest.raises(LiveClientError) as missing:
        api.call("DELETE", "/proxies/analyzer/toxics/slow")
    assert missing.value.status == 404
    with pytest.raises(LiveClientError) as bad:
        api.call("POST", "/proxies/db/toxics", {"type": "latency"})
    assert bad.value.status == 404


def test_disabled_hop_fails_tasks_until_reset(live):
    api = _client(live)
    api.call("POST", "/proxies/collector", {"enabled": False})
    assert api.call("GET", "/proxies/collector")["enabled"] is False
    assert _until(lambda: any(o.outcome != "ok" for o in live.traffic.recent(1.0))), live.traffic.stats()
    api.call("POST", "/reset")
    time.sleep(0.3)
    assert _until(lambda: _window_ok(live)), live.traffic.stats()


def test_faultdrill_actions_and_heal(live):
    api = _client(live)
    out = api.call("POST", "/faultdrill/faults", {"action": "drift", "role": "reporter",
                                                  "mode": "renamed_field"})
    assert out["mode"] == "renamed_field"
    assert _until(lambda: any(o.outcome == "upstream_failed" for o in live.traffic.recent(1.0)))
    api.call("POST", "/faultdrill/services/analyzer/pause")
    status = api.call("GET", "/faultdrill/status")
    assert status["drifted"] == {"reporter": "renamed_field"}
    assert status["traffic"]["sent"] > 0
    healed = api.call("POST", "/faultdrill/heal")
    assert healed["ready"] is True and "restored the real reporter" in healed["done"]
    time.sleep(0.3)
    assert _until(lambda: _window_ok(live)), live.traffic.stats()
    with pytest.raises(LiveClientError) as bad:
        api.call("POST", "/faultdrill/faults", {"action": "service", "role": "db", "op": "kill"})
    assert bad.value.status == 400 and "role" in str(bad.value)


def test_a_new_proxy_like_toxiproxy(live):
    api = _client(live)
    orch = live.system.deployment.endpoint("orchestrator")
    made = api.call("POST", "/proxies", {"name": "dash", "listen": "127.0.0.1:0",
                                         "upstream": f"127.0.0.1:{orch.http_port}"})
    host, port = made["listen"].split(":")
    assert http_get(host, int(port), "/livez")[0] == 200
    with pytest.raises(LiveClientError) as exists:
        api.call("POST", "/proxies", {"name": "dash", "upstream": f"127.0.0.1:{orch.http_port}"})
    assert exists.value.status == 409
    with pytest.raises(LiveClientError) as remote:
        api.call("POST", "/proxies", {"name": "far", "upstream": "10.1.2.3:80"})
    assert remote.value.status == 400
    with pytest.raises(LiveClientError) as hop:
        api.call("DELETE", "/proxies/analyzer")
    assert hop.value.status == 409
    api.call("DELETE", "/proxies/dash")
    with socket.socket() as s:
        assert s.connect_ex((host, int(port))) != 0


def _free_base() -> int:
    rng = random.Random(time.time_ns())
    for _ in range(50):
        base = rng.randrange(21000, 29000)
        ports = [base + i for i in range(4)] + [base + 100 + i for i in range(4)] + [base + 1474]
        if all(socket.socket().connect_ex(("127.0.0.1", p)) != 0 for p in ports):
            return base
    pytest.skip("no free port block")


def test_up_and_fault_cli_end_to_end():
    base = _free_base()
    up = subprocess.Popen([sys.executable, "-m", "graders.cli", "up", "--port-base", str(base),
                           "--token", "tok-up", "--for", "60", "--quiet", "--traffic", "5",
                           "--seed", "77"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    fault = [sys.executable, "-m", "graders.cli", "fault", "--api-port", str(base + 1474)]
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            lines.append(line)
            if "Ctrl-C" in line or not line:
                break
        text = "".join(lines)
        assert f"control API  http://127.0.0.1:{base + 1474}" in text and "seed         77" in text, text
        added = subprocess.run(fault + ["add", "reporter", "latency", "-a", "latency=200"],
                               capture_output=True, text=True, timeout=30)
        assert added.returncode == 0, added.stderr
        listed = subprocess.run(fault + ["list"], capture_output=True, text=True, timeout=30)
        assert "latency_downstream: latency downstream" in listed.stdout, listed.stdout
        wrong = subprocess.run(fault + ["add", "reporter", "latency", "-a", "lag=3"],
                               capture_output=True, text=True, timeout=30)
        assert wrong.returncode == 2 and "no attribute" in wrong.stderr
        traffic = subprocess.run(fault + ["--json", "traffic"], capture_output=True, text=True, timeout=30)
        assert json.loads(traffic.stdout)["sent"] > 0
        healed = subprocess.run(fault + ["heal"], capture_output=True, text=True, timeout=60)
        assert healed.returncode == 0 and "removed 1 toxic(s) on reporter" in healed.stdout
        up.send_signal(signal.SIGTERM)
        rest = up.communicate(timeout=30)[0]
        assert "nothing left running" in rest and up.returncode == 0
        gone = subprocess.run(fault + ["list"], capture_output=True, text=True, timeout=30)
        assert gone.returncode == 3
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(timeout=10)


def test_bad_requests_get_clear_errors(live):
    api = live.api
    ok = {"host": "127.0.0.1:1", "authorization": f"Bearer {live.api_token}"}
    assert api.handle("GET", "/version", ok, b"")[0] == 200
    for method, path, body, status, words in [
            ("POST", "/proxies/analyzer/toxics", b"{not json", 400, "not JSON"),
            ("POST", "/proxies/analyzer/toxics", b"x" * (70 * 1024), 413, "over"),
            ("GET", "/nowhere", b"", 404, "no route"),
            ("PUT", "/proxies", b"{}", 405, "not supported"),
            ("POST", "/faultdrill/services/analyzer/explode", b"", 404, "services/"),
            ("POST", "/faultdrill/traffic", b'{"rate": -3}', 400, "rate"),
            ("POST", "/proxies/analyzer", b'{"enabled": "no"}', 400, "enabled"),
            ("POST", "/faultdrill/faults", b'{"action": "leak", "connections": 100000}', 400, "connections")]:
        got, answer = api.handle(method, path, ok, body)
        assert got == status and words in answer["error"], (path, got, answer)
    rate = api.handle("POST", "/faultdrill/traffic", ok, b'{"rate": 6}')
    assert rate[0] == 200 and rate[1]["rate"] == 6
    listed = api.handle("GET", "/faultdrill/actions", ok, b"")[1]
    assert "drift" in listed["actions"] and "latency" in listed["toxic_types"]
