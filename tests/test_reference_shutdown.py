"""SIGTERM drain of the reference orchestrator while a step's attempts are timing out
(SPEC §17): every client that had sent a request gets a reply — the task's result or
error, `busy` for new work on an open connection, `timeout` when the grace period ends
first — and the exit status says whether work was lost (0 nothing lost, 1 lost).

The collector's replies are delayed 250 ms by a fault proxy, so hello + collect take about
the 500 ms attempt timeout and the collect step keeps retrying, as seen in a real grade.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from graders.faults.proxy import FaultProxy, Latency

sys.path.insert(0, str(Path(__file__).resolve().parent))  # refsystem.py sits next to this file
from refsystem import HOST, Client, RefSystem  # noqa: E402

ENV = {"FD_ATTEMPT_TIMEOUT_MS": "500", "FD_TASK_DEADLINE_MS": "3000", "FD_RETRY_BASE_MS": "100",
       "FD_RETRY_CAP_MS": "800", "FD_RETRY_MAX_ATTEMPTS": "4"}
TASK = {"source": "s", "records": ["2026-01-01T00:00:00Z info api 1 ok"]}


class _Slowed:
    """The reference system with the collector behind a 250 ms reply delay."""

    def __init__(self, tmp, grace_ms: int):
        self.rs = RefSystem(tmp, env={**ENV, "FD_SHUTDOWN_GRACE_MS": str(grace_ms)})
        self.proxy = FaultProxy("collector", (HOST, self.rs.ports["collector"]), seed=7).start()
        self.rs.role_env["orchestrator"] = {"FD_COLLECTOR_ADDR": f"{HOST}:{self.proxy.address[1]}"}

    def __enter__(self):
        try:
            self.rs.start()
        except BaseException:
            self.__exit__()
            raise
        self.proxy.add(Latency(latency_ms=250, stream="downstream"))
        return self

    def __exit__(self, *exc):
        self.proxy.close()
        self.rs.close()

    def submit_in_background(self, task_id: str) -> tuple[threading.Thread, dict]:
        box: dict = {}

        def run():
            with Client(self.rs.ports["orchestrator"], timeout=10.0) as c:
                box["reply"] = c.request(self.rs.envelope(
                    "submit", {"task_type": "triage", "input": TASK}, task_id=task_id, msg_id="s-1"))

        th = threading.Thread(target=run, daemon=True)
        th.start()
        self.rs.wait_for_event("orchestrator", "step_attempt", step="collect", timeout=5.0)
        return th, box


def _exit_code_and_time(rs: RefSystem, t0: float, timeout: float) -> tuple[int, float]:
    code = rs.procs["orchestrator"].wait(timeout=timeout)
    return code, time.monotonic() - t0


@pytest.mark.timeout(60)
def test_drain_answers_every_client_and_exits_zero(tmp_path):
    with _Slowed(tmp_path, grace_ms=3000) as s:
        rs = s.rs
        idle = Client(rs.ports["orchestrator"], timeout=5.0)
        try:
            assert idle.request(rs.envelope("hello", {"versions": [1], "role": "orchestrator"}))["type"] == "hello_ok"
            th, box = s.submit_in_background("drain-a")
            t0 = time.monotonic()
            rs.send_signal("orchestrator", signal.SIGTERM)
            rs.wait_for_event("orchestrator", "drain", timeout=3.0)
            time.sleep(0.4)   # well into the drain (past the server's 200 ms poll period)
            # A request on a connection that was already open: answered, not dropped.
            during = idle.request(rs.envelope("status", {}, task_id="drain-a", msg_id="st-1"))
        finally:
            idle.close()
        assert during is not None, "a request on an open connection during the drain got a silent close"
        assert during["type"] == "error" and during["error"]["name"] == "busy"
        assert during["in_reply_to"] == "st-1" and during["error"]["details"]["retry_after_ms"] >= 1
        code, elapsed = _exit_code_and_time(rs, t0, 8.0)
        th.join(5.0)
        reply = box.get("reply")
        assert reply is not None, "the in-flight submit's connection was closed without a reply"
        assert reply["in_reply_to"] == "s-1"
        # The task ends within its 3 s deadline, inside the grace period: its real outcome.
        assert reply["type"] == "submit_ok" or reply["error"]["name"] in ("upstream_failed", "timeout")
        assert code == 0, f"nothing was lost, the exit status must be 0 (got {code})"
        assert elapsed <= 3.0 + 1.0
        assert rs.events("orchestrator", "shutdown")


@pytest.mark.timeout(60)
def test_grace_shorter_than_the_task_answers_timeout_and_exits_one(tmp_path):
    with _Slowed(tmp_path, grace_ms=1000) as s:
        rs = s.rs
        th, box = s.submit_in_background("drain-b")
        t0 = time.monotonic()
        rs.send_signal("orchestrator", signal.SIGTERM)
        th.join(5.0)
        replied_after = time.monotonic() - t0
        code, elapsed = _exit_code_and_time(rs, t0, 8.0)
        reply = box.get("reply")
        assert reply is not None, "the in-flight submit's connection was closed without a reply"
        assert reply["type"] == "error" and reply["in_reply_to"] == "s-1", reply
        err = reply["error"]
        assert (err["name"], err["code"], err["definite"], err["retryable"]) == ("timeout", 1, False, True)
        assert err["details"] == {"step": "collect", "timeout_ms": 1000}
        assert replied_after <= 1.0 + 0.3, f"the reply came {replied_after:.2f} s after SIGTERM"
        assert code == 1, "work was lost (the task did not finish): the exit status must be 1"
        assert elapsed <= 1.0 + 1.0, f"exited {elapsed:.2f} s after SIGTERM with a 1 s grace"
        # The task log keeps the unfinished task; after a restart it is failed and re-runs.
        s.proxy.clear()
        rs.start("orchestrator")
        status = rs.status("drain-b")["payload"]
        assert status["status"] == "failed" and status["error"]["name"] == "timeout"
        again = rs.submit("drain-b", TASK)
        assert again["type"] == "submit_ok" and again["replay"] is False
