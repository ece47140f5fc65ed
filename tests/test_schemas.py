"""The JSON Schemas: present, well-formed 2020-12, within the validator's subset, copied
byte-identically into reference_impl, internally consistent, and accepting the SPEC's own
examples (parsed from SPEC.md so the two cannot drift apart)."""

import json
import re
from pathlib import Path

import jsonschema
import pytest

from reference_impl.protocol import schema as fd_schema

ROOT = Path(__file__).resolve().parent.parent
CHALLENGE_DIR = ROOT / "challenges" / "schemas"
REFERENCE_DIR = ROOT / "reference_impl" / "schemas"
SPEC = (ROOT / "challenges" / "SPEC.md").read_text(encoding="utf-8")

REQUIRED = [
    "envelope_request", "envelope_reply", "error", "hello", "hello_ok", "submit", "submit_ok",
    "status", "status_ok", "list", "list_ok", "collect_input", "collect_output", "analyze_input",
    "analyze_output", "report_input", "report_output", "agent_record", "task_record",
]


def load(name):
    return json.loads((CHALLENGE_DIR / f"{name}.json").read_text(encoding="utf-8"))


def spec_json_blocks(section_start, section_end):
    text = SPEC[SPEC.index(section_start):SPEC.index(section_end) if section_end else None]
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)]


def assert_valid(instance, name):
    errors = list(jsonschema.Draft202012Validator(load(name)).iter_errors(instance))
    assert not errors, [e.message for e in errors]
    assert fd_schema.find_violation(instance, name) is None


def test_every_required_schema_exists():
    names = sorted(p.stem for p in CHALLENGE_DIR.glob("*.json"))
    assert set(REQUIRED) <= set(names)


def test_reference_copy_is_byte_identical():
    challenge = {p.name: p.read_bytes() for p in CHALLENGE_DIR.glob("*.json")}
    reference = {p.name: p.read_bytes() for p in REFERENCE_DIR.glob("*.json")}
    assert challenge == reference


@pytest.mark.parametrize("name", REQUIRED)
def test_schema_is_valid_2020_12_and_in_subset(name):
    s = load(name)
    jsonschema.Draft202012Validator.check_schema(s)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["$id"] == f"https://faultdrill.dev/schemas/v1/{name}.json"
    fd_schema.check_subset(s)  # raises on any keyword the small validator lacks


def _walk(node, where="#"):
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            if key in ("properties", "$defs"):
                for k, v in value.items():
                    yield from _walk(v, f"{where}/{key}/{k}")
            elif key == "items":
                yield from _walk(value, f"{where}/items")


# Objects whose members the SPEC leaves open: error details, and records of payloads/results.
OPEN_OBJECT_NAMES = {"details", "payload", "input", "output", "result"}


@pytest.mark.parametrize("name", REQUIRED)
def test_objects_are_closed_and_patterns_anchored(name):
    for where, node in _walk(load(name)):
        types = node.get("type")
        types = [types] if isinstance(types, str) else (types or [])
        if "object" in types and "properties" in node:
            assert node.get("additionalProperties") is False, where
        elif "object" in types and where.rsplit("/", 1)[-1] not in OPEN_OBJECT_NAMES:
            pytest.fail(f"{where}: object without properties must be a known open member")
        if "pattern" in node:
            p = node["pattern"]
            # `$` only as the final anchor: the validators' ECMA translation relies on it
            assert p.startswith("^") and p.endswith("$") and "$" not in p[:-1], (where, p)
            assert "\\d" not in p and "\\w" not in p and "\\s" not in p, (where, p)


def test_shared_definitions_do_not_drift():
    error = {k: v for k, v in load("error").items() if not k.startswith("$") and k != "title"}
    reply_error = {k: v for k, v in load("envelope_reply")["$defs"]["error"].items() if k != "description"}
    assert error == reply_error
    analysis = load("report_input")["$defs"]
    out = load("analyze_output")
    assert {k: v for k, v in analysis["analysis"].items() if k != "description"} == {
        k: v for k, v in out.items() if not k.startswith("$") and k != "title"}
    seen = {}
    for name in REQUIRED:
        for def_name, body in load(name).get("$defs", {}).items():
            assert seen.setdefault(def_name, body) == body, (name, def_name)
    # task input = collect input + optional thresholds
    task_input = load("submit")["$defs"]["task_input"]["properties"]
    collect_input = load("collect_input")
    assert task_input["source"] == collect_input["properties"]["source"]
    assert load("submit")["$defs"]["records"] == collect_input["$defs"]["records"]


def test_rejection_reasons_and_levels_match_spec_text():
    reasons = load("collect_output")["$defs"]["rejection"]["properties"]["reason"]["enum"]
    section = SPEC[SPEC.index("### 8.1"):SPEC.index("### 8.2")]
    spec_reasons = sorted(set(re.findall(r"reject\s+`([a-z_]+)`", section)))
    assert sorted(reasons) == spec_reasons
    levels = load("collect_output")["$defs"]["event"]["properties"]["level"]["enum"]
    assert levels == ["debug", "info", "warn", "error", "fatal"]


def test_spec_worked_examples_validate():
    submit, collect_out, analyze_out, report_out = spec_json_blocks("### 18.1", "### 18.2")
    assert_valid(submit, "envelope_request")
    assert_valid(submit["payload"], "submit")
    assert_valid({"source": submit["payload"]["input"]["source"],
                  "records": submit["payload"]["input"]["records"]}, "collect_input")
    assert_valid(collect_out, "collect_output")
    assert_valid({"source": collect_out["source"], "events": collect_out["events"]}, "analyze_input")
    assert_valid(analyze_out, "analyze_output")
    assert_valid({"analysis": analyze_out, "thresholds": submit["payload"]["input"]["thresholds"]},
                 "report_input")
    assert_valid(report_out, "report_output")
    assert_valid({"task_id": "demo-1", "status": "succeeded", "result": report_out, "steps": []},
                 "submit_ok")


def test_spec_error_examples_validate():
    replies = spec_json_blocks("### 18.2", None) + spec_json_blocks("## 6. Errors", "## 7.")
    assert len(replies) == 5
    for reply in replies:
        assert_valid(reply, "envelope_reply")
        assert_valid(reply["error"], "error")


def test_spec_hello_and_submit_examples_validate():
    hello = spec_json_blocks("### 14.1", "### 14.2")[0]
    assert_valid(hello, "envelope_request")
    assert_valid(hello["payload"], "hello")
    assert_valid({"version": 1, "role": "collector", "capabilities": ["collect"],
                  "limits": {"max_frame_bytes": 1048576, "max_depth": 32}}, "hello_ok")
    submit = spec_json_blocks("### 9.1", "### 9.2")[0]
    assert_valid(submit, "envelope_request")
    assert_valid(submit["payload"], "submit")


def test_records_and_status_shapes():
    step = {"step": "collect", "agent": "collector", "status": "succeeded", "attempts": 1,
            "started_at": "2026-11-29T14:50:31.123Z", "finished_at": "2026-11-29T14:50:31.200Z",
            "error": None}
    status = {"task_id": "t-1", "task_type": "triage", "status": "succeeded",
              "submitted_at": "2026-11-29T14:50:31.123Z", "finished_at": "2026-11-29T14:50:32.000Z",
              "result": {}, "error": None, "steps": [step]}
    assert_valid(status, "status_ok")
    record = {"format": 1, "seq": 3, **{k: v for k, v in status.items()},
              "input": {"source": "web-1", "records": ["x"], "thresholds": {"error_permille": 5}}}
    assert_valid(record, "task_record")
    assert_valid({"format": 1, "task_id": "t-1", "step": "collect", "seq": 17, "input": {},
                  "output": {}, "stored_at": "2026-11-29T14:50:31.123Z"}, "agent_record")
    assert_valid({"tasks": [{"task_id": "t-1", "task_type": "triage", "status": "queued",
                             "submitted_at": "2026-11-29T14:50:31.123Z"}]}, "list_ok")
    assert_valid({}, "list")
    assert_valid({"limit": 1000}, "list")
    assert fd_schema.find_violation({"limit": 1001}, "list").path == "$.limit"
    assert fd_schema.find_violation({"x": 1}, "status").path == "$.x"
