"""graders/decode.py: the one bounded decoder of candidate bytes (issue 10 §3).

Property: whatever bytes a candidate sends, the decoder returns a value or raises
CandidateDataError; it never raises anything else (no RecursionError, MemoryError,
UnicodeDecodeError), and a value it returns is what json.loads would return.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from graders import decode
from graders.decode import CandidateDataError, decode_json, decode_object, json_depth, try_decode_object
from graders.harness import is_candidate_failure

MB = 1024 * 1024

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_are_the_candidates_failure(data):
    try:
        decode_json(data, what="reply", max_bytes=MB)
    except CandidateDataError as exc:
        assert exc.reason and is_candidate_failure(exc)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_valid_json_round_trips(value):
    text = json.dumps(value, ensure_ascii=False)
    assert decode_json(text.encode("utf-8"), what="x", max_bytes=MB) == json.loads(text)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_depth_is_measured_as_python_would_nest_it(value):
    def depth(v):
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        return 0
    text = json.dumps(value)
    assert json_depth(text, 1000) == depth(value)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.sampled_from("[{"), st.text(alphabet='[]{}"\\ab', max_size=30))
def test_brackets_inside_strings_do_not_count(n, bracket, junk):
    inner = json.dumps(bracket * n + junk)   # a string full of brackets
    assert json_depth(f"[{inner}]", 100) == 1


@pytest.mark.parametrize("depth", [65, 3000, 100_000])
def test_deep_nesting_is_refused_without_recursion(depth):
    for opener, closer in (("[", "]"), ('{"a":', "}")):
        text = opener * depth + closer * depth
        with pytest.raises(CandidateDataError, match="nested deeper than 64"):
            decode_json(text.encode(), what="reply", max_bytes=10 * MB)
    with pytest.raises(CandidateDataError):     # unbalanced: also refused, never recursion
        decode_json(b"[" * depth, what="reply", max_bytes=10 * MB)


def test_depth_limit_is_inclusive():
    assert decode_json(b"[" * 64 + b"]" * 64, what="x", max_bytes=MB) is not None
    assert decode_json(b"[" * 5 + b"]" * 5, what="x", max_bytes=MB, max_depth=5)
    with pytest.raises(CandidateDataError):
        decode_json(b"[" * 6 + b"]" * 6, what="x", max_bytes=MB, max_depth=5)


def test_size_limit_before_any_decoding():
    with pytest.raises(CandidateDataError, match="over 1048576 bytes"):
        decode_json(b'"' + b"a" * (10 * MB) + b'"', what="reply", max_bytes=MB)
    assert decode_json(b'"' + b"a" * 100 + b'"', what="reply", max_bytes=102) == "a" * 100


@pytest.mark.parametrize("raw,reason", [
    (b'{"a": "\xff\xfe"}', "not UTF-8"),
    (b'{"a": NaN}', "NaN is not JSON"),
    (b'{"a": Infinity}', "Infinity is not JSON"),
    (b'{"a": -Infinity}', "-Infinity is not JSON"),
    (b'{"a": 1e999}', "too large for a double"),
    (b'{"a": ' + b"9" * 310 + b"}", "too large for a double"),
    (b'{"a": ' + b"9" * 5000 + b"}", "more than 400 digits"),
    (b'{"a": "\\ud800"}', "lone surrogate"),
    (b'{"\\udfff": 1}', "lone surrogate"),
    (b'{"a": 1', "not JSON"),
    (b"", "not JSON"),
])
def test_refusals_name_the_reason(raw, reason):
    with pytest.raises(CandidateDataError) as info:
        decode_json(raw, what="reply", max_bytes=MB)
    assert reason in info.value.reason
    assert info.value.raw == raw[:300]
    assert "reply" in str(info.value)


def test_duplicate_keys_last_one_wins_as_the_spec_says():
    assert decode_object(b'{"a": 1, "a": 2}', what="x", max_bytes=MB) == {"a": 2}


def test_a_valid_surrogate_pair_is_fine():
    assert decode_json(b'"\\ud83d\\ude00"', what="x", max_bytes=MB) == "\U0001F600"


def test_object_required_and_try_variant():
    with pytest.raises(CandidateDataError, match="not an object"):
        decode_object(b"[1]", what="x", max_bytes=MB)
    assert try_decode_object(b"[1]", max_bytes=MB) is None
    assert try_decode_object(b"[" * 5000, max_bytes=MB) is None
    assert try_decode_object(b'{"k": [1]}', max_bytes=MB) == {"k": [1]}


def test_recursion_limit_is_irrelevant():
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        with pytest.raises(CandidateDataError):
            decode_json(b"[" * 150 + b"]" * 150, what="x", max_bytes=MB)
    finally:
        sys.setrecursionlimit(old)


def test_text_decoding_bounded_and_lenient_on_request():
    assert decode.decode_text(b"a\xffb", what="metrics", max_bytes=10, strict=False) == "a\ufffdb"
    with pytest.raises(CandidateDataError, match="not UTF-8"):
        decode.decode_text(b"a\xffb", what="metrics", max_bytes=10)
    with pytest.raises(CandidateDataError, match="over 2 bytes"):
        decode.decode_text("ééé", what="metrics", max_bytes=2)


# --- the decoder in a real grade --------------------------------------------------------
@pytest.fixture(scope="module")
def hostile_bytes_grades(tmp_path_factory):
    """tests/fixtures/bombs and tests/fixtures/shapes, graded side by side."""
    import concurrent.futures
    from tests.defects.grading import grade
    out = tmp_path_factory.mktemp("decode-grades")
    fixtures = Path(__file__).resolve().parent / "fixtures"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return dict(pool.map(lambda name: (name, (grade(fixtures / name, 3, out / name, timeout=240), out / name)),
                             ("bombs", "shapes")))


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("name", ["bombs", "shapes"])
def test_hostile_bytes_during_checks_are_failures_not_grader_errors(hostile_bytes_grades, name):
    """bombs answers every frame, HTTP body, log line and memory record with a decoder
    bomb (`[` x 3000, a 9 MB line, invalid UTF-8, NaN, 1e999, a lone surrogate, members of
    the wrong type...): before graders/decode.py its grade had 7 grader errors, and a lone
    surrogate made writing report.md crash. shapes answers with the right reply types
    whose members have random shapes. Every check must fail with a reason (shapes: or
    pass, where garbage honestly meets the check), none may be a grader error."""
    from graders.checks.registry import all_checks
    run, out = hostile_bytes_grades[name]
    assert run.rc in (1, 0), (run.rc, run.stderr[-2000:])
    assert set(run.verdicts) == {c.id for c in all_checks()}
    assert run.errors() == set(), {c: run.outputs[c][:300] for c in run.errors()}
    for report in ("report.md", "report.html", "junit.xml", "results.json"):
        (out / report).read_text(encoding="utf-8")     # written, valid UTF-8
    if name == "bombs":
        assert run.rc == 1 and set(run.verdicts.values()) == {"fail"}
        reasons = "\n".join(run.outputs.values())
        for reason in ("nested deeper than 64 levels", "not UTF-8", "NaN is not JSON", "too large for a double"):
            assert reason in reasons, reason


def test_feedback_reads_received_evidence_through_the_decoder():
    """The candidate feedback compares received JSON as a structure: a reply of `[` x 3000
    stays text there instead of raising RecursionError in the check command."""
    from graders.feedback import _as_structure
    assert _as_structure(b"[" * 3000) == "[" * 3000
    assert _as_structure('{"a": [1]}') == {"a": [1]}
