"""The SPEC contradictions of issue 11 item 5, as decided in challenges/SPEC.md, in the
reference (unit level) and end to end: per-service frame limits and the \\r of \\r\\n,
the valid range of every §2 variable on both sides, a msg_id/task_id holding the token,
hello in a v2 envelope, details.step for a task whose deadline passed before any step,
JSON equality of numbers beyond 2^53, and the largest valid task on every route.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from graders import oracle
from reference_impl.orchestrator.pipeline import Settings, run_pipeline
from reference_impl.protocol.envelope import parse_request, reply_for_error
from reference_impl.protocol.errors import ProtocolError
from reference_impl.protocol.framing import AGENT_MAX_FRAME_BYTES, MAX_FRAME_BYTES, FrameDecoder
from reference_impl.protocol.schema import json_equal
from reference_impl.runtime.config import ConfigError, load_config

TOKEN = "s3cret-token"
DAY = 86_400_000
#: SPEC §2 "valid values", integer rows: (variable, lowest, highest).
RANGES = [
    ("FD_MEMORY_RETENTION", 1, 10_000_000), ("FD_ATTEMPT_TIMEOUT_MS", 1, DAY),
    ("FD_TASK_DEADLINE_MS", 1, DAY), ("FD_IDLE_TIMEOUT_MS", 1, DAY), ("FD_RETRY_BASE_MS", 0, DAY),
    ("FD_RETRY_CAP_MS", 0, DAY), ("FD_SHUTDOWN_GRACE_MS", 0, DAY), ("FD_RETRY_MAX_ATTEMPTS", 1, 100),
    ("FD_QUEUE_SIZE", 0, 1_000_000), ("FD_WORKERS", 1, 1024), ("FD_MAX_CONNECTIONS", 1, 100_000),
    ("FD_LISTEN_PORT", 0, 65535), ("FD_HTTP_PORT", 0, 65535),
]


def _hello(size: int) -> bytes:
    body = json.dumps({"v": 1, "type": "hello", "msg_id": "m", "token": TOKEN,
                       "payload": {"versions": [1]}}, separators=(",", ":")).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


# --- §4 frame limits ---------------------------------------------------------------------

# (7-byte chunks of 16 MiB would take minutes; the 1 MiB case covers odd chunkings.)
@pytest.mark.parametrize("limit,chunk", [(MAX_FRAME_BYTES, 65536), (MAX_FRAME_BYTES, 1 << 20),
                                         (MAX_FRAME_BYTES, 4093), (AGENT_MAX_FRAME_BYTES, 65536),
                                         (AGENT_MAX_FRAME_BYTES, 1 << 20)])
def test_a_frame_of_exactly_the_limit_with_crlf_is_read_one_more_byte_is_refused(limit, chunk):
    for size, newline, ok in ((limit, b"\r\n", True), (limit + 1, b"\n", False), (limit + 1, b"\r\n", False)):
        dec, data, out = FrameDecoder(limit), _hello(size) + newline, []
        for i in range(0, len(data), chunk):
            out += dec.feed(data[i:i + chunk])
        assert len(out) == 1, (size, newline)
        if ok:
            assert out[0].kind == "frame"
        else:
            assert out[0].value["error"]["name"] == "frame_too_large" and out[0].close
            assert out[0].value["error"]["details"]["limit_bytes"] == limit


# --- §2 valid values ---------------------------------------------------------------------

@pytest.mark.parametrize("name,lo,hi", RANGES)
def test_both_ends_of_every_range_are_valid_and_one_past_is_not(name, lo, hi):
    base = {"FD_TOKEN": TOKEN, "FD_LISTEN_PORT": "7000", "FD_HTTP_PORT": "7100"}
    for value in (lo, hi):
        env = dict(base, **{name: f" {value}\t"})
        if name == "FD_HTTP_PORT" and value == 0:
            env["FD_LISTEN_PORT"] = "7000"
        if name == "FD_LISTEN_PORT":
            env["FD_HTTP_PORT"] = "7100" if value != 7100 else "7200"
        load_config("collector", env)
    for value in ([str(lo - 1)] if lo > 0 else ["-1"]) + [str(hi + 1), "1e2", "abc", "0x10", "9" * 5000]:
        with pytest.raises(ConfigError) as info:
            load_config("collector", dict(base, **{name: value}))
        assert info.value.variable == name


@pytest.mark.parametrize("env,variable", [
    ({"FD_LOG_LEVEL": "verbose"}, "FD_LOG_LEVEL"), ({"FD_TLS_CLIENT_AUTH": "2"}, "FD_TLS_CLIENT_AUTH"),
    ({"FD_TLS_CLIENT_AUTH": "01"}, "FD_TLS_CLIENT_AUTH"), ({"FD_TLS_CA": "/nonexistent.pem"}, "FD_TLS_CA"),
    ({"FD_COLLECTOR_ADDR": "127.0.0.1:0"}, "FD_COLLECTOR_ADDR"),
    ({"FD_ANALYZER_ADDR": "127.0.0.1:65536"}, "FD_ANALYZER_ADDR"),
    ({"FD_REPORTER_ADDR": "bad_host!:7003"}, "FD_REPORTER_ADDR"),
    ({"FD_TOKEN": "a\nb"}, "FD_TOKEN"), ({"FD_TOKEN": ""}, "FD_TOKEN"),
])
def test_other_invalid_values(env, variable):
    with pytest.raises(ConfigError) as info:
        load_config("reporter", {"FD_TOKEN": TOKEN, **env})
    assert info.value.variable == variable


def test_token_is_used_exactly_as_given_and_blank_values_are_empty():
    assert load_config("collector", {"FD_TOKEN": " t "}).token == " t "
    assert load_config("collector", {"FD_TOKEN": "t", "FD_WORKERS": " \t "}).workers == 4
    assert load_config("collector", {"FD_TOKEN": "t", "FD_LOG_LEVEL": "WARN"}).log_level == "warn"


# --- §5 / §7 the token is never echoed ---------------------------------------------------

@pytest.mark.parametrize("field", ["msg_id", "task_id"])
def test_an_authenticated_field_holding_the_token_is_a_schema_violation_echoing_nothing(field):
    frame = {"v": 1, "type": "status", "msg_id": "m-1", "task_id": "t-1", "token": TOKEN, "payload": {}}
    frame[field] = "x" + TOKEN + "y"
    with pytest.raises(ProtocolError) as info:
        parse_request(frame, token=TOKEN, served_types={"status", "hello"})
    err = info.value
    assert err.name == "schema_violation" and err.details["path"] == f"$.{field}"
    reply = reply_for_error(frame, err, token=TOKEN)
    assert TOKEN not in json.dumps(reply)
    assert reply["in_reply_to"] is None if field == "msg_id" else reply["task_id"] is None


def test_an_unauthenticated_msg_id_holding_the_token_is_not_echoed():
    frame = {"v": 1, "type": "status", "msg_id": "m-" + TOKEN, "token": "wrong", "payload": {}}
    with pytest.raises(ProtocolError) as info:
        parse_request(frame, token=TOKEN, served_types={"status"})
    reply = reply_for_error(frame, info.value, token=TOKEN)
    assert reply["in_reply_to"] is None and TOKEN not in json.dumps(reply)
    ok = reply_for_error(dict(frame, msg_id="m-2"), info.value, token=TOKEN)
    assert ok["in_reply_to"] == "m-2"


# --- §7 step 3: hello in a v2 envelope -----------------------------------------------------

def test_hello_in_a_v2_envelope_is_unsupported_version():
    frame = {"v": 2, "type": "hello", "msg_id": "h", "token": TOKEN, "payload": {"versions": [1, 2]}}
    with pytest.raises(ProtocolError) as info:
        parse_request(frame, token=TOKEN, served_types={"hello"})
    assert info.value.name == "unsupported_version" and info.value.details["supported"] == [1]


# --- §10.3 a deadline that passed before any step -----------------------------------------

def test_deadline_passed_while_queued_gives_step_null_and_no_steps():
    calls = []
    out = run_pipeline(["collect", "analyze"], {"source": "s", "records": []}, {},
                       call=lambda *a: calls.append(a), validate_output=lambda *a: None,
                       settings=Settings(), deadline=10.0, deadline_ms=500, clock=lambda: 10.5)
    assert not out.ok and calls == [] and out.steps == []
    assert out.error["name"] == "timeout" and out.error["details"] == {"step": None, "timeout_ms": 500}


# --- §8 JSON equality ---------------------------------------------------------------------

@pytest.mark.parametrize("a,b,equal", [
    (2 ** 53 + 1, 2 ** 53, True), (9007199254740993, 9007199254740992, True),
    (2 ** 53 + 4, 2 ** 53, False), (1, 1.0, True), (True, 1, False), (None, 0, False),
    ({"a": [1, 2 ** 60 + 1]}, {"a": [1.0, 2 ** 60]}, True), ([1, 2], [2, 1], False),
])
def test_json_equality_compares_numbers_as_doubles(a, b, equal):
    assert json_equal(a, b) is equal
    assert oracle.json_equal(a, b) is equal   # the grader's independent copy agrees


@given(st.integers(min_value=-(2 ** 70), max_value=2 ** 70), st.integers(min_value=-(2 ** 70), max_value=2 ** 70))
def test_reference_and_oracle_equality_agree_on_any_integers(a, b):
    assert json_equal(a, b) == oracle.json_equal(a, b) == (float(a) == float(b))


# --- §4 / §10.1 the largest valid task on every route, end to end ------------------------

def test_largest_input_fills_the_frame_exactly():
    for budget in (600_000, 1_000_000):
        task_input = oracle.largest_input(random.Random(1), budget)
        assert len(json.dumps(task_input, ensure_ascii=False, separators=(",", ":")).encode()) == budget
        assert len(task_input["records"]) == 10_000
    with pytest.raises(ValueError):
        oracle.largest_input(random.Random(1), 10_000)


@pytest.mark.timeout(120)
def test_largest_valid_task_succeeds_on_every_route(tmp_path):
    from tests.refsystem import RefSystem
    with RefSystem(tmp_path, env={"FD_ATTEMPT_TIMEOUT_MS": "20000", "FD_TASK_DEADLINE_MS": "60000"}) as rs:
        for task_type in ("parse", "stats", "triage"):
            tid = f"largest-{task_type}"
            empty = rs.envelope("submit", {"task_type": task_type, "input": {"source": "x", "records": [],
                                                                            "thresholds": {}}},
                                task_id=tid, msg_id=f"s-{tid}")
            overhead = len(json.dumps(empty, ensure_ascii=False, separators=(",", ":")).encode()) \
                - len(b'{"source":"x","records":[],"thresholds":{}}')
            task_input = oracle.largest_input(random.Random(task_type), MAX_FRAME_BYTES - overhead)
            frame = rs.envelope("submit", {"task_type": task_type, "input": task_input}, task_id=tid,
                                msg_id=f"s-{tid}")
            data = json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode()
            assert len(data) == MAX_FRAME_BYTES
            with rs.client(timeout=60) as c:
                c.send_raw(data + b"\n")
                reply = c.recv()
            assert reply["type"] == "submit_ok", reply.get("error")
            assert reply["payload"]["result"] == oracle.expected_result(task_type, task_input)
