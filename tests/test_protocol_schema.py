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


# ---- the compiled validator decides and reports exactly as the straightforward walk --------
#
# `protocol/schema.py` compiles each schema into specialised checker functions and builds
# the JSON path only for a violation. `_walk` below is the plain recursive validator it
# replaced (it builds a path string for every node it visits), kept here as the oracle:
# for every instance the compiled validator must return the *same* violation - same path,
# same `expected`, same `got` - not merely one that jsonschema also finds.

def _walk(instance, schema, path, root):
    if "$ref" in schema:
        found = _walk(instance, fd.resolve_ref(root, schema["$ref"]), path, root)
        if found:
            return found
    if "type" in schema:
        types = schema["type"]
        types = [types] if isinstance(types, str) else list(types)
        if not any(fd._is_type(instance, t) for t in types):
            return fd.Violation(path, " or ".join(types), fd.json_type(instance))
    if "const" in schema and not fd.json_equal(instance, schema["const"]):
        return fd.Violation(path, f"exactly {fd._short(schema['const'])}", fd._short(instance))
    if "enum" in schema and not any(fd.json_equal(instance, e) for e in schema["enum"]):
        return fd.Violation(path, f"one of {json.dumps(schema['enum'])}", fd._short(instance))
    kind = fd.json_type(instance)
    phrase = schema["type"] if isinstance(schema.get("type"), str) else "number"
    if kind in ("integer", "number"):
        if "minimum" in schema and instance < schema["minimum"]:
            return fd.Violation(path, f"{phrase} >= {schema['minimum']}", fd._short(instance))
        if "maximum" in schema and instance > schema["maximum"]:
            return fd.Violation(path, f"{phrase} <= {schema['maximum']}", fd._short(instance))
    elif kind == "string":
        if "minLength" in schema and len(instance) < schema["minLength"]:
            return fd.Violation(path, f"string of at least {schema['minLength']} characters",
                                f"{len(instance)} characters")
        if "maxLength" in schema and len(instance) > schema["maxLength"]:
            return fd.Violation(path, f"string of at most {schema['maxLength']} characters",
                                f"{len(instance)} characters")
        if "pattern" in schema and not fd._compile_pattern(schema["pattern"]).search(instance):
            return fd.Violation(path, f"string matching {schema['pattern']}", fd._short(instance))
    elif kind == "array":
        if "minItems" in schema and len(instance) < schema["minItems"]:
            return fd.Violation(path, f"array of at least {schema['minItems']} items", f"{len(instance)} items")
        if "maxItems" in schema and len(instance) > schema["maxItems"]:
            return fd.Violation(path, f"array of at most {schema['maxItems']} items", f"{len(instance)} items")
        item_schema = schema.get("items", True)
        if item_schema is False and instance:
            return fd.Violation(fd.join_index(path, 0), "no items", fd._short(instance[0]))
        if isinstance(item_schema, dict) and item_schema:
            for index, item in enumerate(instance):
                found = _walk(item, item_schema, fd.join_index(path, index), root)
                if found:
                    return found
    elif kind == "object":
        for name in schema.get("required", ()):
            if name not in instance:
                return fd.Violation(fd.join_key(path, name), "required", "missing")
        props = schema.get("properties", {})
        if schema.get("additionalProperties", True) is False:
            for key in instance:
                if key not in props:
                    return fd.Violation(fd.join_key(path, key), "no additional properties",
                                        "unexpected member")
        for name, sub in props.items():
            if name in instance:
                found = _walk(instance[name], sub, fd.join_key(path, name), root)
                if found:
                    return found
    return None


def assert_same_as_walk(instance, schema, path="$"):
    root = load(schema) if isinstance(schema, str) else schema
    expected = _walk(instance, root, path, root)
    got = fd.find_violation(instance, schema, path)
    assert got == expected, (got, expected)
    if isinstance(schema, str):
        if expected is None:
            fd.validate(instance, schema, path)
        else:
            with pytest.raises(ProtocolError) as exc:
                fd.validate(instance, schema, path)
            assert exc.value.details == {"path": expected.path, "expected": expected.expected,
                                         "got": expected.got}
            assert exc.value.message == expected.message
    return got


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_compiled_equals_walk_on_valid_and_mutated_instances(name, data):
    schema = load(name)
    instance = data.draw(from_schema(schema, schema), label="instance")
    assert assert_same_as_walk(instance, name, "$.payload") is None
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        instance = mutate(data, instance)
    assert_same_as_walk(instance, name, "$.payload")


# Arbitrary schemas within the subset: several types, no type, `$ref` beside other
# keywords, `items: false`, enums mixing booleans, integers, floats and containers.
SUBSET_KEYS = ["a", "b", "a b", "x.y", "1"]
SUBSET_VALUES = st.sampled_from([0, 1, 1.0, -1, 2.5, True, False, None, "", "a", "b", "abc\n",
                                 [1], [1.0, "a"], {"a": 1}, {}, 2**70])
SUBSET_PATTERNS = st.sampled_from(["^[a-z]{1,3}$", "b", "^x", "[$]$", "^$", "\\$$", "^a|b$"])


def _subset_node(children, allow_ref):
    optional = {
        "type": st.sampled_from(sorted(fd.TYPE_NAMES))
        | st.lists(st.sampled_from(sorted(fd.TYPE_NAMES)), min_size=1, max_size=3, unique=True),
        "const": SUBSET_VALUES,
        "enum": st.lists(SUBSET_VALUES, min_size=1, max_size=4),
        "minimum": st.integers(-2, 2) | st.sampled_from([0.5, -1.5]),
        "maximum": st.integers(-2, 2) | st.sampled_from([0.5, 2**70]),
        "minLength": st.integers(0, 3), "maxLength": st.integers(0, 3),
        "pattern": SUBSET_PATTERNS,
        "minItems": st.integers(0, 2), "maxItems": st.integers(0, 3),
        "items": st.booleans() | st.just({}) | children,
        "properties": st.dictionaries(st.sampled_from(SUBSET_KEYS), children, max_size=3),
        "required": st.lists(st.sampled_from(SUBSET_KEYS), max_size=3, unique=True),
        "additionalProperties": st.booleans(),
        "description": st.just("annotation only"),
    }
    if allow_ref:
        optional["$ref"] = st.just("#/$defs/d")
    return st.fixed_dictionaries({}, optional=optional)


def subset_schemas(allow_ref):
    return st.recursive(_subset_node(st.just({}), allow_ref),
                        lambda inner: _subset_node(inner, allow_ref), max_leaves=6)


SUBSET_INSTANCES = st.recursive(
    SUBSET_VALUES | JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(SUBSET_KEYS + ["z"]), inner, max_size=4),
    max_leaves=10)


@settings(max_examples=300, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(defs=subset_schemas(False), schema=subset_schemas(True),
       instances=st.lists(SUBSET_INSTANCES, min_size=1, max_size=4))
def test_compiled_equals_walk_on_arbitrary_subset_schemas(defs, schema, instances):
    root = {**schema, "$defs": {"d": defs}}
    fd.check_subset(root)
    for instance in instances:
        assert_same_as_walk(instance, root)


def test_python_values_keep_json_semantics():
    """Values a decoder never makes but a process may validate (records it built itself)."""
    import enum

    class Level(enum.IntEnum):
        LOW = 1

    class Text(str):
        pass

    class Obj(dict):
        pass

    schema = {"type": "object", "properties": {
        "i": {"type": "integer", "minimum": 0, "maximum": 5},
        "n": {"type": "number", "maximum": 5},
        "e": {"enum": [1, "a", None, [1]]},
        "s": {"type": "string", "minLength": 2, "pattern": "^[a-z]+$"},
        "l": {"type": "array", "items": {"type": "integer"}},
        "o": {"type": "object", "required": ["k"]},
    }}
    values = [True, False, None, 1, 1.0, 5.5, -0.0, float("inf"), float("nan"), 2**70, 10**400,
              Level.LOW, Text("ab"), Text("a"), "ab", "Ab", (1, 2), (1, "x"), [1, 2.0], Obj(k=1),
              Obj(), {"k": 1}, b"ab", {1, 2}]
    for key in schema["properties"]:
        for value in values:
            assert_same_as_walk({key: value}, schema)
    assert fd.find_violation({"i": 1.0}, schema) is None
    assert fd.find_violation({"i": True}, schema) == fd.Violation("$.i", "integer", "boolean")
    assert fd.find_violation({"e": 1.0}, schema) is None
    assert fd.find_violation({"e": True}, schema).path == "$.e"
    assert fd.find_violation({"l": (1, 2)}, schema) is None
    assert fd.find_violation({"o": Obj()}, schema).path == "$.o.k"


def test_recursive_ref_and_deep_paths():
    tree = {"type": "object", "properties": {
        "name": {"type": "string", "pattern": "^[a-z]+$"},
        "kids": {"type": "array", "items": {"$ref": "#/$defs/tree"}}},
        "additionalProperties": False}
    root = {"$ref": "#/$defs/tree", "$defs": {"tree": tree}}
    good = {"name": "a", "kids": [{"name": "b", "kids": [{"name": "c"}]}, {"kids": []}]}
    assert fd.find_violation(good, root) is None
    bad = json.loads(json.dumps(good))
    bad["kids"][0]["kids"][0]["name"] = "C"
    assert fd.find_violation(bad, root).path == "$.kids[0].kids[0].name"
    bad["kids"][1]["odd key"] = 1
    assert assert_same_as_walk(bad, root).path == "$.kids[0].kids[0].name"
    del bad["kids"][0]["kids"][0]["name"]
    assert assert_same_as_walk(bad, root, "$.payload").path == '$.payload.kids[1]["odd key"]'


def _pipeline_payloads(seed, n_tasks, n_records):
    """Realistic messages: the grader's input generator run through the reference's work."""
    import random

    from graders.oracle import generate_input
    from reference_impl import work

    rng = random.Random(seed)
    for _ in range(n_tasks):
        task_input = generate_input(rng, n_records)
        collect_in = {"source": task_input["source"], "records": task_input["records"]}
        collect_out = work.collect(collect_in)
        analyze_in = {"source": collect_out["source"], "events": collect_out["events"]}
        analyze_out = work.analyze(analyze_in)
        report_in = {"analysis": analyze_out,
                     "thresholds": work.effective_thresholds(task_input.get("thresholds"))}
        yield from [("submit", {"task_type": "triage", "input": task_input}),
                    ("collect_input", collect_in), ("collect_output", collect_out),
                    ("analyze_input", analyze_in), ("analyze_output", analyze_out),
                    ("report_input", report_in), ("report_output", work.report(report_in))]


def _deep_locations(value, prefix=()):
    for loc in _locations(value, prefix):
        if len(loc) >= 2:
            yield loc


def test_pipeline_messages_valid_and_every_deep_mutation_reported_as_before():
    """Seeded (seed 7): each realistic message is valid; retyping any one deep member gives
    the same violation as the walk, with the path of that member or of its container."""
    import random

    rng = random.Random(7)
    for name, payload in _pipeline_payloads(7, 3, 40):
        assert fd.find_violation(payload, name, "$.payload") is None
        locs = list(_deep_locations(payload))
        for loc in rng.sample(locs, min(25, len(locs))):
            bad = json.loads(json.dumps(payload))
            _get(bad, loc[:-1])[loc[-1]] = rng.choice([True, None, -1, "??", [], {"q": 1}, 1.5])
            assert_same_as_walk(bad, name, "$.payload")


def test_valid_messages_build_no_path_or_value_text(monkeypatch):
    """The point of compiling: a valid message costs no JSON path and no value rendering."""
    messages = list(_pipeline_payloads(11, 2, 30))
    for name, payload in messages:
        fd.validate(payload, name, "$.payload")  # compile outside the patched region

    def forbidden(*args):
        raise AssertionError("text built while validating a valid instance")

    for helper in ("join_key", "join_index", "_short", "_key_segment"):
        monkeypatch.setattr(fd, helper, forbidden)
    for name, payload in messages:
        fd.validate(payload, name, "$.payload")
        assert fd.find_violation(payload, name) is None
