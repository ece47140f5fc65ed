"""Hypothesis strategies for hostile frames (SPEC §4, §5, §7).

Why: a service must survive anything on its socket — random bytes, huge lines, deep
nesting, invalid UTF-8, wrong types in envelope fields — answering with the right error
and staying up. Each strategy yields a `HostileFrame` (bytes to send, one line) with the
set of error names a correct server may answer; use them with `derandomize=True` or a
fixed seed so a failing run can be replayed.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from hypothesis import strategies as st

__all__ = ["HostileFrame", "random_bytes", "invalid_utf8", "deep_nesting", "huge_line",
           "envelope_wrong_types", "not_an_object", "hostile_frames", "MAX_FRAME_BYTES",
           "ENVELOPE_FIELDS", "TRACEPARENT_RE", "TASK_ID_RE"]

MAX_FRAME_BYTES = 1048576
MAX_DEPTH = 32


@dataclass(frozen=True)
class HostileFrame:
    name: str
    data: bytes                  # ends with b"\n"; no other raw newline inside
    expected: frozenset[str]     # acceptable error names in the reply
    closes: bool = False         # the server must close the connection after replying
    path: str | None = None      # for schema_violation: the path a correct server names

    def __repr__(self) -> str:   # keep hypothesis' failure output readable
        return (f"HostileFrame({self.name!r}, {len(self.data)} bytes: {self.data[:80]!r}..., "
                f"expected={sorted(self.expected)})")


def _line(body: bytes) -> bytes:
    return body.replace(b"\n", b"") + b"\n"


def _is_blank_line(body: bytes) -> bool:
    return body.replace(b"\r", b"") == b""


@st.composite
def random_bytes(draw, max_size: int = 512) -> HostileFrame:
    """Arbitrary bytes as one line: malformed, or (if it parses to an object) unauthorized."""
    body = draw(st.binary(min_size=1, max_size=max_size)
                .map(lambda b: b.replace(b"\n", b""))
                .filter(lambda b: not _is_blank_line(b) and not b.endswith(b"\r")))
    return HostileFrame("random_bytes", _line(body), frozenset({"malformed_frame", "unauthorized"}))


@st.composite
def invalid_utf8(draw, token: str = "t") -> HostileFrame:
    """A frame that would be a valid request, with an invalid UTF-8 sequence inside a string."""
    bad = draw(st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
                                b"\xe2\x82", b"\x80", b"\xc3"]))
    prefix = draw(st.text(alphabet="abcxyz", max_size=8)).encode()
    body = (b'{"v":1,"type":"hello","msg_id":"m-' + prefix + bad + b'","token":'
            + json.dumps(token).encode() + b',"payload":{"versions":[1],"role":"orchestrator"}}')
    return HostileFrame("invalid_utf8", _line(body), frozenset({"malformed_frame"}))


@st.composite
def deep_nesting(draw, token: str = "t") -> HostileFrame:
    """An authenticated request whose payload nests past depth 32 (or exactly at it)."""
    depth = draw(st.integers(min_value=MAX_DEPTH + 1, max_value=2000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    inner = opener * (depth - 2) + "1" + closer * (depth - 2)     # envelope=1, payload=2
    body = ('{"v":1,"type":"hello","msg_id":"m-deep","token":' + json.dumps(token)
            + ',"payload":{"x":' + inner + "}}").encode()
    return HostileFrame(f"deep_nesting_{depth}", _line(body), frozenset({"malformed_frame"}))


@st.composite
def huge_line(draw, token: str = "t") -> HostileFrame:
    """Over 1 MiB without a newline before the end: frame_too_large, then close."""
    extra = draw(st.integers(min_value=1, max_value=64 * 1024))
    filler = draw(st.sampled_from([b"a", b" ", b"{", b"\xff"]))
    head = b'{"v":1,"type":"hello","msg_id":"m-huge","token":' + json.dumps(token).encode() + b',"pad":"'
    body = head + filler * (MAX_FRAME_BYTES + extra - len(head))
    return HostileFrame("huge_line", _line(body), frozenset({"frame_too_large"}), closes=True)


@st.composite
def not_an_object(draw) -> HostileFrame:
    value = draw(st.one_of(st.integers(), st.text(max_size=20), st.lists(st.integers(), max_size=3),
                           st.booleans(), st.none(), st.just("NaN")))
    body = json.dumps(value).encode() if value != "NaN" else b"NaN"
    return HostileFrame("not_an_object", _line(body), frozenset({"malformed_frame"}))


_BAD_VALUES = {
    "v": [("1", "$.v"), (None, "$.v"), (True, "$.v"), (1.5, "$.v"), ([1], "$.v"), ({}, "$.v")],
    "type": [(1, "$.type"), (None, "$.type"), (["hello"], "$.type"), ({}, "$.type")],
    "msg_id": [(7, "$.msg_id"), ("", "$.msg_id"), ("m" * 129, "$.msg_id"), (None, "$.msg_id"),
               (["m"], "$.msg_id")],
    "payload": [([], "$.payload"), ("{}", "$.payload"), (None, "$.payload"), (3, "$.payload")],
    "traceparent": [(5, "$.traceparent"), ("00-xyz", "$.traceparent"),
                    ("00-" + "0" * 31 + "-" + "1" * 16 + "-01", "$.traceparent")],
}

ENVELOPE_FIELDS = frozenset({"v", "type", "msg_id", "task_id", "token", "traceparent", "payload"})
TRACEPARENT_RE = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
TASK_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
_json_small = st.recursive(_scalar, lambda ch: st.one_of(st.lists(ch, max_size=3),
                           st.dictionaries(st.text(max_size=6), ch, max_size=3)), max_leaves=6)
_not_str = _json_small.filter(lambda x: not isinstance(x, str))
_not_obj = _json_small.filter(lambda x: not isinstance(x, dict))


def _is_int(x) -> bool:
    """An integer as JSON Schema counts them (1.0 is the integer 1; booleans are not)."""
    return (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())


# Generated wrong values per envelope field: (strategy, expected error name). Why generated
# rather than listed: a fixed list of ~20 values is exhausted after a few dozen examples
# and hypothesis stops early; these give thousands of distinct frames, still derandomised.
_GENERATED = {
    "v": st.one_of(_json_small.filter(lambda x: not _is_int(x)).map(lambda x: (x, "schema_violation")),
                   st.integers(-2**40, 2**40).filter(lambda n: n != 1).map(lambda n: (n, "unsupported_version"))),
    "type": _not_str.map(lambda x: (x, "schema_violation")),
    "msg_id": st.one_of(_not_str, st.just(""), st.text(min_size=129, max_size=300)).map(
        lambda x: (x, "schema_violation")),
    "payload": _not_obj.map(lambda x: (x, "schema_violation")),
    "traceparent": st.one_of(_not_str, st.text(max_size=60).filter(lambda t: not TRACEPARENT_RE.match(t)),
                             st.text("0123456789abcdefABCDEF", min_size=32, max_size=32).filter(
                                 lambda h: h != h.lower()).map(lambda h: f"00-{h}-{'1' * 16}-01")).map(
        lambda x: (x, "schema_violation")),
    "task_id": st.one_of(_not_str, st.text(max_size=80).filter(lambda t: not TASK_ID_RE.match(t))).map(
        lambda x: (x, "schema_violation")),
}


@st.composite
def envelope_wrong_types(draw, token: str = "t") -> HostileFrame:
    """An authenticated hello with one envelope field of the wrong type/shape, or one
    unknown envelope field: a listed classic or a generated value (SPEC §5, §7 steps 3-4)."""
    frame = {"v": 1, "type": "hello", "msg_id": "m-env-" + draw(st.text("abcdef0123456789", max_size=8)),
             "token": token, "payload": {"versions": [1], "role": "orchestrator"}}
    kind = draw(st.sampled_from(["listed", "generated", "generated", "unknown_field"]))
    if kind == "listed":
        fieldname = draw(st.sampled_from(sorted(_BAD_VALUES)))
        value, path = draw(st.sampled_from(_BAD_VALUES[fieldname]))
        frame[fieldname] = value
        expected = "schema_violation"
    elif kind == "generated":
        fieldname = draw(st.sampled_from(sorted(_GENERATED)))
        value, expected = draw(_GENERATED[fieldname])
        frame[fieldname] = value
        path = f"$.{fieldname}" if expected == "schema_violation" else None
    else:
        fieldname = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in ENVELOPE_FIELDS))
        frame[fieldname] = draw(_json_small)
        expected, path = "schema_violation", None
    body = json.dumps(frame).encode()
    return HostileFrame(f"envelope_{kind}_{'unknown' if kind == 'unknown_field' else fieldname}",
                        _line(body), frozenset({expected}), path=path)


def hostile_frames(token: str, *, include_huge: bool = False) -> st.SearchStrategy[HostileFrame]:
    """Any of the above (huge lines are opt-in: they cost 1 MiB each)."""
    options = [random_bytes(), invalid_utf8(token), deep_nesting(token), not_an_object(),
               envelope_wrong_types(token)]
    if include_huge:
        options.append(huge_line(token))
    return st.one_of(*options)
