"""Envelope checks in SPEC §7 order, payload validation, and replies.

The order property is tested against a small independent oracle written from SPEC §7
(jsonschema for the envelope shape), on envelopes whose fields are drawn from valid and
invalid values; every error reply must validate against envelope_reply.json and never
contain the token.
"""

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_impl.protocol.envelope import (
    PAYLOAD_SCHEMAS, TASK_TYPES, Request, ok_reply, parse_request, payload_violation,
    reply_for_error, validate_payload,
)
from reference_impl.protocol.errors import ProtocolError
from reference_impl.protocol.framing import encode_frame

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "challenges" / "schemas"
TOKEN = "s3cret-Tok€n"
SERVED = frozenset({"hello", "collect"})
SETTINGS = settings(max_examples=300, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def validator(name):
    return jsonschema.Draft202012Validator(json.loads((SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8")))


REPLY = validator("envelope_reply")
ENVELOPE = validator("envelope_request")


def envelope(**overrides):
    base = {"v": 1, "type": "collect", "msg_id": "m-1", "task_id": "t-1", "token": TOKEN,
            "payload": {"source": "web-1", "records": ["x"]}}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def outcome(obj, served=SERVED):
    try:
        req = parse_request(obj, token=TOKEN, served_types=served)
    except ProtocolError as err:
        reply = reply_for_error(obj, err)
        REPLY.validate(reply)
        assert TOKEN not in encode_frame(reply).decode()
        return err, reply
    assert isinstance(req, Request) and req.token_ok
    return req, None


# ---- the independent oracle for §7 steps 2-5 ------------------------------------------------

def expected_outcome(obj, served=SERVED):
    token = obj.get("token")
    if not isinstance(token, str) or token != TOKEN:
        return "unauthorized"
    v = obj.get("v", ...)
    if v is ... or isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v):
        return "schema_violation"
    if v != 1:
        return "unsupported_version"
    if not ENVELOPE.is_valid(obj):
        return "schema_violation"
    if obj["type"] in TASK_TYPES and "task_id" not in obj:
        return "schema_violation"
    if obj["type"] not in served:
        return "not_supported"
    return "ok"


FIELD_VALUES = {
    "v": st.sampled_from([..., 1, 1.0, 2, 0, -1, "1", True, None, 1.5, [1]]),
    "type": st.sampled_from([..., "hello", "collect", "analyze", "submit", "list", "frobnicate", "", 7, None]),
    "msg_id": st.sampled_from([..., "m-1", "", "x" * 128, "x" * 129, 5, None]),
    "task_id": st.sampled_from([..., "t-1", "", "-bad", "a" * 64, "a" * 65, 3, None]),
    "token": st.sampled_from([..., TOKEN, TOKEN + "x", TOKEN[:-1], "", "x" * 100_000, 0, None, [TOKEN],
                              TOKEN.upper()]),
    "traceparent": st.sampled_from([..., "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                    "garbage", 1]),
    "payload": st.sampled_from([..., {}, {"source": "s", "records": []}, [], "x", None]),
}


@SETTINGS
@given(fields=st.fixed_dictionaries(FIELD_VALUES),
       extra=st.sampled_from([None, "extra", "V", "tokens"]))
def test_processing_order_matches_spec(fields, extra):
    obj = {k: v for k, v in fields.items() if v is not ...}
    if extra:
        obj[extra] = 1
    result, reply = outcome(obj)
    want = expected_outcome(obj)
    got = "ok" if reply is None else result.name
    assert got == want, (obj if len(json.dumps(obj)) < 500 else "big", got, want)
    if reply is not None:
        msg_id = obj.get("msg_id")
        readable = isinstance(msg_id, str) and 1 <= len(msg_id) <= 128
        assert reply["in_reply_to"] == (msg_id if readable else None)
        if want == "unauthorized":
            assert reply["task_id"] is None
            assert "unauthorized" in reply["error"]["message"]
            assert reply["error"]["details"] == {}
        if result.name == "schema_violation" and want != "unauthorized" and "v" not in obj:
            assert reply["error"]["details"]["path"] == "$.v"


def test_bad_token_and_bad_version_is_unauthorized():
    err, reply = outcome(envelope(token="nope", v=2))
    assert err.name == "unauthorized" and reply["in_reply_to"] == "m-1" and reply["task_id"] is None
    assert reply["error"] == {"code": 20, "name": "unauthorized", "definite": True, "retryable": False,
                              "message": "unauthorized: missing or invalid token", "details": {}}


@pytest.mark.parametrize("token", [..., None, 1, [], {}, "", "x" * 1_000_000, TOKEN * 2, "\udcff"])
def test_any_wrong_token_is_unauthorized(token):
    err, _ = outcome(envelope(token=token))
    assert err.name == "unauthorized"


def test_version_errors():
    err, reply = outcome(envelope(v=...))
    assert (err.name, err.details["path"], err.details["expected"]) == ("schema_violation", "$.v", "required")
    err, _ = outcome(envelope(v="1"))
    assert (err.name, err.details["path"]) == ("schema_violation", "$.v")
    err, reply = outcome(envelope(v=2, task_id="t-9", msg_id="m-3", bogus=1))
    assert err.name == "unsupported_version" and err.details == {"supported": [1]}
    assert (reply["in_reply_to"], reply["task_id"]) == ("m-3", "t-9")
    req, _ = outcome(envelope(v=1.0))
    assert req.v == 1 and type(req.v) is int


def test_envelope_field_errors_name_the_path():
    cases = [
        (envelope(msg_id=...), "$.msg_id", "required"),
        (envelope(task_id=...), "$.task_id", "required"),
        (envelope(payload=[]), "$.payload", "object"),
        (envelope(traceparent="00-xyz"), "$.traceparent", None),
        (envelope(extra_field=1), "$.extra_field", "no additional properties"),
        (envelope(task_id="../etc"), "$.task_id", None),
    ]
    for obj, path, expected in cases:
        err, reply = outcome(obj)
        assert err.name == "schema_violation" and err.details["path"] == path, (obj, err)
        if expected:
            assert err.details["expected"] == expected
        assert reply["error"]["details"]["path"] == path


def test_not_supported_after_envelope_checks():
    err, reply = outcome(envelope(type="frobnicate"))
    assert err.name == "not_supported" and err.details == {"type": "frobnicate"}
    assert reply["task_id"] == "t-1"
    err, _ = outcome(envelope(type="analyze", task_id=...))  # task type without task_id
    assert err.name == "schema_violation"
    req, _ = outcome(envelope(type="hello", task_id=..., payload={"versions": [1]}))
    assert req.type == "hello" and req.task_id is None


def test_request_fields_and_trace_context():
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    req, _ = outcome(envelope(traceparent=tp))
    assert (req.v, req.type, req.msg_id, req.task_id, req.traceparent) == (1, "collect", "m-1", "t-1", tp)
    assert req.trace_context.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert req.payload == {"source": "web-1", "records": ["x"]}


@pytest.mark.parametrize("rtype, payload, path", [
    ("collect", {"source": "web-1", "records": [1, "x", None]}, None),
    ("collect", {"source": "web 1", "records": []}, "$.payload.source"),
    ("collect", {"source": "w", "records": "x"}, "$.payload.records"),
    ("collect", {"source": "w"}, "$.payload.records"),
    ("hello", {"versions": [1], "role": "orchestrator"}, None),
    ("hello", {"versions": []}, "$.payload.versions"),
    ("status", {}, None),
    ("status", {"x": 1}, "$.payload.x"),
    ("list", {"limit": 0}, "$.payload.limit"),
    ("submit", {"task_type": "triage", "input": {"source": "w", "records": [],
                                                 "thresholds": {"error_permille": 1001}}},
     "$.payload.input.thresholds.error_permille"),
    ("analyze", {"source": "w", "events": [{"seq": 0}]}, "$.payload.events[0].ts"),
    ("report", {"analysis": {}, "thresholds": {"error_permille": 1, "p95_latency_ms": 1}},
     "$.payload.analysis.source"),
])
def test_validate_payload(rtype, payload, path):
    req, _ = outcome(envelope(type=rtype, payload=payload), served=PAYLOAD_SCHEMAS.keys())
    if path is None:
        validate_payload(req)
        assert payload_violation(req) is None
    else:
        with pytest.raises(ProtocolError) as exc:
            validate_payload(req)
        assert exc.value.name == "schema_violation" and exc.value.details["path"] == path
        reply = reply_for_error(req, exc.value)
        REPLY.validate(reply)
        assert (reply["in_reply_to"], reply["task_id"]) == ("m-1", "t-1")


def test_ok_reply_shape():
    req, _ = outcome(envelope())
    reply = ok_reply(req, {"a": 1}, replay=False)
    REPLY.validate(reply)
    assert reply == {"v": 1, "type": "collect_ok", "in_reply_to": "m-1", "task_id": "t-1",
                     "replay": False, "payload": {"a": 1}}
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    hello, _ = outcome(envelope(type="hello", task_id=..., payload={"versions": [1]}))
    reply = ok_reply(hello, {}, traceparent=tp)
    REPLY.validate(reply)
    assert "replay" not in reply and reply["traceparent"] == tp and reply["task_id"] is None
    assert TOKEN not in json.dumps(reply)


def test_reply_for_error_without_a_frame_and_explicit_authentication():
    busy = ProtocolError("busy", "too many connections", retry_after_ms=100)
    reply = reply_for_error(None, busy)
    REPLY.validate(reply)
    assert reply["in_reply_to"] is None and reply["task_id"] is None
    obj = envelope()
    assert reply_for_error(obj, busy)["task_id"] == "t-1"
    assert reply_for_error(obj, busy, authenticated=False)["task_id"] is None
