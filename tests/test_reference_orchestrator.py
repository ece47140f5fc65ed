"""Unit tests of the orchestrator's pure-ish parts: backoff, routing, pipeline, task table,
dashboard. No sockets: the pipeline runs against a fake agent, a fake clock and a fake sleep,
so timing rules (equal-jitter gaps, deadlines) are checked exactly and deterministically.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl.memory.store import RecordStore, utc_timestamp
from reference_impl.orchestrator import dashboard
from reference_impl.orchestrator.backoff import backoff_ceiling_ms, backoff_delay_ms
from reference_impl.orchestrator.pipeline import Attempt, Settings, run_pipeline, transport_cause
from reference_impl.orchestrator.routing import (DEFAULT_ROUTES, RoutesError, build_step_payload,
                                                 effective_thresholds, parse_routes)
from reference_impl.orchestrator.tasks import TaskTable
from reference_impl.protocol.errors import ProtocolError, make_error_object
from reference_impl.work import STEPS

HSET = settings(max_examples=150, derandomize=True, deadline=None)

INPUT = {"source": "web-1", "records": [
    "2026-11-29T10:00:00Z ERROR payments 120 card declined",
    "2026-11-29T10:00:01Z info payments 80 ok",
    "2026-11-29T10:00:02Z WARNING search 1500 slow query",
    "not a log line", 42,
    "2026-11-29T10:00:03Z fatal Payments 2500 card  declined"],
    "thresholds": {"error_permille": 100, "p95_latency_ms": 1000}}


# -- backoff ----------------------------------------------------------------------------------

@HSET
@given(n=st.integers(1, 40), base=st.integers(0, 5000), cap=st.integers(0, 60000),
       seed=st.integers(0, 2**32), retry_after=st.none() | st.integers(1, 10000))
def test_backoff_is_equal_jitter_with_retry_after_floor(n, base, cap, seed, retry_after):
    d = min(cap, base * 2 ** (n - 1))
    assert backoff_ceiling_ms(n, base, cap) == d
    delay = backoff_delay_ms(n, base, cap, random.Random(seed), retry_after)
    if retry_after is not None and retry_after > d:
        assert delay == retry_after
    else:
        assert d / 2 <= delay <= max(d, retry_after or 0)


def test_backoff_needs_an_attempt_first():
    with pytest.raises(ValueError):
        backoff_ceiling_ms(0, 100, 1000)


# -- routing ----------------------------------------------------------------------------------

def test_routes_default_and_valid():
    assert parse_routes(None) == DEFAULT_ROUTES
    assert parse_routes('{"a": ["collect"], "b": ["collect", "analyze"]}') == {
        "a": ["collect"], "b": ["collect", "analyze"]}


@pytest.mark.parametrize("bad", ["not json", "[]", "{}", '{"a": []}', '{"a": ["analyze"]}',
                                 '{"a": ["collect", "report"]}', '{"a": ["collect", "frob"]}',
                                 '{"a": ["collect", "collect"]}', '{"a": "collect"}'])
def test_routes_invalid(bad):
    with pytest.raises(RoutesError):
        parse_routes(bad)


def test_thresholds_and_payloads():
    assert effective_thresholds({"thresholds": {"p95_latency_ms": 5}}, {"error_permille": 50, "p95_latency_ms": 1000}) \
        == {"error_permille": 50, "p95_latency_ms": 5}
    c = {"source": "s", "events": [], "rejected": [], "counts": {}}
    assert build_step_payload("collect", INPUT, None, {}) == {"source": "web-1", "records": INPUT["records"]}
    assert build_step_payload("analyze", INPUT, c, {}) == {"source": "s", "events": []}
    assert build_step_payload("report", INPUT, {"x": 1}, {"e": 1}) == {"analysis": {"x": 1}, "thresholds": {"e": 1}}


# -- pipeline -------------------------------------------------------------------------------------

class FakeTime:
    def __init__(self, call_cost: float = 0.001) -> None:
        self.t = 100.0
        self.call_cost = call_cost
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        assert s >= 0
        self.sleeps.append(s)
        self.t += s


class FakeAgents:
    """Real step functions behind a scripted sequence of failures per step."""

    def __init__(self, ft: FakeTime, script: dict[str, list] | None = None) -> None:
        self.ft = ft
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.calls: list[tuple[str, dict, float, float]] = []

    def __call__(self, step: str, payload: dict, timeout_s: float) -> Attempt:
        self.calls.append((step, payload, timeout_s, self.ft.t))
        planned = self.script.get(step)
        if planned:
            outcome = planned.pop(0)
            if outcome == "hang":
                self.ft.t += timeout_s
                return Attempt("transport", error=transport_cause("timeout", "attempt timed out",
                                                                  step=step, timeout_ms=int(timeout_s * 1000)))
            self.ft.t += self.ft.call_cost
            return outcome
        self.ft.t += self.ft.call_cost
        return Attempt("ok", payload=STEPS[step](payload))


def refused() -> Attempt:
    return Attempt("transport", error=transport_cause("internal_error", "connection refused"))


def err(name: str, **details) -> Attempt:
    return Attempt("error", error=make_error_object(name, name, **details))


def run(ft, agents, *, steps=("collect", "analyze", "report"), deadline_s=10.0, st_=None, validate=None, seed=7):
    events = []
    out = run_pipeline(list(steps), INPUT, effective_thresholds(INPUT, {"error_permille": 50, "p95_latency_ms": 1000}),
                       call=agents, validate_output=validate or (lambda s, p: None),
                       settings=st_ or Settings(attempt_timeout_ms=500, max_attempts=4, base_ms=100, cap_ms=800),
                       deadline=ft.t + deadline_s, deadline_ms=int(deadline_s * 1000), clock=ft.clock,
                       sleep=ft.sleep, rng=random.Random(seed), now_iso=utc_timestamp,
                       on_event=lambda e, **f: events.append((e, f)))
    return out, events


def test_pipeline_worked_example():
    ft = FakeTime()
    out, events = run(ft, FakeAgents(ft))
    assert out.ok and out.error is None
    assert out.result == {
        "source": "web-1", "status": "critical",
        "alerts": [
            {"service": "payments", "kind": "error_rate", "severity": "critical", "value": 666, "threshold": 100},
            {"service": "payments", "kind": "latency", "severity": "critical", "value": 2500, "threshold": 1000},
            {"service": "search", "kind": "latency", "severity": "warning", "value": 1500, "threshold": 1000}],
        "summary": "4 events from 2 services; 3 alerts; status critical"}
    assert [s["step"] for s in out.steps] == ["collect", "analyze", "report"]
    assert all(s["status"] == "succeeded" and s["attempts"] == 1 for s in out.steps)
    assert ft.sleeps == []
    assert [e for e, _ in events if e == "step_attempt"] == ["step_attempt"] * 3


def test_pipeline_retries_with_growing_equal_jitter_gaps():
    ft = FakeTime()
    agents = FakeAgents(ft, {"analyze": [refused(), refused(), err("busy", retry_after_ms=1)]})
    out, events = run(ft, agents)
    assert out.ok
    assert out.steps[1]["attempts"] == 4
    assert len(ft.sleeps) == 3
    for n, gap in enumerate(ft.sleeps, start=1):
        d = min(800, 100 * 2 ** (n - 1)) / 1000
        assert d / 2 <= gap <= d
    scheduled = [f for e, f in events if e == "retry_scheduled"]
    assert [f["attempt"] for f in scheduled] == [1, 2, 3]


def test_pipeline_busy_retry_after_is_a_floor():
    ft = FakeTime()
    out, _ = run(ft, FakeAgents(ft, {"collect": [err("busy", retry_after_ms=700)]}))
    assert out.ok and ft.sleeps == [0.7]


@pytest.mark.parametrize("name,details", [
    ("unauthorized", {}), ("schema_violation", {"path": "$.payload", "expected": "object"}),
    ("unsupported_version", {"supported": [1]}), ("idempotency_conflict", {"task_id": "t"}),
    ("not_supported", {"type": "collect"}), ("malformed_frame", {"reason": "x"}),
])
def test_pipeline_never_retries_definite_errors(name, details):
    ft = FakeTime()
    out, _ = run(ft, FakeAgents(ft, {"analyze": [err(name, **details)]}))
    assert not out.ok and ft.sleeps == []
    e = out.error
    assert e["name"] == "upstream_failed" and e["code"] == 40
    assert e["details"]["step"] == "analyze" and e["details"]["agent"] == "analyzer"
    assert e["details"]["attempts"] == 1 and e["details"]["cause"]["name"] == name
    assert [s["status"] for s in out.steps] == ["succeeded", "failed"]


def test_pipeline_gives_up_after_max_attempts_with_last_cause():
    ft = FakeTime()
    out, _ = run(ft, FakeAgents(ft, {"report": [refused()] * 10}))
    assert not out.ok
    assert out.error["details"]["attempts"] == 4
    assert out.error["details"]["cause"]["message"] == "connection refused"
    assert out.error["details"]["cause"]["code"] == 14
    assert len(ft.sleeps) == 3


def test_pipeline_deadline_bounds_attempts_and_fails_with_timeout():
    ft = FakeTime()
    agents = FakeAgents(ft, {"collect": ["hang"] * 10})
    out, _ = run(ft, agents, deadline_s=1.2, st_=Settings(attempt_timeout_ms=500, max_attempts=10, base_ms=100, cap_ms=100))
    assert not out.ok
    assert out.error["name"] == "timeout" and out.error["details"]["step"] == "collect"
    assert out.error["details"]["timeout_ms"] == 1200
    start = 100.0
    for _step, _payload, timeout_s, at in agents.calls:
        assert at < start + 1.2                      # no attempt starts after the deadline
        assert at + timeout_s <= start + 1.2 + 1e-9  # no attempt's wait extends past it
        assert timeout_s <= 0.5


def test_pipeline_invalid_output_ends_task_without_retry():
    ft = FakeTime()

    def validate(step, payload):
        if step == "analyze":
            raise ProtocolError("schema_violation", "bad", path="$.payload.total", expected="integer >= 0")

    out, _ = run(ft, FakeAgents(ft), validate=validate)
    assert not out.ok and ft.sleeps == []
    cause = out.error["details"]["cause"]
    assert cause["name"] == "schema_violation" and cause["details"]["path"].startswith("$.payload")


outcomes = st.sampled_from(["ok", "refused", "busy", "hang", "internal", "conflict"])


@HSET
@given(script=st.lists(outcomes, max_size=12), seed=st.integers(0, 1000),
       max_attempts=st.integers(1, 5), deadline_s=st.floats(0.3, 6.0))
def test_pipeline_invariants(script, seed, max_attempts, deadline_s):
    """Whatever the agents do: attempts <= max, gaps >= d/2, nothing after the deadline."""
    mapping = {"ok": None, "refused": refused(), "busy": err("busy", retry_after_ms=5), "hang": "hang",
               "internal": err("internal_error"), "conflict": err("idempotency_conflict", task_id="t")}
    planned = [mapping[s] for s in script]
    ft = FakeTime(call_cost=0.01)
    agents = FakeAgents(ft, {"collect": [p for p in planned if p is not None]})
    start = ft.t
    out, events = run(ft, agents, steps=("collect",), deadline_s=deadline_s, seed=seed,
                      st_=Settings(attempt_timeout_ms=400, max_attempts=max_attempts, base_ms=50, cap_ms=300))
    assert len(agents.calls) <= max_attempts
    for _s, _p, timeout_s, at in agents.calls:
        assert at < start + deadline_s and at + timeout_s <= start + deadline_s + 1e-9
    for n, gap in enumerate(ft.sleeps, start=1):
        assert gap >= min(300, 50 * 2 ** (n - 1)) / 2000 - 1e-9
    if out.ok:
        assert out.result["source"] == "web-1"
    else:
        assert out.error["name"] in ("upstream_failed", "timeout")
        if out.error["name"] == "upstream_failed":
            assert out.error["details"]["attempts"] == len(agents.calls)


# -- task table -------------------------------------------------------------------------------------

def make_table(tmp_path, retention=100):
    store = RecordStore(tmp_path / "mem", retention)
    store.load()
    table = TaskTable(store, now_iso=utc_timestamp, deadline_ms=4000)
    table.recover()
    return store, table


def test_task_table_idempotency_verdicts(tmp_path):
    _, table = make_table(tmp_path)
    accept = lambda tid: True  # noqa: E731
    assert table.admit("t1", "triage", INPUT, accept)[0] == "queued"
    assert table.admit("t1", "triage", INPUT, accept)[0] == "in_progress"
    assert table.admit("t1", "parse", INPUT, accept)[0] == "conflict"
    reordered = {k: INPUT[k] for k in reversed(list(INPUT))}
    assert table.admit("t1", "triage", reordered, accept)[0] == "in_progress"
    table.mark_running("t1")
    table.finish("t1", ok=False, result=None, error=make_error_object("timeout", "x", step="collect", timeout_ms=1),
                 steps=[])
    assert table.admit("t1", "triage", INPUT, accept)[0] == "queued"  # failed -> run again
    table.finish("t1", ok=True, result={"r": 1}, error=None, steps=[])
    verdict, rec = table.admit("t1", "triage", INPUT, accept)
    assert verdict == "replay" and rec["result"] == {"r": 1}
    assert table.admit("t1", "triage", {**INPUT, "source": "other"}, accept)[0] == "conflict"
    assert table.admit("t2", "triage", INPUT, lambda tid: False) == ("busy", None)
    assert table.lookup("t2") is None


@pytest.mark.parametrize("log_max", [4096, 1])
def test_task_table_forgets_what_retention_pruned_and_keeps_active_tasks(tmp_path, monkeypatch, log_max):
    """O(pruned) per put through ``take_pruned``; with the store's log overflowing
    (log_max=1) the whole-table comparison takes over and gives the same answer."""
    from reference_impl.memory import store as store_mod
    monkeypatch.setattr(store_mod, "PRUNED_LOG_MAX", log_max)
    store, table = make_table(tmp_path, retention=3)
    table.admit("active", "triage", INPUT, lambda t: True)   # stays queued: never forgotten
    for i in range(6):
        table.admit(f"t{i}", "triage", INPUT, lambda t: True)
        table.finish(f"t{i}", ok=True, result={"r": i}, error=None, steps=[])
    assert store.task_ids() == ["t3", "t4", "t5"]
    assert table.lookup("active")["status"] == "queued"
    for i in range(3):
        assert table.lookup(f"t{i}") is None
    assert table.lookup("t5")["result"] == {"r": 5}
    assert [t["task_id"] for t in table.list_payload()["tasks"]] == ["t5", "t4", "t3", "active"]


def test_task_table_recovers_active_tasks_as_failed(tmp_path):
    store, table = make_table(tmp_path)
    table.admit("a", "triage", INPUT, lambda t: True)
    table.mark_running("a")
    table.update_steps("a", [{"step": "collect", "agent": "collector", "status": "running", "attempts": 1,
                              "started_at": utc_timestamp(), "finished_at": None, "error": None}])
    table.admit("b", "triage", INPUT, lambda t: True)
    store2 = RecordStore(tmp_path / "mem", 100)
    store2.load()
    table2 = TaskTable(store2, now_iso=utc_timestamp, deadline_ms=4000)
    assert sorted(table2.recover()) == ["a", "b"]
    a = table2.lookup("a")
    assert a["status"] == "failed" and a["error"]["name"] == "timeout"
    # Step progress is kept in memory only (two durable writes per run: admission and
    # finish), so the crashed task's record names no step; `timeout.details.step` may be
    # null (SPEC §6).
    assert a["error"]["details"]["step"] is None and a["steps"] == []
    assert store2.get("a")["status"] == "failed"
    assert table2.admit("a", "triage", INPUT, lambda t: True)[0] == "queued"


def test_task_table_list_and_alerts(tmp_path):
    _, table = make_table(tmp_path)
    for i in range(6):
        table.admit(f"t{i}", "triage", INPUT, lambda t: True)
        table.finish(f"t{i}", ok=i % 2 == 0, result={} if i % 2 == 0 else None,
                     error=None if i % 2 == 0 else make_error_object("timeout", "x", step=None, timeout_ms=1), steps=[])
    assert [t["task_id"] for t in table.list_payload(3)["tasks"]] == ["t5", "t4", "t3"]
    alerts = table.alerts()
    assert len(alerts) == 1 and alerts[0]["name"] == "TaskErrorRateHigh" and alerts[0]["value"] == 0.5
    for i in range(6, 30):
        table.admit(f"t{i}", "triage", INPUT, lambda t: True)
        table.finish(f"t{i}", ok=True, result={}, error=None, steps=[])
    assert table.alerts() == []


def test_dashboard_escapes_everything():
    evil = "<script>alert(1)</script>"
    html = dashboard.render([{"task_id": evil, "task_type": "triage", "status": "failed", "submitted_at": "x",
                              "finished_at": None, "result": None,
                              "error": make_error_object("internal_error", evil),
                              "steps": [{"step": "collect", "agent": "collector", "status": "failed", "attempts": 2,
                                         "started_at": "a", "finished_at": "b",
                                         "error": make_error_object("internal_error", evil)}]}], [])
    assert "<script>" not in html and "&lt;script&gt;" in html
