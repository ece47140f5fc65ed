"""End-to-end tests of the reference system: four processes started from its manifest.

Timeouts are made small through the environment (attempt 500 ms, deadline 4 s) so that
failure scenarios finish in about a second each. Faults are injected from outside, the
way a grader would: SIGKILL/SIGSTOP on an agent, a blackhole TCP server in place of an
agent, corrupt files in a memory directory, SIGTERM with a task in flight.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

import spec_examples  # noqa: E402  (tests/ is on sys.path)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # refsystem.py sits next to this file
from refsystem import (AGENTS, FAST_ENV, ROLES, ROOT, Blackhole, Client, RefSystem, ScriptedAgent, http_get,  # noqa: E402
                       manifest_command, metric_value)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
# SPEC §18.1, parsed from the document (tests/spec_examples.py).
DEMO_INPUT = spec_examples.TASK_INPUT
DEMO_RESULT = spec_examples.REPORT_OUT
SMALL = {"source": "s1", "records": ["2026-11-29T10:00:00Z info api 5 fine"]}


def ts(line: dict) -> float:
    return datetime.strptime(line["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def assert_no_token(rs: RefSystem) -> None:
    """The token appears in no log line and no memory file of any service."""
    for role in ROLES:
        assert rs.token not in rs.stderr_text(role), f"token in {role} logs"
        for path in rs.memory_dir(role).rglob("*"):
            if path.is_file():
                assert rs.token.encode() not in path.read_bytes(), f"token in {path}"


def assert_backoff_gaps(rs: RefSystem, task_id: str, step: str, base: int, cap: int) -> list[float]:
    attempts = [r for r in rs.events("orchestrator", "step_attempt", step=step) if r["task_id"] == task_id]
    scheduled = [r for r in rs.events("orchestrator", "retry_scheduled", step=step) if r["task_id"] == task_id]
    times = [ts(r) for r in attempts]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(scheduled) == len(attempts) - 1 >= 1
    for n, (gap, sched) in enumerate(zip(gaps, scheduled), start=1):
        d = min(cap, base * 2 ** (n - 1))
        assert d / 2 <= sched["delay_ms"] <= d + 1
        assert gap * 1000 >= d / 2 - 10, f"gap {n} was {gap * 1000:.0f} ms, d={d}"
    return gaps


# -- one shared system for the read-mostly tests ---------------------------------------------

@pytest.fixture(scope="module")
def system(tmp_path_factory):
    with RefSystem(tmp_path_factory.mktemp("e2e"), env=FAST_ENV) as rs:
        yield rs
        assert_no_token(rs)


def test_worked_example_replay_and_conflict(system):
    r = system.submit("demo-1", DEMO_INPUT, traceparent=TRACEPARENT)
    assert r["type"] == "submit_ok" and r["replay"] is False, r
    assert r["payload"]["result"] == DEMO_RESULT
    assert r["payload"]["status"] == "succeeded" and r["payload"]["task_id"] == "demo-1"
    assert [s["step"] for s in r["payload"]["steps"]] == ["collect", "analyze", "report"]
    assert "token" not in json.dumps(r)
    again = system.submit("demo-1", DEMO_INPUT)
    assert again["replay"] is True and again["payload"]["result"] == DEMO_RESULT
    conflict = system.submit("demo-1", {**DEMO_INPUT, "source": "web-2"})
    assert conflict["error"]["code"] == 30 and conflict["error"]["details"]["task_id"] == "demo-1"
    # Replays re-ran nothing: each agent executed its step once.
    for agent, step in zip(AGENTS, ("collect", "analyze", "report")):
        assert metric_value(system.metrics(agent), "faultdrill_steps_executed_total", step=step) == 1
    st = system.status("demo-1")["payload"]
    assert st["status"] == "succeeded" and st["result"] == DEMO_RESULT and st["error"] is None
    assert st["finished_at"] and st["submitted_at"]
    with system.client() as c:
        listed = c.request(system.envelope("list", {"limit": 5}))["payload"]["tasks"]
        assert listed[0]["task_id"] == "demo-1"
        nf = c.request(system.envelope("status", {}, task_id="never-seen"))
        assert nf["error"]["code"] == 41 and nf["error"]["details"]["task_id"] == "never-seen"
        unknown = c.request(system.envelope("submit", {"task_type": "nope", "input": SMALL}, task_id="x"))
        assert unknown["error"]["details"]["path"] == "$.payload.task_type"


def test_other_task_types_follow_their_routes(system):
    parse = system.submit("parse-1", SMALL, task_type="parse")["payload"]
    assert [s["step"] for s in parse["steps"]] == ["collect"]
    assert parse["result"]["counts"] == {"received": 1, "accepted": 1, "rejected": 0}
    stats = system.submit("stats-1", SMALL, task_type="stats")["payload"]
    assert [s["step"] for s in stats["steps"]] == ["collect", "analyze"]
    assert stats["result"]["total"] == 1 and stats["result"]["services"][0]["service"] == "api"


def test_agent_replays_direct_duplicates(system):
    with system.client("collector") as c:
        first = c.request(system.envelope("collect", {"source": "d", "records": []}, task_id="direct-1"))
        second = c.request(system.envelope("collect", {"records": [], "source": "d"}, task_id="direct-1"))
        assert first["replay"] is False and second["replay"] is True
        assert second["payload"] == first["payload"]
        assert c.request(system.envelope("collect", {"source": "e", "records": []},
                                         task_id="direct-1"))["error"]["code"] == 30


def test_trace_and_task_ids_in_every_service_log(system):
    system.submit("trace-1", SMALL, traceparent=f"00-{'ab' * 16}-{'cd' * 8}-01")
    for role in ROLES:
        lines = [r for r in system.logs(role) if r.get("task_id") == "trace-1"]
        assert lines, f"no line about trace-1 in {role}"
        assert {r["trace_id"] for r in lines} == {"ab" * 16}, role
        assert all(len(r["span_id"]) == 16 for r in lines)
        for r in system.logs(role):
            assert {"ts", "level", "service", "msg", "task_id", "trace_id", "span_id"} <= r.keys()
            assert r["service"] == role
    events = {r.get("event") for r in system.logs("orchestrator") if r.get("task_id") == "trace-1"}
    assert {"task_received", "step_attempt", "task_succeeded", "request"} <= events


def test_bad_tokens_refused_by_every_service(system):
    for role in ROLES:
        with system.client(role) as c:
            for token in ("wrong", "", 12, None, "y" * 300_000):
                env = system.envelope("hello", {"versions": [1]}, msg_id="m-bad")
                if token is None:
                    del env["token"]
                else:
                    env["token"] = token
                r = c.request(env)
                assert r["error"]["code"] == 20 and r["in_reply_to"] == "m-bad" and r["task_id"] is None
        text = system.metrics(role)
        assert metric_value(text, "faultdrill_requests_total", outcome="unauthorized") >= 5
        assert system.events(role, "unauthorized")
        assert "y" * 100 not in system.stderr_text(role)


def test_garbage_oversized_and_deep_frames_on_every_service(system):
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    for role in ROLES:
        with system.client(role) as c:
            c.send_raw(b"\xff\xfe{{{\n")
            r = c.recv()
            assert r["error"]["code"] == 12 and r["in_reply_to"] is None
            c.send(system.envelope("hello", {"versions": [1], "x": deep}))
            assert c.recv()["error"]["code"] == 12
            assert c.request(system.envelope("hello", {"versions": [1]}))["type"] == "hello_ok"
        with system.client(role) as c:
            limit = 1048576 if role == "orchestrator" else 16777216   # SPEC §4
            c.send_raw(b'{"v":1,"pad":"' + b"a" * (limit + 1 - 14))   # one byte over the limit
            assert c.recv()["error"]["details"]["limit_bytes"] == limit
            assert c.recv() is None
        with system.client(role) as c:
            assert c.request(system.envelope("hello", {"versions": [1]}))["type"] == "hello_ok"
        assert http_get(system.http_ports[role], "/livez")[0] == 200


def test_http_side_ports_and_dashboard(system):
    system.submit("dash-1", SMALL)
    port = system.http_ports["orchestrator"]
    status, ctype, body = http_get(port, "/")
    assert status == 200 and ctype.startswith("text/html") and b"dash-1" in body
    assert system.token.encode() not in body
    tasks = json.loads(http_get(port, "/api/tasks")[2])["tasks"]
    assert any(t["task_id"] == "dash-1" for t in tasks)
    task = json.loads(http_get(port, "/api/tasks/dash-1")[2])
    assert task["status"] == "succeeded" and task["result"]["summary"].startswith("1 events from 1 services")
    assert http_get(port, "/api/tasks/none-such")[0] == 404
    assert json.loads(http_get(port, "/api/alerts")[2]) == {"alerts": []}
    for role in ROLES:
        hp = system.http_ports[role]
        assert json.loads(http_get(hp, "/readyz")[2]) == {"status": "ready"}
        status, ctype, text = http_get(hp, "/metrics")
        assert ctype.startswith("text/plain; version=0.0.4") and system.token.encode() not in text
        assert http_get(hp, "/unknown")[0] == 404


# -- scenarios with their own system ---------------------------------------------------------------

def test_in_progress_while_agent_paused_then_success(tmp_path):
    with RefSystem(tmp_path, env={**FAST_ENV, "FD_ATTEMPT_TIMEOUT_MS": "1500"}) as rs:
        rs.send_signal("collector", signal.SIGSTOP)
        try:
            r = rs.submit("slow-1", SMALL, wait=False)
            assert r["type"] == "submit_ok" and r["payload"] == {"task_id": "slow-1", "status": "queued"}
            dup = rs.submit("slow-1", SMALL)
            assert dup["error"]["code"] == 31 and dup["error"]["details"]["retry_after_ms"] >= 1
            assert dup["error"]["details"]["task_id"] == "slow-1"
            assert rs.submit("slow-1", {**SMALL, "source": "zz"})["error"]["code"] == 30
            assert rs.status("slow-1")["payload"]["status"] in ("queued", "running")
        finally:
            rs.send_signal("collector", signal.SIGCONT)
        final = rs.wait_status("slow-1", ("succeeded", "failed"), timeout=6)
        assert final["payload"]["status"] == "succeeded", final
        assert rs.submit("slow-1", SMALL)["replay"] is True


def test_killed_agent_retries_with_growing_gaps_then_succeeds_after_restart(tmp_path):
    env = {**FAST_ENV, "FD_RETRY_MAX_ATTEMPTS": "8", "FD_RETRY_BASE_MS": "100", "FD_RETRY_CAP_MS": "400",
           "FD_TASK_DEADLINE_MS": "8000"}
    with RefSystem(tmp_path, env=env) as rs:
        rs.kill("analyzer")
        assert rs.submit("retry-1", SMALL, wait=False)["type"] == "submit_ok"
        end = time.monotonic() + 5
        while len(rs.events("orchestrator", "retry_scheduled", step="analyze")) < 2 and time.monotonic() < end:
            time.sleep(0.02)
        rs.start("analyzer")
        final = rs.wait_status("retry-1", ("succeeded", "failed"), timeout=8)
        assert final["payload"]["status"] == "succeeded", final
        analyze = final["payload"]["steps"][1]
        assert analyze["step"] == "analyze" and 3 <= analyze["attempts"] <= 8
        gaps = assert_backoff_gaps(rs, "retry-1", "analyze", 100, 400)
        assert gaps[1] > gaps[0] * 0.5  # growing bounds: d doubles each time (jitter allowed)
        assert metric_value(rs.metrics("orchestrator"), "faultdrill_step_retries_total", step="analyze") \
            == analyze["attempts"] - 1
        assert_no_token(rs)


def test_agent_that_stays_down_gives_upstream_failed(tmp_path):
    with RefSystem(tmp_path, env=FAST_ENV) as rs:
        rs.kill("reporter")
        t0 = time.monotonic()
        r = rs.submit("down-1", SMALL)
        assert time.monotonic() - t0 < 4.5
        e = r["error"]
        assert e["code"] == 40 and e["retryable"] is True and e["definite"] is True
        assert e["details"]["step"] == "report" and e["details"]["agent"] == "reporter"
        assert e["details"]["attempts"] == 4
        assert e["details"]["cause"]["code"] == 14 and "refused" in e["details"]["cause"]["message"]
        assert_backoff_gaps(rs, "down-1", "report", 100, 800)
        assert rs.events("orchestrator", "task_failed")
        ready = http_get(rs.http_ports["orchestrator"], "/readyz")
        assert ready[0] == 503 and any("reporter" in x for x in json.loads(ready[2])["reasons"])
        # A failed task runs again on resubmission once the agent is back.
        rs.start("reporter")
        again = rs.submit("down-1", SMALL)
        assert again["type"] == "submit_ok" and again["replay"] is False


def test_blackholed_agent_attempt_timeouts_and_deadline(tmp_path):
    with Blackhole() as hole:
        env = {**FAST_ENV, "FD_RETRY_MAX_ATTEMPTS": "20", "FD_TASK_DEADLINE_MS": "2500"}
        with RefSystem(tmp_path, env=env, role_env={"orchestrator": {"FD_ANALYZER_ADDR": f"127.0.0.1:{hole.port}"}}) as rs:
            t0 = time.monotonic()
            r = rs.submit("hole-1", SMALL, timeout=10)
            elapsed = time.monotonic() - t0
            assert elapsed < 2.5 + 0.5, elapsed
            e = r["error"]
            assert e["code"] == 1 and e["name"] == "timeout" and e["details"]["step"] == "analyze"
            attempts = [ts(x) for x in rs.events("orchestrator", "step_attempt", step="analyze")]
            assert len(attempts) >= 2 and hole.accepted >= 2
            # each attempt waited its full 500 ms before the next was scheduled
            assert all(b - a >= 0.5 - 0.01 for a, b in zip(attempts, attempts[1:]))
            st = rs.status("hole-1")["payload"]
            assert st["status"] == "failed" and st["steps"][1]["status"] == "failed"


def test_sigterm_drains_in_flight_task_and_exits_zero(tmp_path):
    with RefSystem(tmp_path, env={**FAST_ENV, "FD_ATTEMPT_TIMEOUT_MS": "3000"}) as rs:
        rs.send_signal("reporter", signal.SIGSTOP)
        out = {}

        def submit():
            out["r"] = rs.submit("drain-1", SMALL)

        t = threading.Thread(target=submit)
        t.start()
        try:
            rs.wait_for_event("orchestrator", "step_attempt", step="report", timeout=5)
            rs.send_signal("orchestrator", signal.SIGTERM)
            time.sleep(0.3)
            # no new connections while draining
            with pytest.raises(OSError):
                Client(rs.ports["orchestrator"], timeout=1).request(rs.envelope("hello", {"versions": [1]}))
        finally:
            rs.send_signal("reporter", signal.SIGCONT)
        t.join(timeout=10)
        assert out["r"]["type"] == "submit_ok" and out["r"]["payload"]["result"]["status"] == "ok"
        assert rs.procs["orchestrator"].wait(timeout=5) == 0
        assert rs.events("orchestrator", "shutdown")
        for role in AGENTS:
            assert rs.stop(role) == 0 and rs.events(role, "shutdown")
        # The task log survives: a restarted orchestrator replays the result.
        rs.start(*ROLES)
        assert rs.submit("drain-1", SMALL)["replay"] is True


def test_orchestrator_crash_marks_running_task_failed_and_reruns(tmp_path):
    with RefSystem(tmp_path, env={**FAST_ENV, "FD_ATTEMPT_TIMEOUT_MS": "3000"}) as rs:
        rs.send_signal("analyzer", signal.SIGSTOP)
        try:
            rs.submit("crash-1", SMALL, wait=False)
            rs.wait_for_event("orchestrator", "step_attempt", step="analyze", timeout=5)
            rs.kill("orchestrator")
        finally:
            rs.send_signal("analyzer", signal.SIGCONT)
        rs.start("orchestrator")
        st = rs.status("crash-1")["payload"]
        assert st["status"] == "failed" and st["error"]["name"] == "timeout"
        again = rs.submit("crash-1", SMALL)
        assert again["type"] == "submit_ok" and again["replay"] is False


def test_corrupt_memory_at_start_is_quarantined(tmp_path):
    rs = RefSystem(tmp_path, env=FAST_ENV)
    for role in ROLES:
        records = rs.memory_dir(role) / "records"
        records.mkdir(parents=True)
        (records / "bad-1.json").write_bytes(b"{not json")
        (records / "bad-2.json").write_text(json.dumps({"format": 1, "task_id": "other", "seq": 3}))
    with rs:
        for role in ROLES:
            quarantine = rs.memory_dir(role) / "quarantine"
            names = sorted(p.name for p in quarantine.iterdir())
            assert len(names) == 2 and names[0].startswith("bad-1.json") and names[1].startswith("bad-2.json")
            assert metric_value(rs.metrics(role), "faultdrill_memory_corruptions_total") == 2
            lines = rs.events(role, "memory_corrupt")
            assert len(lines) == 2 and all(x["level"] == "error" for x in lines)
            assert http_get(rs.http_ports[role], "/readyz")[0] == 200
        assert rs.submit("bad-1", SMALL)["replay"] is False  # unknown task: runs afresh


def test_busy_when_queue_full_and_connection_cap(tmp_path):
    env = {**FAST_ENV, "FD_QUEUE_SIZE": "1", "FD_WORKERS": "1", "FD_ATTEMPT_TIMEOUT_MS": "3000"}
    # The cap is tested on the reporter: the orchestrator keeps a pooled connection to the
    # collector once q-1 has been collected (SPEC §14.1 allows persistent connections), but
    # has not talked to the reporter yet while q-1 is stuck at analyze.
    with RefSystem(tmp_path, env=env, role_env={"reporter": {"FD_MAX_CONNECTIONS": "1"}}) as rs:
        rs.send_signal("analyzer", signal.SIGSTOP)
        try:
            assert rs.submit("q-1", SMALL, wait=False)["type"] == "submit_ok"
            rs.wait_for_event("orchestrator", "step_attempt", step="analyze", timeout=5)
            assert rs.submit("q-2", SMALL, wait=False)["type"] == "submit_ok"
            t0 = time.monotonic()
            busy = rs.submit("q-3", SMALL)
            assert time.monotonic() - t0 < 0.1 + 0.2
            assert busy["error"]["code"] == 11 and busy["error"]["details"]["retry_after_ms"] >= 1
            assert rs.status("q-3")["error"]["code"] == 41  # not stored
            assert metric_value(rs.metrics("orchestrator"), "faultdrill_busy_rejections_total") >= 1
            with rs.client("reporter") as first, rs.client("reporter") as second:
                assert first.request(rs.envelope("hello", {"versions": [1]}))["type"] == "hello_ok"
                r = second.recv()
                assert r["error"]["code"] == 11 and r["in_reply_to"] is None
        finally:
            rs.send_signal("analyzer", signal.SIGCONT)
        assert rs.wait_status("q-2", ("succeeded",), timeout=8)


@pytest.mark.parametrize("env,variable", [({"FD_WORKERS": "abc"}, "FD_WORKERS"), ({"FD_TOKEN": ""}, "FD_TOKEN"),
                                          ({"FD_ROUTES": '{"x": ["analyze"]}'}, "FD_ROUTES")])
def test_invalid_config_exits_2_naming_the_variable(tmp_path, env, variable):
    base = {"PATH": "/usr/bin:/bin", "FD_TOKEN": "t", "FD_MEMORY_DIR": str(tmp_path), "FD_LISTEN_PORT": "0"}
    proc = subprocess.run(manifest_command("orchestrator"), cwd=ROOT, env={**base, **env},
                          capture_output=True, timeout=20)
    assert proc.returncode == 2
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and variable in lines[0]


def test_module_entry_point_runs(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "reference_impl", "collector"], cwd=ROOT.parent,
                          env={"PATH": "/usr/bin:/bin", "FD_TOKEN": "t", "FD_WORKERS": "1",
                               "FD_RETRY_BASE_MS": "x", "FD_LISTEN_PORT": "70000"},
                          capture_output=True, timeout=20)
    assert proc.returncode == 2 and b"FD_LISTEN_PORT" in proc.stderr
    assert (Path(ROOT) / "faultdrill.toml").is_file()


def test_version_incompatible_agent_gets_no_work(tmp_path):
    def v2_only(req):
        if req.get("type") == "hello":
            return {"v": 1, "type": "error", "in_reply_to": req.get("msg_id"), "task_id": None,
                    "error": {"code": 22, "name": "unsupported_version", "definite": True, "retryable": False,
                              "message": "v2 only", "details": {"supported": [2]}}}
        return {"v": 1, "type": "collect_ok", "in_reply_to": req.get("msg_id"), "payload": {}}

    with ScriptedAgent(v2_only) as fake:
        with RefSystem(tmp_path, env=FAST_ENV,
                       role_env={"orchestrator": {"FD_COLLECTOR_ADDR": f"127.0.0.1:{fake.port}"}}) as rs:
            e = rs.submit("v2-1", SMALL)["error"]
            assert e["code"] == 40 and e["details"]["attempts"] == 1
            assert e["details"]["cause"]["name"] == "unsupported_version"
            assert [r.get("type") for r in fake.requests] == ["hello"]  # no work was sent
            ready = http_get(rs.http_ports["orchestrator"], "/readyz")
            assert ready[0] == 503 and any("collector" in x for x in json.loads(ready[2])["reasons"])


def test_drifted_agent_reply_is_a_schema_violation(tmp_path):
    def drifted(req):
        if req.get("type") == "hello":
            return {"v": 1, "type": "hello_ok", "in_reply_to": req.get("msg_id"), "task_id": None,
                    "payload": {"version": 1, "role": "collector", "capabilities": ["collect"],
                                "limits": {"max_frame_bytes": 1048576, "max_depth": 32}}}
        return {"v": 1, "type": "collect_ok", "in_reply_to": req.get("msg_id"), "task_id": req.get("task_id"),
                "replay": False, "payload": {"source": "s1", "evts": [], "rejected": [],
                                             "counts": {"received": 1, "accepted": 0, "rejected": 0}}}

    with ScriptedAgent(drifted) as fake:
        with RefSystem(tmp_path, env=FAST_ENV,
                       role_env={"orchestrator": {"FD_COLLECTOR_ADDR": f"127.0.0.1:{fake.port}"}}) as rs:
            e = rs.submit("drift-1", SMALL)["error"]
            assert e["code"] == 40 and e["details"]["attempts"] == 1
            cause = e["details"]["cause"]
            assert cause["name"] == "schema_violation" and cause["details"]["path"].startswith("$.payload")
            assert sum(1 for r in fake.requests if r.get("type") == "collect") == 1
