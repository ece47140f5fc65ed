"""A small JSON Schema (2020-12 subset) validator that reports JSON paths.

Why not a library: the reference implementation is standard-library only, and the SPEC
asks for errors that name the exact offending path (`$.payload.records[3]`) with a short
`expected` phrase, which is easier to guarantee with a validator written for the subset
our schemas use. The subset is enforced when a schema is loaded: a keyword outside it is
an error, never silently ignored, so a schema cannot say more than this code checks.

Semantics follow JSON Schema, not Python: `true` is not an integer, `1.0` is one; `$` in a
pattern anchors at the very end (ECMA-262), not before a trailing newline as in Python.
Each schema is compiled once into specialised checker functions (see "compiling" below):
validation runs on every hop of every task, and a valid message costs no path strings.
Pure: the only I/O is reading schema files once (cached).
"""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path
from typing import Any, NamedTuple

from .errors import ProtocolError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

# Keywords that constrain instances, and keywords that are only annotations/structure.
ASSERTION_KEYWORDS = frozenset({
    "type", "properties", "required", "additionalProperties", "items", "enum", "const",
    "minimum", "maximum", "minLength", "maxLength", "pattern", "minItems", "maxItems", "$ref",
})
ANNOTATION_KEYWORDS = frozenset({"$schema", "$id", "$defs", "title", "description", "$comment"})
TYPE_NAMES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_GOT_LIMIT = 64


class Violation(NamedTuple):
    path: str
    expected: str
    got: str

    @property
    def message(self) -> str:
        return f"{self.path}: expected {self.expected}, got {self.got}"


def join_key(path: str, key: str) -> str:
    """`$.a` + `b` -> `$.a.b`; keys that are not identifiers use `["..."]`."""
    if _IDENT.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def join_index(path: str, index: int) -> str:
    return f"{path}[{index}]"


def json_type(value: Any) -> str:
    """The JSON Schema type name of a decoded JSON value (integral floats are integers)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if math.isfinite(value) and value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_type(value: Any, name: str) -> bool:
    actual = json_type(value)
    if name == "number":
        return actual in ("integer", "number")
    return actual == name


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality (SPEC §8): 1 == 1.0, but true != 1; deep for containers; numbers
    compared as IEEE 754 doubles, so integers beyond 2^53 that round to the same double
    are equal (an implementation whose numbers are doubles cannot tell them apart)."""
    ta, tb = json_type(a), json_type(b)
    numeric = ("integer", "number")
    if ta in numeric and tb in numeric:
        try:
            return float(a) == float(b)
        except OverflowError:  # beyond a double: the framing refuses these (SPEC §4)
            return a == b
    if ta != tb:
        return False
    if ta == "array":
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if ta == "object":
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return a == b


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError):
        text = json_type(value)
    return text if len(text) <= _GOT_LIMIT else text[: _GOT_LIMIT - 3] + "..."


@functools.lru_cache(maxsize=256)
def _compile_pattern(pattern: str) -> re.Pattern:
    """Translate an ECMA-262 pattern to Python: an unescaped `$` outside a class -> `\\Z`."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "$":
            ch = r"\Z"
        out.append(ch)
        i += 1
    return re.compile("".join(out))


# ---- compiling a schema into checker functions ----------------------------------------------
#
# Why compiled: every message is validated (SPEC §7 step 7, and the orchestrator validates
# every agent reply), so this runs on each hop of every task; the former recursive walk
# built a path string for every member it visited and re-read each keyword from the schema
# dict, ~7x slower. A schema is turned once into a tree of closures, one per schema node,
# each specialised for the keywords that node has (no dictionary lookups of keywords, types
# tested with `type(x) is ...`, patterns precompiled, `required` and the allowed member
# names as frozensets). A valid instance costs one call per node it reaches and no string
# work at all: the JSON path is only assembled when a violation is found, from segments the
# failing checkers append on the way back up (`_Fail.segs`, innermost first).
#
# A checker takes the instance and returns None (valid) or a `_Fail`. A node that can never
# fail (`{}`, annotations only) compiles to None and its parent skips it. Keyword order
# within a node is fixed - $ref, type, const, enum, then the constraints of the instance's
# kind (numbers: minimum, maximum; strings: minLength, maxLength, pattern; arrays: minItems,
# maxItems, items; objects: required, additionalProperties, properties in schema order) -
# so the violation reported is the first one a depth-first walk in that order meets.

_INF = float("inf")
# Exact Python types that certainly have a JSON type; anything else (bool is not int here,
# integral floats, subclasses, tuples) takes the general `_is_type` path.
_FAST_TYPES = {
    "object": (dict,), "array": (list,), "string": (str,), "integer": (int,),
    "number": (int, float), "boolean": (bool,), "null": (type(None),),
}
_PLAIN_TYPES = (str, int, float, bool, type(None), list, dict)


class _Fail:
    """A violation on its way up: `segs` are path segments, innermost first."""

    __slots__ = ("segs", "expected", "got")

    def __init__(self, expected: str, got: str, seg: str | None = None):
        self.segs = [] if seg is None else [seg]
        self.expected = expected
        self.got = got


def _key_segment(key: str) -> str:
    return join_key("", key)


def _type_phrase(schema: dict) -> str:
    t = schema.get("type")
    if isinstance(t, str):
        return t
    return "number"


def _gate(schema: dict):
    """(fast exact-type set, type names, expected phrase) for `type`, or None without it."""
    if "type" not in schema:
        return None
    types = schema["type"]
    types = (types,) if isinstance(types, str) else tuple(types)
    fast = frozenset(t for name in types for t in _FAST_TYPES[name])
    return fast, types, " or ".join(types)


def _value_hook(schema: dict):
    """The `const` and `enum` checks of a node (in that order), or None."""
    has_const, has_enum = "const" in schema, "enum" in schema
    if not has_const and not has_enum:
        return None
    const = schema.get("const")
    const_expected = f"exactly {_short(const)}" if has_const else ""
    enum = list(schema.get("enum", ()))
    enum_expected = f"one of {json.dumps(schema['enum'])}" if has_enum else ""
    # Membership by hashing is exact JSON equality for plain strings and for finite
    # numbers against plain numeric members (1 == 1.0, hash(1) == hash(1.0)); a bool
    # member never equals a number in JSON, so only int/float members join `nums`.
    plain = all(type(e) in _PLAIN_TYPES for e in enum)
    strs = frozenset(e for e in enum if type(e) is str) if plain else None
    nums = frozenset(e for e in enum if type(e) is int or type(e) is float) if plain else None

    def enum_ok(x):
        t = type(x)
        if strs is not None:
            if t is str:
                return x in strs
            if t is int or (t is float and x == x):
                return x in nums
        return any(json_equal(x, e) for e in enum)

    def check(x):
        if has_const and not json_equal(x, const):
            return _Fail(const_expected, _short(x))
        if has_enum and not enum_ok(x):
            return _Fail(enum_expected, _short(x))
        return None

    return check


class _Compiler:
    """Compiles the nodes of one root schema; `$ref` targets are compiled once and shared."""

    def __init__(self, root: dict):
        self.root = root
        self.done: dict[int, Any] = {}
        self.boxes: dict[int, list] = {}

    def ref(self, ref: str):
        target = resolve_ref(self.root, ref)
        key = id(target)
        if key in self.done:
            return self.done[key]
        if key in self.boxes:  # a recursive reference: resolved when its compile finishes
            box = self.boxes[key]
            return lambda x: box[0](x) if box[0] is not None else None
        box = self.boxes[key] = [None]
        checker = box[0] = self.node(target)
        self.done[key] = checker
        return checker

    def node(self, schema: dict):
        """The checker for one schema node (None when it accepts everything)."""
        ref = self.ref(schema["$ref"]) if "$ref" in schema else None
        gate = _gate(schema)
        hook = _value_hook(schema)
        own = {k for k in schema if k in ASSERTION_KEYWORDS} - {"$ref"}
        if not own:
            return ref
        if ref is None and gate is not None and len(gate[1]) == 1:
            kind = gate[1][0]
            builder = _KIND_BUILDERS.get(kind)
            if builder is None:  # boolean, null: nothing beyond type, const, enum
                return _scalar_node(gate, hook)
            return builder(self, schema, gate, hook, kind)
        return self.general(schema, ref, gate, hook)

    def general(self, schema: dict, ref, gate, hook):
        """A node with `$ref` beside other keywords, several types, or no type."""
        phrase = _type_phrase(schema)
        numeric = _number_node(self, schema, None, None, phrase)
        by_kind = {
            "integer": numeric, "number": numeric,
            "string": _string_node(self, schema, None, None, "string"),
            "array": _array_node(self, schema, None, None, "array"),
            "object": _object_node(self, schema, None, None, "object"),
        }
        by_kind = {k: v for k, v in by_kind.items() if v is not None}
        fast, types, type_expected = gate if gate is not None else (None, (), "")

        def check(x):
            if ref is not None:
                found = ref(x)
                if found is not None:
                    return found
            if fast is not None and type(x) not in fast and not any(_is_type(x, t) for t in types):
                return _Fail(type_expected, json_type(x))
            if hook is not None:
                found = hook(x)
                if found is not None:
                    return found
            constraints = by_kind.get(json_type(x))
            return constraints(x) if constraints is not None else None

        return check


def _scalar_node(gate, hook):
    fast, types, type_expected = gate
    kind = types[0]

    def check(x):
        if type(x) not in fast and not _is_type(x, kind):
            return _Fail(type_expected, json_type(x))
        return hook(x) if hook is not None else None

    return check


# The kind builders below make a single-type node (type gate and value hook inline) when
# given `gate`, or the kind's constraints alone (gate and hook None) for `general`, which
# has checked the rest already. Without constraints of their kind, constraints-only is None.

def _number_node(comp, schema, gate, hook, phrase):
    has_min, has_max = "minimum" in schema, "maximum" in schema
    if gate is None and not (has_min or has_max):
        return None
    lo = schema["minimum"] if has_min else -_INF
    hi = schema["maximum"] if has_max else _INF
    lo_expected = f"{phrase} >= {schema.get('minimum')}"
    hi_expected = f"{phrase} <= {schema.get('maximum')}"
    fast, kind, type_expected = (gate[0], gate[1][0], gate[2]) if gate else (None, None, None)

    def check(x):
        if fast is not None:
            if type(x) not in fast and not _is_type(x, kind):
                return _Fail(type_expected, json_type(x))
            if hook is not None:
                found = hook(x)
                if found is not None:
                    return found
        if x < lo:
            return _Fail(lo_expected, _short(x))
        if x > hi:
            return _Fail(hi_expected, _short(x))
        return None

    return check


def _string_node(comp, schema, gate, hook, kind):
    has_min, has_max = "minLength" in schema, "maxLength" in schema
    pattern = schema.get("pattern")
    if gate is None and not (has_min or has_max or pattern is not None):
        return None
    lo = schema["minLength"] if has_min else 0
    hi = schema["maxLength"] if has_max else _INF
    lo_expected = f"string of at least {schema.get('minLength')} characters"
    hi_expected = f"string of at most {schema.get('maxLength')} characters"
    search = _compile_pattern(pattern).search if pattern is not None else None
    pattern_expected = f"string matching {pattern}"
    fast, type_expected = (gate[0], gate[2]) if gate else (None, None)

    def check(x):
        if fast is not None:
            if type(x) not in fast and not _is_type(x, kind):
                return _Fail(type_expected, json_type(x))
            if hook is not None:
                found = hook(x)
                if found is not None:
                    return found
        n = len(x)
        if n < lo:
            return _Fail(lo_expected, f"{n} characters")
        if n > hi:
            return _Fail(hi_expected, f"{n} characters")
        if search is not None and search(x) is None:
            return _Fail(pattern_expected, _short(x))
        return None

    return check


def _array_node(comp, schema, gate, hook, kind):
    has_min, has_max = "minItems" in schema, "maxItems" in schema
    items = schema.get("items", True)
    no_items = items is False
    item = comp.node(items) if isinstance(items, dict) and items else None
    if gate is None and not (has_min or has_max or no_items or item is not None):
        return None
    lo = schema["minItems"] if has_min else 0
    hi = schema["maxItems"] if has_max else _INF
    lo_expected = f"array of at least {schema.get('minItems')} items"
    hi_expected = f"array of at most {schema.get('maxItems')} items"
    fast, type_expected = (gate[0], gate[2]) if gate else (None, None)

    def check(x):
        if fast is not None:
            if type(x) not in fast and not _is_type(x, kind):
                return _Fail(type_expected, json_type(x))
            if hook is not None:
                found = hook(x)
                if found is not None:
                    return found
        n = len(x)
        if n < lo:
            return _Fail(lo_expected, f"{n} items")
        if n > hi:
            return _Fail(hi_expected, f"{n} items")
        if no_items and n:
            return _Fail("no items", _short(x[0]), "[0]")
        if item is not None:
            for index, value in enumerate(x):
                found = item(value)
                if found is not None:
                    found.segs.append(f"[{index}]")
                    return found
        return None

    return check


def _object_node(comp, schema, gate, hook, kind):
    required = list(schema.get("required", ()))
    props = schema.get("properties", {})
    closed = schema.get("additionalProperties", True) is False
    members = [(name, _key_segment(name), comp.node(sub)) for name, sub in props.items()]
    members = [m for m in members if m[2] is not None]
    if gate is None and not (required or closed or members):
        return None
    required_all = frozenset(required)
    required_list = [(name, _key_segment(name)) for name in required]
    allowed = frozenset(props)
    fast, type_expected = (gate[0], gate[2]) if gate else (None, None)

    def check(x):
        if fast is not None:
            if type(x) not in fast and not _is_type(x, kind):
                return _Fail(type_expected, json_type(x))
            if hook is not None:
                found = hook(x)
                if found is not None:
                    return found
        if required_list and not x.keys() >= required_all:
            for name, seg in required_list:
                if name not in x:
                    return _Fail("required", "missing", seg)
        if closed and not allowed.issuperset(x):
            for key in x:
                if key not in allowed:
                    return _Fail("no additional properties", "unexpected member", _key_segment(key))
        for name, seg, sub in members:
            if name in x:
                found = sub(x[name])
                if found is not None:
                    found.segs.append(seg)
                    return found
        return None

    return check


_KIND_BUILDERS = {
    "integer": _number_node, "number": _number_node, "string": _string_node,
    "array": _array_node, "object": _object_node,
}


def compile_schema(root: dict):
    """The checker for a (subset-checked) root schema: instance -> _Fail | None."""
    checker = _Compiler(root).node(root)
    return checker if checker is not None else (lambda x: None)


def resolve_ref(root: dict, ref: str) -> dict:
    if not ref.startswith("#/$defs/"):
        raise ValueError(f"unsupported $ref {ref!r} (only '#/$defs/<name>')")
    name = ref[len("#/$defs/"):]
    try:
        return root["$defs"][name]
    except KeyError:
        raise ValueError(f"dangling $ref {ref!r}") from None


def check_subset(schema: dict, root: dict | None = None, where: str = "#") -> None:
    """Reject a schema that uses anything this validator does not implement."""
    root = schema if root is None else root
    if not isinstance(schema, dict):
        raise ValueError(f"{where}: schema must be an object")
    for key, value in schema.items():
        if key in ANNOTATION_KEYWORDS:
            continue
        if key not in ASSERTION_KEYWORDS:
            raise ValueError(f"{where}: unsupported keyword {key!r}")
        if key == "type":
            names = [value] if isinstance(value, str) else value
            if not names or any(n not in TYPE_NAMES for n in names):
                raise ValueError(f"{where}: bad type {value!r}")
        elif key == "additionalProperties" and not isinstance(value, bool):
            raise ValueError(f"{where}: additionalProperties must be a boolean")
        elif key == "$ref":
            resolve_ref(root, value)
        elif key == "pattern":
            _compile_pattern(value)
        elif key == "properties":
            for name, sub in value.items():
                check_subset(sub, root, f"{where}/properties/{name}")
        elif key == "items" and not isinstance(value, bool):
            check_subset(value, root, f"{where}/items")
    for name, sub in schema.get("$defs", {}).items():
        check_subset(sub, root, f"{where}/$defs/{name}")


@functools.lru_cache(maxsize=None)
def _load(name: str) -> dict:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"bad schema name {name!r}")
    schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))
    check_subset(schema)
    return schema


def load_schema(name: str) -> dict:
    """The schema `schemas/<name>.json` (a fresh copy: callers may not mutate the cache)."""
    return json.loads(json.dumps(_load(name)))


def schema_names() -> list[str]:
    return sorted(p.stem for p in SCHEMA_DIR.glob("*.json"))


@functools.lru_cache(maxsize=None)
def _checker(name: str):
    """The compiled checker of a named schema (compiled on first use, then shared)."""
    return compile_schema(_load(name))


def _violation(found: _Fail, path: str) -> Violation:
    segs = found.segs
    segs.reverse()
    return Violation(path + "".join(segs), found.expected, found.got)


def find_violation(instance: Any, schema: str | dict, path: str = "$") -> Violation | None:
    """The first violation, or None. `schema` is a schema name or a (subset) schema dict.

    A dict is subset-checked and compiled on every call (dicts are mutable, so a compiled
    form cannot be cached safely); hot paths pass a name, compiled once per process.
    """
    if isinstance(schema, str):
        checker = _checker(schema)
    else:
        check_subset(schema)
        checker = compile_schema(schema)
    found = checker(instance)
    return None if found is None else _violation(found, path)


def validate(instance: Any, schema_name: str, path: str = "$") -> None:
    """Raise ProtocolError('schema_violation', path=, expected=, got=) on the first violation."""
    found = _checker(schema_name)(instance)
    if found is not None:
        v = _violation(found, path)
        raise ProtocolError("schema_violation", v.message, path=v.path,
                            expected=v.expected, got=v.got)
