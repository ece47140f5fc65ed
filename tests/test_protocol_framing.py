"""FrameDecoder / encode_frame (SPEC §4): limits, malformed input, chunking, round trips."""

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_impl.protocol.framing import (
    MAX_DEPTH, MAX_FRAME_BYTES, Decoded, FrameDecoder, check_depth, decode_frame, encode_frame,
    text_depth_exceeds,
)

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "challenges" / "schemas"
REPLY_VALIDATOR = jsonschema.Draft202012Validator(
    json.loads((SCHEMA_DIR / "envelope_reply.json").read_text(encoding="utf-8")))
SETTINGS = settings(max_examples=200, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def feed_all(chunks, decoder=None):
    decoder = decoder or FrameDecoder()
    out = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


def error_name(d: Decoded):
    assert d.kind == "error"
    REPLY_VALIDATOR.validate(d.value)
    assert d.value["in_reply_to"] is None and d.value["task_id"] is None
    return d.value["error"]["name"]


def nested(depth: int, open_="[", close="]") -> str:
    """An object at depth 1 holding arrays down to `depth` levels in all."""
    return '{"a":' + open_ * (depth - 1) + close * (depth - 1) + "}"


# ---- well-formed input -------------------------------------------------------------------

def test_frames_crlf_and_empty_lines():
    out = feed_all([b'{"a":1}\r\n\n\r\n{"b":[1,2]}\n'])
    assert [(d.kind, d.value) for d in out] == [("frame", {"a": 1}), ("frame", {"b": [1, 2]})]


def test_duplicate_keys_last_wins_and_unicode():
    out = feed_all(['{"k":1,"k":"é😀"}\n'.encode()])
    assert out[0].value == {"k": "é😀"}


def test_partial_frame_waits_for_newline():
    d = FrameDecoder()
    assert d.feed(b'{"a":') == []
    assert d.feed(b"1}") == []
    assert d.feed(b"\n")[0].value == {"a": 1}
    assert d.buffered == 0


def test_encode_frame_is_compact_single_line():
    data = encode_frame({"a": [1, {"b": "x\ny"}], "é": None})
    assert data == '{"a":[1,{"b":"x\\ny"}],"é":null}\n'.encode()
    assert data.count(b"\n") == 1
    with pytest.raises(ValueError):
        encode_frame({"x": float("nan")})


# ---- malformed input ----------------------------------------------------------------------

@pytest.mark.parametrize("line, reason", [
    (b"\xff\xfe{{{", "not utf-8"),
    (b'{"a":"\xed\xa0\x80"}', "not utf-8"),            # UTF-8-encoded lone surrogate
    (b'{"a":"\xc0\xaf"}', "not utf-8"),                # overlong
    (b'{"a":"\\ud800"}', "not utf-8"),                 # escaped lone surrogate
    (b'{"\\udc00":1}', "not utf-8"),                   # ... in a key
    (b"not json", "not json"),
    (b'{"a":1', "not json"),
    (b'{"a":NaN}', "not json"),
    (b'{"a":-Infinity}', "not json"),
    (b'{"a":Infinity}', "not json"),
    (b'{"a":1e400}', "not json"),                      # parses to inf in plain json.loads
    (b'{"a":' + b"9" * 5000 + b"}", "not json"),       # over Python's int digit limit
    (b"\xef\xbb\xbf{}", "not json"),                   # BOM
    (b"[1,2]", "not an object"),
    (b'"str"', "not an object"),
    (b"null", "not an object"),
    (b" ", "not json"),
])
def test_malformed_frames(line, reason):
    out = feed_all([line + b"\n"])
    assert len(out) == 1 and error_name(out[0]) == "malformed_frame"
    assert out[0].value["error"]["details"]["reason"] == reason
    assert out[0].close is False


def test_reference_error_example_for_garbage_bytes():
    out = feed_all([b"\xff\xfe{{{\n"])
    assert out[0].value["error"] == {"code": 12, "name": "malformed_frame", "definite": True,
                                     "retryable": False, "message": "frame is not valid UTF-8",
                                     "details": {"reason": "not utf-8"}}


def test_paired_surrogate_escape_is_fine():
    assert feed_all([b'{"a":"\\ud83d\\ude00"}\n'])[0].value == {"a": "😀"}


def test_connection_continues_after_malformed():
    out = feed_all([b'nope\n{"ok":true}\n'])
    assert [d.kind for d in out] == ["error", "frame"]


# ---- depth ----------------------------------------------------------------------------------

def test_depth_limit_exact():
    assert feed_all([nested(MAX_DEPTH).encode() + b"\n"])[0].kind == "frame"
    assert error_name(feed_all([nested(MAX_DEPTH + 1).encode() + b"\n"])[0]) == "malformed_frame"
    objects = lambda depth: '{"k":' * (depth - 1) + "{}" + "}" * (depth - 1)
    assert feed_all([objects(MAX_DEPTH).encode() + b"\n"])[0].kind == "frame"
    assert error_name(feed_all([objects(MAX_DEPTH + 1).encode() + b"\n"])[0]) == "malformed_frame"


@pytest.mark.parametrize("depth", [1000, 100_000, 500_000])
def test_very_deep_nesting_is_malformed_not_a_crash(depth):
    line = b"[" * depth + b"]" * depth
    out = feed_all([line + b"\n"])
    assert out[0].value["error"]["details"]["reason"] == "too deep"
    unbalanced = b'{"a":' + b"[" * depth
    assert feed_all([unbalanced + b"\n"])[0].value["error"]["name"] == "malformed_frame"


def test_unclosed_nesting_counts_as_too_deep():
    text = '{"a":' + "[" * MAX_DEPTH
    assert text_depth_exceeds(text)
    assert feed_all([text.encode() + b"\n"])[0].value["error"]["details"]["reason"] == "too deep"
    assert not text_depth_exceeds('{"a":' + "[" * (MAX_DEPTH - 1))


def test_brackets_inside_strings_do_not_count():
    text = '{"s":"' + "[" * 100 + '\\"{{{{' + '","t":"\\\\"}'
    assert feed_all([text.encode() + b"\n"])[0].kind == "frame"
    assert not text_depth_exceeds(text)


@SETTINGS
@given(st.recursive(st.none() | st.integers() | st.text(alphabet='[]{}"\\ab', max_size=6),
                    lambda c: st.lists(c, max_size=2) | st.dictionaries(st.text('[]{}"\\', max_size=3), c, max_size=2),
                    max_leaves=60))
def test_text_depth_matches_object_depth(value):
    obj = {"v": value}
    text = json.dumps(obj)
    assert text_depth_exceeds(text, MAX_DEPTH) == (not check_depth(obj, MAX_DEPTH))
    for limit in (1, 2, 3, 5):
        assert text_depth_exceeds(text, limit) == (not check_depth(obj, limit))


def test_check_depth_iterative_on_deep_objects():
    deep = {}
    cur = deep
    for _ in range(50_000):
        cur["x"] = {}
        cur = cur["x"]
    assert check_depth(deep) is False
    assert check_depth({"a": [[]]}, 3) is True and check_depth({"a": [[[]]]}, 3) is False


# ---- size -------------------------------------------------------------------------------------

def _frame_of_size(size: int) -> bytes:
    body = b'{"p":"' + b"x" * (size - 8) + b'"}'
    assert len(body) == size
    return body


def test_frame_exactly_at_limit_is_accepted_with_lf_and_crlf():
    for ending in (b"\n", b"\r\n"):
        d = FrameDecoder()
        out = feed_all([_frame_of_size(MAX_FRAME_BYTES)[:500_000], _frame_of_size(MAX_FRAME_BYTES)[500_000:] + ending], d)
        assert [x.kind for x in out] == ["frame"]


def test_frame_one_byte_over_limit_closes():
    out = feed_all([_frame_of_size(MAX_FRAME_BYTES + 1) + b"\n"])
    assert len(out) == 1 and error_name(out[0]) == "frame_too_large" and out[0].close
    assert out[0].value["error"]["details"] == {"limit_bytes": MAX_FRAME_BYTES}


def test_100mb_line_never_buffers_beyond_limit():
    d = FrameDecoder()
    chunk = b"y" * 65536
    fed, out = 0, []
    while not out and fed < 100 * 2**20:
        out = d.feed(chunk)
        fed += len(chunk)
        assert d.buffered <= MAX_FRAME_BYTES + len(chunk)
    assert fed <= MAX_FRAME_BYTES + len(chunk)
    assert error_name(out[-1]) == "frame_too_large" and out[-1].close
    # closed: everything later is discarded, nothing buffered, nothing returned
    for _ in range(32):
        assert d.feed(chunk + b"\n{}\n") == []
        assert d.buffered == 0


def test_frames_before_an_oversized_one_are_delivered():
    out = feed_all([b'{"a":1}\n' + b"z" * (MAX_FRAME_BYTES + 10)])
    assert [x.kind for x in out] == ["frame", "error"] and out[1].close


# ---- properties -------------------------------------------------------------------------------

def _chunked(data: bytes, cuts):
    cuts = sorted(set(c % (len(data) + 1) for c in cuts))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


@SETTINGS
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_any_bytes_any_chunking_never_raises(data, cuts):
    whole = feed_all([data])
    pieces = feed_all(_chunked(data, cuts))
    assert whole == pieces
    for d in pieces:
        assert d.kind in ("frame", "error")
        if d.kind == "frame":
            assert isinstance(d.value, dict) and check_depth(d.value)
        else:
            REPLY_VALIDATOR.validate(d.value)
            encode_frame(d.value)


JSON_LEAVES = (st.none() | st.booleans() | st.integers() | st.text()
               | st.floats(allow_nan=False, allow_infinity=False))
JSON_OBJECTS = st.dictionaries(st.text(), st.recursive(
    JSON_LEAVES, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(), c, max_size=3),
    max_leaves=20), max_size=4)


@SETTINGS
@given(frames=st.lists(JSON_OBJECTS, max_size=4), cuts=st.lists(st.integers(0, 10_000), max_size=6),
       crlf=st.booleans())
def test_encode_decode_round_trip(frames, cuts, crlf):
    stream = b"".join(encode_frame(f) for f in frames)
    if crlf:
        stream = stream.replace(b"\n", b"\r\n")  # safe: encoded JSON has no raw newline
    out = feed_all(_chunked(stream, cuts))
    assert [d.kind for d in out] == ["frame"] * len(frames)
    assert [d.value for d in out] == frames


@SETTINGS
@given(junk=st.binary(max_size=60), good=JSON_OBJECTS)
def test_garbage_line_then_good_frame(junk, good):
    junk = junk.replace(b"\n", b"")
    out = feed_all([junk + b"\n" + encode_frame(good)])
    assert out[-1] == Decoded("frame", good, False)


def test_decode_frame_direct():
    assert decode_frame(b'{"a":[]}').value == {"a": []}
