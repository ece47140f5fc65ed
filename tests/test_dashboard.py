"""The orchestrator's dashboard and its JSON API: refused requests, per-attempt timings, trace ids.

Unit level first (the refusal log, the pipeline's attempt entries, the task table's attempt
store, the HTML), then one reference system on loopback that is sent requests refused for
each reason and a task whose agent is down, and whose API and page must say so, with the
trace id that the orchestrator's own log lines carry.
"""
from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl.memory.store import RecordStore, utc_timestamp
from reference_impl.orchestrator import dashboard
from reference_impl.orchestrator.pipeline import Attempt, Settings, run_pipeline, transport_cause
from reference_impl.orchestrator.refusals import RefusalLog, UNAUTHENTICATED_TEXT
from reference_impl.orchestrator.tasks import ATTEMPT_LOGS_MAX, TaskTable
from reference_impl.protocol.errors import ProtocolError, error_reply, make_error_object
from reference_impl.work import STEPS

sys.path.insert(0, str(Path(__file__).resolve().parent))  # refsystem.py sits next to this file
from refsystem import FAST_ENV, RefSystem, http_get  # noqa: E402

SECRET = "tok-dashboard-secret-9f8e7d"
INPUT = {"source": "web-1", "records": ["2026-11-29T10:00:00Z ERROR payments 120 card declined"]}


def _reply(name: str, msg_id: str | None = "m-1", task_id: str | None = None, **details) -> dict:
    if name == "idempotency_conflict":
        details.setdefault("task_id", task_id)
    err = ProtocolError(name, f"{name} happened", **details).error_object()
    return error_reply(err, msg_id, task_id)


# -- the refusal log ----------------------------------------------------------------------

def test_refusal_log_counts_by_reason_and_keeps_the_newest_first():
    log = RefusalLog(now_iso=lambda: "2026-12-01T10:00:00.000Z", capacity=3)
    log.record(_reply("busy", retry_after_ms=50), request_type="submit", peer="127.0.0.1:5", authenticated=True,
               trace_id="a" * 32)
    for i in range(3):
        log.record(_reply("unauthorized"), request_type="other", peer=f"127.0.0.1:{i}", authenticated=False)
    log.record(_reply("idempotency_conflict", task_id="t-9", msg_id="m-9"), request_type="submit",
               peer="127.0.0.1:9", authenticated=True, trace_id="b" * 32)
    snap = log.snapshot()
    assert snap["total"] == 5
    assert snap["counts"] == {"unauthorized": 3, "busy": 1, "idempotency_conflict": 1}
    assert list(snap["counts"]) == ["unauthorized", "busy", "idempotency_conflict"]  # most frequent first
    assert len(snap["recent"]) == 3  # the ring buffer's capacity, newest first
    newest = snap["recent"][0]
    assert newest == {"at": "2026-12-01T10:00:00.000Z", "reason": "idempotency_conflict", "code": 30,
                      "type": "submit", "peer": "127.0.0.1:9", "msg_id": "m-9", "task_id": "t-9",
                      "trace_id": "b" * 32, "message": "idempotency_conflict happened"}
    assert [r["reason"] for r in snap["recent"][1:]] == ["unauthorized", "unauthorized"]
    assert log.snapshot(limit=1)["recent"] == [newest]


def test_an_unauthenticated_refusal_keeps_nothing_the_peer_sent():
    log = RefusalLog(now_iso=lambda: "t")
    wrong = "WRONG-token-value-123456"
    reply = _reply("unauthorized", msg_id=wrong, task_id=wrong)
    reply["error"]["message"] = f"unauthorized: {wrong}"
    log.record(reply, request_type="hello", peer="10.0.0.1:4", authenticated=False, trace_id="c" * 32)
    entry = log.snapshot()["recent"][0]
    assert entry["msg_id"] is None and entry["task_id"] is None and entry["trace_id"] is None
    assert entry["message"] == UNAUTHENTICATED_TEXT
    assert wrong not in json.dumps(log.snapshot())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["busy", "schema_violation", "not_found", "frobnicated"]),
                          st.text(max_size=400), st.booleans()), max_size=40))
def test_refusal_log_is_bounded_and_never_shows_the_token(events):
    log = RefusalLog(now_iso=lambda: "t", capacity=7, secrets=(SECRET,))
    for name, text, authenticated in events:
        reply = {"v": 1, "type": "error", "in_reply_to": text + SECRET, "task_id": SECRET + text,
                 "error": {"name": name, "code": 11, "message": text + SECRET + text}}
        log.record(reply, request_type="submit", peer="p", authenticated=authenticated)
    snap = log.snapshot()
    assert snap["total"] == len(events) == sum(snap["counts"].values())
    assert len(snap["recent"]) == min(7, len(events))
    assert set(snap["counts"]) <= {"busy", "schema_violation", "not_found", "other"}
    assert SECRET not in json.dumps(snap)
    for entry in snap["recent"]:
        assert len(entry["message"] or "") <= 200 and len(entry["msg_id"] or "") <= 64


# -- per-attempt entries from the pipeline -------------------------------------------------

class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


def test_pipeline_reports_every_attempt_with_start_duration_and_cause():
    clock = FakeClock()
    script = iter([("transport", 0.5), ("busy", 0.01), ("ok", 0.2)])
    stamps = iter(f"2026-12-01T10:00:{i:02d}.000Z" for i in range(100))

    def call(step, payload, timeout_s):
        if step != "collect":
            clock.t += 0.05
            return Attempt("ok", payload=STEPS[step](payload))
        kind, took = next(script)
        clock.t += took
        if kind == "transport":
            return Attempt("transport", error=transport_cause("timeout", "attempt timed out after 500 ms",
                                                              step="collect", timeout_ms=500))
        if kind == "busy":
            return Attempt("error", error=make_error_object("busy", "queue full", retry_after_ms=10))
        return Attempt("ok", payload=STEPS["collect"](payload))

    entries = []
    out = run_pipeline(["collect", "analyze", "report"], INPUT, {"error_permille": 50, "p95_latency_ms": 1000},
                       call=call, validate_output=lambda s, p: None, settings=Settings(base_ms=10, cap_ms=40),
                       deadline=clock() + 10, deadline_ms=10000, clock=clock, sleep=clock.sleep,
                       now_iso=lambda: next(stamps), on_attempt=entries.append)
    assert out.ok
    collect = [e for e in entries if e["step"] == "collect"]
    assert [e["attempt"] for e in collect] == [1, 2, 3]
    assert [e["outcome"] for e in collect] == ["transport", "error", "ok"]
    assert [e["duration_ms"] for e in collect] == [500.0, 10.0, 200.0]
    assert collect[0]["cause"] == {"name": "timeout", "code": 1, "message": "attempt timed out after 500 ms"}
    assert collect[1]["cause"]["name"] == "busy" and collect[2]["cause"] is None
    assert all(e["agent"] == "collector" for e in collect)
    assert len({e["started_at"] for e in entries}) == len(entries)  # each attempt its own start
    assert [e["step"] for e in entries[3:]] == ["analyze", "report"]
    # The step records (the contract's) still say only how many attempts there were.
    assert out.steps[0]["attempts"] == 3 and "attempt_log" not in out.steps[0]


def test_pipeline_reports_an_invalid_output_attempt():
    entries = []

    def bad_output(step, payload):
        raise ProtocolError("schema_violation", "$.payload.events: required", path="$.payload.events",
                            expected="required")

    out = run_pipeline(["collect"], INPUT, {}, call=lambda s, p, t: Attempt("ok", payload={"x": 1}),
                       validate_output=bad_output, settings=Settings(), deadline=1e12, deadline_ms=1,
                       on_attempt=entries.append)
    assert not out.ok
    assert [(e["outcome"], e["cause"]["name"]) for e in entries] == [("invalid_output", "schema_violation")]


# -- the task table keeps them beside the records ------------------------------------------

def test_task_table_keeps_attempts_per_run_bounded_and_out_of_the_records(tmp_path):
    store = RecordStore(tmp_path, 100)
    store.load()
    table = TaskTable(store, now_iso=utc_timestamp)
    assert table.admit("t1", "triage", INPUT, lambda t: True)[0] == "queued"
    table.add_attempt("t1", {"step": "collect", "attempt": 1})
    table.add_attempt("t1", {"step": "collect", "attempt": 2})
    assert [a["attempt"] for a in table.attempts("t1")] == [1, 2]
    table.finish("t1", ok=False, result=None, error=make_error_object("internal_error", "x"), steps=[])
    assert "attempt_log" not in json.dumps(store.get("t1"))  # never in the durable record
    assert table.admit("t1", "triage", INPUT, lambda t: True)[0] == "queued"  # a failed task re-runs
    assert table.attempts("t1") == []  # the new run starts a new attempt log
    for i in range(ATTEMPT_LOGS_MAX + 5):
        table.add_attempt(f"x{i}", {"attempt": 1})
    assert table.attempts("x0") == [] and table.attempts(f"x{ATTEMPT_LOGS_MAX + 4}") == [{"attempt": 1}]


# -- the page ---------------------------------------------------------------------------

def test_dashboard_shows_refusals_trace_ids_and_attempts_escaped():
    evil = "<img src=x onerror=alert(1)>"
    task = {"task_id": "t-1", "task_type": "triage", "status": "failed", "submitted_at": "s",
            "finished_at": "f", "result": None, "error": make_error_object("internal_error", "boom"),
            "steps": [{"step": "collect", "agent": "collector", "status": "failed", "attempts": 2,
                       "started_at": "a", "finished_at": "b", "error": None}],
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "attempt_log": [{"step": "collect", "agent": "collector", "attempt": 1,
                             "started_at": "2026-12-01T10:00:01.250Z", "duration_ms": 500.0,
                             "outcome": "transport", "cause": {"name": "timeout", "code": 1, "message": evil}},
                            {"step": "collect", "agent": "collector", "attempt": 2,
                             "started_at": "2026-12-01T10:00:01.900Z", "duration_ms": 3.5,
                             "outcome": "error", "cause": {"name": "busy", "code": 11, "message": "full"}}]}
    refused = {"total": 2, "capacity": 100, "counts": {"unauthorized": 1, "busy": 1},
               "recent": [{"at": "2026-12-01T10:00:02.000Z", "reason": "busy", "code": 11, "type": "submit",
                           "peer": "127.0.0.1:1", "msg_id": evil, "task_id": "t-2", "trace_id": None,
                           "message": evil}]}
    html = dashboard.render([task], [], refused=refused)
    assert "<img" not in html and "&lt;img" in html
    assert "Refused requests (2)" in html and "unauthorized</span> 1" in html
    assert "trace 4bf92f3577b34da6a3ce929d0e0e4736" in html
    assert "10:00:01.250" in html and "500.0 ms" in html and "3.5 ms" in html
    assert "timeout (1)" in html and "busy (11): full" in html
    assert dashboard.render([task], []).count("Refused requests") == 0  # no log, no section


# -- the real thing -----------------------------------------------------------------------

def test_reference_orchestrator_lists_refusals_and_attempts(tmp_path):
    run = uuid.uuid4().hex[:6]
    with RefSystem(tmp_path, env=FAST_ENV) as ref:
        port = ref.http_ports["orchestrator"]
        with ref.client() as c:
            bad = c.request({"v": 1, "type": "submit", "msg_id": "m-bad", "task_id": "t-x",
                             "token": "WRONG-" + run, "payload": {}})
            assert bad["error"]["name"] == "unauthorized"
            schema = c.request(ref.envelope("submit", {"task_type": "triage"}, task_id=f"s-{run}",
                                            msg_id="m-schema"))
            assert schema["error"]["name"] == "schema_violation"
            version = c.request(dict(ref.envelope("hello", {"versions": [7], "role": "orchestrator"},
                                                  msg_id="m-hello")))
            assert version["error"]["name"] == "unsupported_version"
            missing = c.request(ref.envelope("status", {}, task_id=f"nope-{run}", msg_id="m-status"))
            assert missing["error"]["name"] == "not_found"
        ok_id = f"ok-{run}"
        assert ref.submit(ok_id, INPUT)["type"] == "submit_ok"
        other = dict(INPUT, source="web-2")
        assert ref.submit(ok_id, other)["error"]["name"] == "idempotency_conflict"
        ref.kill("analyzer")
        fail_id = f"fail-{run}"
        failed = ref.submit(fail_id, INPUT)
        assert failed["error"]["name"] == "upstream_failed"  # a task's outcome, not a refusal

        status, ctype, body = http_get(port, "/api/refused")
        assert status == 200 and ctype.startswith("application/json")
        refused = json.loads(body)
        assert refused["counts"] == {"unauthorized": 1, "schema_violation": 1, "unsupported_version": 1,
                                     "not_found": 1, "idempotency_conflict": 1}, refused
        assert refused["total"] == 5
        by_reason = {r["reason"]: r for r in refused["recent"]}
        assert by_reason["unauthorized"]["msg_id"] is None and "WRONG-" + run not in body.decode()
        assert by_reason["schema_violation"]["msg_id"] == "m-schema"
        assert by_reason["idempotency_conflict"]["task_id"] == ok_id
        assert by_reason["schema_violation"]["peer"].startswith("127.0.0.1:")
        assert ref.token not in body.decode()

        status, _, body = http_get(port, f"/api/tasks/{fail_id}/attempts")
        assert status == 200
        detail = json.loads(body)
        analyze = [a for a in detail["attempts"] if a["step"] == "analyze"]
        assert len(analyze) == 4 and [a["attempt"] for a in analyze] == [1, 2, 3, 4]
        assert all(a["outcome"] == "transport" and a["cause"]["name"] in ("timeout", "internal_error")
                   and a["duration_ms"] >= 0 for a in analyze)
        assert [a["outcome"] for a in detail["attempts"] if a["step"] == "collect"] == ["ok"]
        # The trace id is the one the orchestrator's log lines about the task carry.
        assert len(detail["trace_id"]) == 32
        lines = [r for r in ref.logs("orchestrator") if r.get("task_id") == fail_id]
        assert lines and {r.get("trace_id") for r in lines} == {detail["trace_id"]}
        assert http_get(port, f"/api/tasks/nope-{run}/attempts")[0] == 404

        status, _, page = http_get(port, "/")
        html = page.decode()
        assert "Refused requests (5)" in html and f"trace {detail['trace_id']}" in html
        assert ref.token not in html and "WRONG-" + run not in html
