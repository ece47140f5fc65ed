"""The small schema validator agrees with the `jsonschema` library, and its paths point at
real violations.

Instances are generated from each schema (valid ones) and then mutated (members deleted,
added, retyped, bounds crossed), so both verdicts are exercised. The reference validator
is jsonschema's Draft 2020-12 with one documented change: `pattern` uses ECMA-262 `$`
(end of input) instead of Python's (`$` also matches before a final newline), which is
what JSON Schema specifies.
"""

import functools
import json
import re
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import validators
from jsonschema.exceptions import ValidationError

from reference_impl.protocol import schema as fd
from reference_impl.protocol.errors import ProtocolError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "challenges" / "schemas"
NAMES = sorted(p.stem for p in SCHEMA_DIR.glob("*.json"))
SETTINGS = settings(max_examples=80, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _ecma_pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string"):
        python = pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern
        if not re.search(python, instance):
            yield ValidationError(f"{instance!r} does not match {pattern!r}")


EcmaValidator = validators.extend(jsonschema.Draft202012Validator, {"pattern": _ecma_pattern})


@functools.lru_cache(maxsize=None)
def _load_text(name):
    return (SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8")


def load(name):
    return json.loads(_load_text(name))


@functools.lru_cache(maxsize=None)
def reference_validator(name):
    return EcmaValidator(load(name))



def fmt_path(parts):
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p):
            out += f".{p}"
        else:
            out += f"[{json.dumps(p)}]"
    return out


def reference_locations(instance, name):
    """Every location jsonschema finds wrong, in the SPEC's path convention."""
    found = set()
    for err in reference_validator(name).iter_errors(instance):
        parts = list(err.absolute_path)
        if err.validator == "required":
            found.update(fmt_path(parts + [n]) for n in err.validator_value if n not in err.instance)
        elif err.validator == "additionalProperties":
            props = err.schema.get("properties", {})
            found.update(fmt_path(parts + [k]) for k in err.instance if k not in props)
        else:
            found.add(fmt_path(parts))
    return found


# ---- generating instances from a schema --------------------------------------------------

JSON_SCALARS = (st.none() | st.booleans() | st.integers(-10**12, 10**12)
                | st.floats(allow_nan=False, allow_infinity=False, width=64) | st.text(max_size=8))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
AWKWARD = st.sampled_from([True, False, None, 0, -1, 1.0, 1.5, 10**10, 2**70, "", "x",
                           "abc\n", "A" * 70, "x" * 4097, [], {}, [1], {"k": 1}, "\u212a"])


def from_schema(s, root):
    if "$ref" in s:
        return from_schema(fd.resolve_ref(root, s["$ref"]), root)
    if "const" in s:
        return st.just(s["const"])
    if "enum" in s:
        return st.sampled_from(s["enum"])
    t = s.get("type")
    if t is None:
        return JSON_VALUES
    if isinstance(t, list):
        return st.one_of([from_schema({**s, "type": one}, root) for one in t])
    if t == "null":
        return st.none()
    if t == "boolean":
        return st.booleans()
    if t == "integer":
        return st.integers(s.get("minimum"), s.get("maximum"))
    if t == "number":
        return st.floats(s.get("minimum"), s.get("maximum"), allow_nan=False, allow_infinity=False)
    if t == "string":
        if "pattern" in s:
            return st.from_regex(s["pattern"], fullmatch=True)
        return st.text(min_size=s.get("minLength", 0), max_size=min(s.get("maxLength", 12), 12))
    if t == "array":
        items = s.get("items", {})
        item_strategy = from_schema(items, root) if items else JSON_VALUES
        return st.lists(item_strategy, min_size=s.get("minItems", 0),
                        max_size=max(s.get("minItems", 0), min(s.get("maxItems", 3), 3)))
    if t == "object":
        props = s.get("properties")
        if props is None:
            return st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=3)
        required = set(s.get("required", ()))
        return st.fixed_dictionaries(
            {k: from_schema(v, root) for k, v in props.items() if k in required},
            optional={k: from_schema(v, root) for k, v in props.items() if k not in required})
    raise AssertionError(f"unhandled schema {s}")


def _locations(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _locations(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _locations(v, prefix + (i,))


def _get(value, loc):
    for part in loc:
        value = value[part]
    return value


def mutate(data, instance):
    """Apply one random structural or value mutation (returns a new instance)."""
    instance = json.loads(json.dumps(instance))
    locs = list(_locations(instance))
    loc = data.draw(st.sampled_from(locs), label="location")
    op = data.draw(st.sampled_from(["replace", "awkward", "delete", "add", "append"]), label="op")
    new = data.draw(JSON_VALUES if op == "replace" else AWKWARD, label="value")
    if not loc:
        if op in ("replace", "awkward"):
            return new
        loc_value = instance
    else:
        parent = _get(instance, loc[:-1])
        if op in ("replace", "awkward"):
            parent[loc[-1]] = new
            return instance
        if op == "delete":
            del parent[loc[-1]]
            return instance
        loc_value = parent[loc[-1]]
    if isinstance(loc_value, dict):
        key = data.draw(st.sampled_from(["extra", "v", "type", "task_id", "a b", "records", "x.y"]))
        loc_value[key] = new
    elif isinstance(loc_value, list):
        loc_value.append(new)
    return instance


# ---- the properties ------------------------------------------------------------------------

def check_agreement(instance, name):
    ours = fd.find_violation(instance, name)
    theirs = reference_locations(instance, name)
    assert (ours is None) == (not theirs), (ours, sorted(theirs)[:5])
    if ours is not None:
        assert ours.path in theirs, (ours, sorted(theirs)[:5])
        assert ours.expected and ours.got
        with pytest.raises(ProtocolError) as exc:
            fd.validate(instance, name)
        assert exc.value.name == "schema_violation"
        assert exc.value.details == {"path": ours.path, "expected": ours.expected, "got": ours.got}
    return ours


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_agrees_with_jsonschema_on_valid_instances(name, data):
    schema = load(name)
    instance = data.draw(from_schema(schema, schema), label="instance")
    assert check_agreement(instance, name) is None


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_agrees_with_jsonschema_on_mutated_instances(name, data):
    schema = load(name)
    instance = data.draw(from_schema(schema, schema), label="instance")
    for _ in range(data.draw(st.integers(1, 2), label="mutations")):
        instance = mutate(data, instance)
    check_agreement(instance, name)


@SETTINGS
@given(instance=JSON_VALUES)
def test_arbitrary_json_against_envelope(instance):
    check_agreement(instance, "envelope_request")
    check_agreement(instance, "collect_input")


# ---- targeted cases ------------------------------------------------------------------------

def test_json_schema_type_semantics():
    s = {"type": "integer", "minimum": 0}
    assert fd.find_violation(True, s).expected == "integer"
    assert fd.find_violation(True, s).got == "boolean"
    assert fd.find_violation(1.0, s) is None
    assert fd.find_violation(1.5, s).got == "number"
    assert fd.find_violation(-1, s).expected == "integer >= 0"
    assert fd.find_violation(True, {"const": 1}) is not None
    assert fd.find_violation(1.0, {"const": 1}) is None
    assert fd.find_violation(0, {"enum": [False]}) is not None
    assert fd.find_violation([1, {"a": 1.0}], {"const": [1.0, {"a": 1}]}) is None
    assert fd.find_violation("x", {"enum": ["a", "b"]}).expected == 'one of ["a", "b"]'


def test_pattern_dollar_is_end_of_input():
    s = {"type": "string", "pattern": "^[a-z]{1,3}$"}
    assert fd.find_violation("abc", s) is None
    assert fd.find_violation("abc\n", s) is not None
    assert fd.find_violation("[$]", {"type": "string", "pattern": "^\\[[$]\\]$"}) is None


def test_paths_name_missing_and_extra_members_and_indices():
    v = fd.find_violation({"source": "s", "records": []}, "collect_output")
    assert (v.path, v.expected, v.got) == ("$.events", "required", "missing")
    v = fd.find_violation({"source": "s", "records": [], "a b": 1}, "collect_input", "$.payload")
    assert v.path == '$.payload["a b"]' and v.expected == "no additional properties"
    bad_event = {"seq": 0, "ts": "2026-11-29T10:00:00Z", "epoch_s": 1, "level": "info",
                 "service": "x", "latency_ms": "12", "message": ""}
    v = fd.find_violation({"source": "s", "events": [bad_event, bad_event]}, "analyze_input", "$.payload")
    assert v.path == "$.payload.events[0].latency_ms"
    assert v.message == "$.payload.events[0].latency_ms: expected integer, got string"


def test_records_limit_and_any_items():
    assert fd.find_violation({"source": "s", "records": [1, None, {"a": [1]}, "x"]}, "collect_input") is None
    v = fd.find_violation({"source": "s", "records": [0] * 10001}, "collect_input")
    assert v.path == "$.records" and "10000" in v.expected


def test_subset_is_enforced():
    for bad in ({"format": "date-time"}, {"oneOf": []}, {"additionalProperties": {}},
                {"$ref": "other.json#/x"}, {"$ref": "#/$defs/missing"}, {"type": "float"}):
        with pytest.raises(ValueError):
            fd.check_subset(bad)
    with pytest.raises(ValueError):
        fd.load_schema("../SPEC")


def test_load_schema_returns_a_copy():
    a = fd.load_schema("error")
    a["properties"].clear()
    assert fd.load_schema("error")["properties"]
