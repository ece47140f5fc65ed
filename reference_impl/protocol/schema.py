"""A small JSON Schema (2020-12 subset) validator that reports JSON paths.

Why not a library: the reference implementation is standard-library only, and the SPEC
asks for errors that name the exact offending path (`$.payload.records[3]`) with a short
`expected` phrase, which is easier to guarantee with a validator written for the subset
our schemas use. The subset is enforced when a schema is loaded: a keyword outside it is
an error, never silently ignored, so a schema cannot say more than this code checks.

Semantics follow JSON Schema, not Python: `true` is not an integer, `1.0` is one; `$` in a
pattern anchors at the very end (ECMA-262), not before a trailing newline as in Python.
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
    """Equality as JSON Schema defines it: 1 == 1.0, but true != 1; deep for containers."""
    ta, tb = json_type(a), json_type(b)
    numeric = ("integer", "number")
    if ta in numeric and tb in numeric:
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


def _type_phrase(schema: dict) -> str:
    t = schema.get("type")
    if isinstance(t, str):
        return t
    return "number"


def _check(instance: Any, schema: dict, path: str, root: dict) -> Violation | None:
    """First violation of `instance` against `schema` (depth-first, keyword order fixed)."""
    if "$ref" in schema:
        found = _check(instance, resolve_ref(root, schema["$ref"]), path, root)
        if found:
            return found

    if "type" in schema:
        types = schema["type"]
        types = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(instance, t) for t in types):
            return Violation(path, " or ".join(types), json_type(instance))

    if "const" in schema and not json_equal(instance, schema["const"]):
        return Violation(path, f"exactly {_short(schema['const'])}", _short(instance))
    if "enum" in schema and not any(json_equal(instance, e) for e in schema["enum"]):
        return Violation(path, f"one of {json.dumps(schema['enum'])}", _short(instance))

    kind = json_type(instance)
    if kind in ("integer", "number"):
        if "minimum" in schema and instance < schema["minimum"]:
            return Violation(path, f"{_type_phrase(schema)} >= {schema['minimum']}", _short(instance))
        if "maximum" in schema and instance > schema["maximum"]:
            return Violation(path, f"{_type_phrase(schema)} <= {schema['maximum']}", _short(instance))
    elif kind == "string":
        if "minLength" in schema and len(instance) < schema["minLength"]:
            return Violation(path, f"string of at least {schema['minLength']} characters", f"{len(instance)} characters")
        if "maxLength" in schema and len(instance) > schema["maxLength"]:
            return Violation(path, f"string of at most {schema['maxLength']} characters", f"{len(instance)} characters")
        if "pattern" in schema and not _compile_pattern(schema["pattern"]).search(instance):
            return Violation(path, f"string matching {schema['pattern']}", _short(instance))
    elif kind == "array":
        if "minItems" in schema and len(instance) < schema["minItems"]:
            return Violation(path, f"array of at least {schema['minItems']} items", f"{len(instance)} items")
        if "maxItems" in schema and len(instance) > schema["maxItems"]:
            return Violation(path, f"array of at most {schema['maxItems']} items", f"{len(instance)} items")
        if "items" in schema:
            item_schema = schema["items"]
            if item_schema is False and instance:
                return Violation(join_index(path, 0), "no items", _short(instance[0]))
            if isinstance(item_schema, dict) and item_schema:
                for index, item in enumerate(instance):
                    found = _check(item, item_schema, join_index(path, index), root)
                    if found:
                        return found
    elif kind == "object":
        for name in schema.get("required", ()):
            if name not in instance:
                return Violation(join_key(path, name), "required", "missing")
        props = schema.get("properties", {})
        if schema.get("additionalProperties", True) is False:
            for key in instance:
                if key not in props:
                    return Violation(join_key(path, key), "no additional properties", "unexpected member")
        for name, sub in props.items():
            if name in instance:
                found = _check(instance[name], sub, join_key(path, name), root)
                if found:
                    return found
    return None


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


def find_violation(instance: Any, schema: str | dict, path: str = "$") -> Violation | None:
    """The first violation, or None. `schema` is a schema name or a (subset) schema dict."""
    if isinstance(schema, str):
        root = _load(schema)
    else:
        root = schema
        check_subset(root)
    return _check(instance, root, path, root)


def validate(instance: Any, schema_name: str, path: str = "$") -> None:
    """Raise ProtocolError('schema_violation', path=, expected=, got=) on the first violation."""
    found = find_violation(instance, schema_name, path)
    if found:
        raise ProtocolError("schema_violation", found.message, path=found.path,
                            expected=found.expected, got=found.got)
