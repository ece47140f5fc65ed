"""One bounded decoder for every candidate byte the grader reads.

Why one module: protocol replies, HTTP bodies (/readyz, /livez, /metrics, the dashboard's
JSON), log lines and memory files all come from the candidate, so all of them can be
hostile: a line of `[` x 3000 makes `json.loads` raise RecursionError, a 10 MB line costs
memory, bytes that are not UTF-8 raise UnicodeDecodeError, `NaN` is not JSON. Each of
those used to escape a check as a *grader error* (not counted against the candidate),
which is how garbage could raise a score. Here every limit is checked before any
recursive parsing, and every failure is a `CandidateDataError`: the harness counts it as
the candidate's failure with the reason as evidence, never as a grader error.

Pure (sans-I/O): bytes or text in, a value or a `CandidateDataError` out.

Policy (SPEC §4 for frames; the same rules for every JSON the candidate produces):
- size: more than `max_bytes` bytes is refused before decoding;
- UTF-8: strict (a lone surrogate, even escaped as `"\\ud800"`, is refused too);
- depth: measured iteratively (no recursion) before `json.loads`; deeper than
  `max_depth` (an object or array inside another counts one level) is refused;
- `NaN`, `Infinity`, `-Infinity` are not JSON: refused;
- numbers: an integer or float too large for a double is refused (SPEC §4), so are
  integer literals longer than `MAX_INT_DIGITS` digits (Python would refuse them anyway);
- duplicate keys: the last one wins, as SPEC §4 says receivers do.
"""
from __future__ import annotations

import json
import math
import re

__all__ = [
    "CandidateDataError", "decode_json", "decode_object", "try_decode_object", "decode_text",
    "json_depth", "exceeds_depth", "DEFAULT_MAX_DEPTH", "MAX_INT_DIGITS",
]

#: A bound on the grader's own work, above SPEC §4's 32 so that a reply echoing a deep
#: (but valid) request is still read; SPEC's own limit is judged by the checks.
DEFAULT_MAX_DEPTH = 64
#: The longest integer literal read (a double's range needs at most 309 digits).
MAX_INT_DIGITS = 400
_DOUBLE_MAX = 1.7976931348623157e308

# A JSON string (unrolled loop: linear, no backtracking) or one bracket.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]|[\]}]', re.DOTALL)
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


class CandidateDataError(ValueError):
    """Bytes from the candidate that the grader refuses to decode.

    A ValueError (so existing `except ValueError` handlers keep working) whose class name
    the harness lists among the candidate's failures. `reason` is short and stable
    ("not UTF-8", "nested deeper than 64 levels", ...); `raw` holds the first bytes."""

    def __init__(self, what: str, reason: str, raw: bytes | str = b""):
        self.what = what
        self.reason = reason
        if isinstance(raw, str):
            raw = raw[:300].encode("utf-8", "backslashreplace")
        self.raw = bytes(raw[:300])
        super().__init__(f"{what}: {reason}: {self.raw[:120]!r}")


def json_depth(text: str, limit: int) -> int:
    """The nesting depth of `text` read as JSON, counted without recursion; stops as soon
    as it exceeds `limit` (then returns limit + 1). Brackets inside strings do not count.
    Text that is not JSON gets some number; `json.loads` refuses it afterwards."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return limit + 1
        elif token in "]}":
            depth -= 1
    return deepest


def exceeds_depth(text: str, limit: int) -> bool:
    """True when `text` nests deeper than `limit` (json_depth, with a fast path in C:
    no more opening brackets than the limit cannot nest deeper than it)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    return json_depth(text, limit) > limit


def _refuse_constant(what: str, raw):
    def refuse(name: str):
        raise CandidateDataError(what, f"{name} is not JSON", raw)
    return refuse


def _float_parser(what: str, raw):
    def parse(text: str) -> float:
        value = float(text)
        if math.isinf(value):
            raise CandidateDataError(what, "a number too large for a double", raw)
        return value
    return parse


def _int_parser(what: str, raw):
    def parse(text: str) -> int:
        if len(text.lstrip("-")) > MAX_INT_DIGITS:
            raise CandidateDataError(what, f"an integer of more than {MAX_INT_DIGITS} digits", raw)
        value = int(text)
        if abs(value) > _DOUBLE_MAX:
            raise CandidateDataError(what, "a number too large for a double", raw)
        return value
    return parse


def _check_strings(value, what: str, raw) -> None:
    """Refuse lone surrogates (`"\\ud800"` decodes to one), iteratively."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if _LONE_SURROGATE.search(v):
                raise CandidateDataError(what, "a lone surrogate (not valid Unicode)", raw)
        elif isinstance(v, dict):
            for k, x in v.items():
                if _LONE_SURROGATE.search(k):
                    raise CandidateDataError(what, "a lone surrogate (not valid Unicode)", raw)
                stack.append(x)
        elif isinstance(v, list):
            stack.extend(v)


def decode_text(data: bytes | str, *, what: str, max_bytes: int, strict: bool = True) -> str:
    """Bounded UTF-8 text. `strict=False` replaces invalid bytes with U+FFFD (for text the
    grader only searches, e.g. the metrics exposition, whose own checker reports it)."""
    if isinstance(data, str):
        if len(data) > max_bytes:  # characters >= bytes/4: a cheap first bound
            raise CandidateDataError(what, f"over {max_bytes} bytes", data)
        if len(data.encode("utf-8", "surrogatepass")) > max_bytes:
            raise CandidateDataError(what, f"over {max_bytes} bytes", data)
        return data
    if len(data) > max_bytes:
        raise CandidateDataError(what, f"over {max_bytes} bytes ({len(data)} bytes)", data)
    try:
        return bytes(data).decode("utf-8") if strict else bytes(data).decode("utf-8", "replace")
    except UnicodeDecodeError as exc:
        raise CandidateDataError(what, f"not UTF-8 (byte {exc.start})", data) from None


def decode_json(data: bytes | str, *, what: str, max_bytes: int,
                max_depth: int = DEFAULT_MAX_DEPTH) -> object:
    """One JSON value from candidate bytes, within the bounds above, or CandidateDataError."""
    text = decode_text(data, what=what, max_bytes=max_bytes)
    if exceeds_depth(text, max_depth):
        raise CandidateDataError(what, f"nested deeper than {max_depth} levels", data)
    try:
        value = json.loads(text, parse_constant=_refuse_constant(what, data),
                           parse_float=_float_parser(what, data), parse_int=_int_parser(what, data))
    except CandidateDataError:
        raise
    except RecursionError:  # cannot happen after json_depth; kept so nothing escapes
        raise CandidateDataError(what, f"nested deeper than {max_depth} levels", data) from None
    except ValueError as exc:
        raise CandidateDataError(what, f"not JSON ({exc})", data) from None
    if not isinstance(data, (bytes, bytearray)) or _ESCAPED_SURROGATE.search(text):
        _check_strings(value, what, data)
    return value


def decode_object(data: bytes | str, *, what: str, max_bytes: int,
                  max_depth: int = DEFAULT_MAX_DEPTH) -> dict:
    """Like decode_json, and the value must be a JSON object."""
    value = decode_json(data, what=what, max_bytes=max_bytes, max_depth=max_depth)
    if not isinstance(value, dict):
        raise CandidateDataError(what, f"not an object (a JSON {type(value).__name__})", data)
    return value


def try_decode_object(data: bytes | str, *, max_bytes: int,
                      max_depth: int = DEFAULT_MAX_DEPTH) -> dict | None:
    """The JSON object in `data`, or None for anything else (a log line that is not JSON,
    a frame a fault proxy only records): for readers whose policy for garbage is to skip it."""
    try:
        return decode_object(data, what="data", max_bytes=max_bytes, max_depth=max_depth)
    except CandidateDataError:
        return None
