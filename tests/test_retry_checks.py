"""The retry checks' own parts: the backoff bounds, the promised detection of full
jitter, and the fake agent's definite refusals and receive timestamps."""
from __future__ import annotations

import json
import random
import socket
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graders.checks.faults import (BACKOFF_ENV, BACKOFF_TASKS, LOWER_SLACK_MS, backoff_d,
                                   full_jitter_miss_probability, gap_problems)
from graders.faults.fake_agent import DEFINITE_REFUSALS, MODES, FakeAgent

S = {k: int(v) for k, v in BACKOFF_ENV.items()}
PER_TASK = S["FD_RETRY_MAX_ATTEMPTS"] - 1


def test_the_check_meets_the_promised_detection_of_full_jitter():
    """Issue 11: full jitter caught with probability >= 0.999 on every grade, even if
    the orchestrator adds 30 ms to every wait."""
    gaps = BACKOFF_TASKS * PER_TASK
    assert gaps >= 10
    assert full_jitter_miss_probability(S, gaps, PER_TASK, overhead_ms=30.0) <= 1e-3


@given(st.integers(0, 2 ** 32))
def test_equal_jitter_waits_always_pass(seed):
    rng = random.Random(seed)
    gaps = [rng.uniform(backoff_d(S, n) / 2, backoff_d(S, n)) + rng.uniform(0, 20) for n in range(1, 8)]
    assert gap_problems(gaps, S, upper_slack_ms=100) == []


def test_bounds_and_the_cap():
    assert [backoff_d(S, n) for n in range(1, 8)] == [100, 200, 200, 200, 200, 200, 200]
    assert gap_problems([100 / 2 - LOWER_SLACK_MS - 1], S, 100)            # too short
    assert not gap_problems([100 / 2 - LOWER_SLACK_MS + 1], S, 100)
    uncapped = [100 * 2 ** (n - 1) * 0.5 for n in range(1, 8)]              # [d/2] without the cap
    assert any("at most" in p for p in gap_problems(uncapped, S, 500))


def test_a_simulated_full_jitter_orchestrator_is_caught_on_every_seed():
    caught = 0
    for seed in range(300):
        rng = random.Random(seed)
        if any(gap_problems([rng.uniform(0, backoff_d(S, n)) for n in range(1, 8)], S, 100)
               for _task in range(BACKOFF_TASKS)):
            caught += 1
    assert caught == 300


def _work(agent: FakeAgent, frame: dict, *, keep: socket.socket | None = None):
    s = keep or socket.create_connection(agent.address, timeout=3)
    s.sendall(json.dumps(frame).encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return s, json.loads(buf)


@pytest.mark.parametrize("name", sorted(DEFINITE_REFUSALS))
def test_fake_agent_refuses_with_each_definite_error(name):
    assert f"refuse_{name}" in MODES
    with FakeAgent("collector", f"refuse_{name}") as agent:
        s, reply = _work(agent, {"v": 1, "type": "collect", "msg_id": "m1", "task_id": "t-9", "token": "x",
                                 "payload": {}})
        s.close()
    err = reply["error"]
    assert (err["code"], err["name"], err["definite"], err["retryable"]) == (DEFINITE_REFUSALS[name][0], name,
                                                                             True, False)
    assert reply["in_reply_to"] == "m1"
    if name == "idempotency_conflict":
        assert err["details"]["task_id"] == "t-9"


def test_fake_agent_times_arrivals_and_replies():
    with FakeAgent("analyzer", "internal_error") as agent:
        s = None
        for i in range(3):
            t0 = time.time()
            s, reply = _work(agent, {"v": 1, "type": "analyze", "msg_id": f"m{i}", "task_id": "t", "token": "x",
                                     "payload": {}}, keep=s)
            assert reply["error"]["code"] == 14
            time.sleep(0.05)
        s.close()
        arrivals, sent = list(agent.work_arrivals), list(agent.reply_sent)
    assert len(arrivals) == len(sent) == 3
    assert all(a <= r for a, r in zip(arrivals, sent))
    gaps = [(b - a) for a, b in zip(sent, arrivals[1:])]
    assert all(0.04 < g < 1.0 for g in gaps), gaps
    assert t0 - 1 < arrivals[-1] < time.time()
