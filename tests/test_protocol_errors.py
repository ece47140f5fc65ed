"""The error table matches SPEC §6 (parsed from SPEC.md) and error objects are complete."""

import json
import re
from pathlib import Path

import jsonschema
import pytest

from reference_impl.protocol.errors import (
    ERRORS, ERRORS_BY_CODE, REQUIRED_DETAILS, ProtocolError, error_reply, make_error_object,
)

ROOT = Path(__file__).resolve().parent.parent
SPEC = (ROOT / "challenges" / "SPEC.md").read_text(encoding="utf-8")
REPLY = jsonschema.Draft202012Validator(
    json.loads((ROOT / "challenges" / "schemas" / "envelope_reply.json").read_text(encoding="utf-8")))


def spec_error_table():
    section = SPEC[SPEC.index("## 6. Errors"):SPEC.index("## 7.")]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| (\d+) \| `(\w+)` \| (yes|no) \| (yes|no) \| .*? \| (.*) \|$", line)
        if m:
            code, name, definite, retryable, details = m.groups()
            keys = tuple(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", details)))
            rows[name] = (int(code), definite == "yes", retryable == "yes", keys)
    return rows


def test_table_matches_spec_exactly():
    table = spec_error_table()
    assert len(table) == 13
    assert set(table) == set(ERRORS)
    for name, (code, definite, retryable, keys) in table.items():
        spec = ERRORS[name]
        assert (spec.code, spec.definite, spec.retryable) == (code, definite, retryable), name
        assert set(REQUIRED_DETAILS[name]) == set(keys), name
        assert ERRORS_BY_CODE[code] is spec


def sample_details(name):
    values = {"step": "collect", "timeout_ms": 2000, "type": "x", "retry_after_ms": 5,
              "reason": "not json", "limit_bytes": 1048576, "path": "$.v", "expected": "integer",
              "supported": [1], "task_id": "t-1", "agent": "collector", "attempts": 4,
              "cause": make_error_object("internal_error", "connection refused")}
    return {k: values[k] for k in REQUIRED_DETAILS[name]}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_every_error_builds_a_valid_reply(name):
    err = ProtocolError(name, f"{name} happened", **sample_details(name))
    obj = err.error_object()
    assert obj["code"] == ERRORS[name].code and obj["name"] == name
    assert set(obj["details"]) >= set(REQUIRED_DETAILS[name])
    reply = error_reply(obj, "m-1", "t-1")
    REPLY.validate(reply)
    assert error_reply(obj)["in_reply_to"] is None


@pytest.mark.parametrize("name", [n for n in sorted(ERRORS) if REQUIRED_DETAILS[n]])
def test_missing_required_details_is_refused(name):
    with pytest.raises(ValueError):
        ProtocolError(name, "x")


def test_unknown_name_refused_and_unauthorized_says_so():
    with pytest.raises(ValueError):
        ProtocolError("nope", "x")
    assert "unauthorized" in ProtocolError("unauthorized", "bad token").error_object()["message"]
    err = ProtocolError("busy", "later", retry_after_ms=10)
    assert (err.code, err.definite, err.retryable) == (11, True, True)
