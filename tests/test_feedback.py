"""Candidate feedback (graders/feedback.py): the differing fields first with JSON paths,
then the capped context, a replay line that keeps --challenge and --seed, and a pointer to
the challenge README and the starter's CHALLENGE(...) comments."""
from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings, strategies as st

from graders import feedback as F
from graders.checks.registry import CHALLENGES
from graders.paths import CHALLENGES as CHALLENGES_DIR, STARTER

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=False, allow_infinity=False, width=32),
                    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12).filter(
                        lambda s: "..." not in s and not F._COMPARATOR.match(s)))
keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4).filter(lambda xs: not xs or xs[-1] != "..."),
    st.dictionaries(keys, inner, max_size=4)), max_leaves=20)
json_objects = st.dictionaries(keys, json_values, min_size=1, max_size=5)


def _leaves(value, path="$"):
    """(path, container, key) for every scalar leaf."""
    if isinstance(value, dict):
        for k, v in value.items():
            p = F.child_path(path, k)
            if isinstance(v, (dict, list)):
                yield from _leaves(v, p)
            else:
                yield p, value, k
    elif isinstance(value, list):
        for i, v in enumerate(value):
            p = F.child_path(path, i)
            if isinstance(v, (dict, list)):
                yield from _leaves(v, p)
            else:
                yield p, value, i


@settings(max_examples=120, deadline=None)
@given(json_values)
def test_a_value_matches_itself(value):
    assert F.differences(value, value) == []
    assert F.differences(value, json.loads(json.dumps(value))) == []


@settings(max_examples=120, deadline=None)
@given(json_objects, st.data())
def test_one_changed_leaf_is_reported_at_its_path(obj, data):
    leaves = list(_leaves(obj))
    if not leaves:
        return
    path, _container, _key = data.draw(st.sampled_from(leaves))
    received = json.loads(json.dumps(obj))
    for p, container, key in _leaves(received):
        if p == path:
            old = container[key]
            container[key] = {"changed": True} if not isinstance(old, dict) else 0
    diffs = F.differences(obj, received)
    assert [d.path for d in diffs] == [path]
    assert diffs[0].line().startswith(path + ": expected ")


@settings(max_examples=100, deadline=None)
@given(json_objects.filter(lambda d: not set(d) & {"v", "type", "msg_id", "payload", "result", "details"}),
       st.sampled_from(["payload", "result", "details"]))
def test_a_pattern_is_found_inside_an_envelope(pattern, where):
    """A check expecting {"replay": true} of a whole reply: the path names where the field
    really is ($.payload.replay), and extra fields of the reply are not differences."""
    inner = json.loads(json.dumps(pattern))
    inner["__extra_field__"] = "not a difference"
    envelope = {"v": 1, "type": "submit_ok", "msg_id": "m", where: inner}
    assert F.differences(pattern, envelope) == []
    key = next(iter(pattern))
    inner[key] = {"wrong": 1} if not isinstance(pattern[key], dict) else "wrong"
    diffs = F.differences(pattern, envelope)
    assert diffs and diffs[0].path.startswith(F.child_path(f"$.{where}", key))


def test_the_issue_example_leads_with_the_field_that_differs():
    """The field that differs sat near character 1,400 of the evidence, past the 600
    character cap: now it is the first thing after the message."""
    result = {"summary": "x" * 1300, "counts": {"error": 3}}
    reply = {"v": 1, "type": "submit_ok", "in_reply_to": "m-2",
             "payload": {"task_id": "t-1", "status": "succeeded", "result": result, "replay": False}}
    verdict = {"message": "a resubmission must replay the stored result", "sent": {"type": "submit"},
               "expected": {"replay": True, "result": result}, "received": reply,
               "hint": "look the task_id up first", "seed": 4242}
    lines = F.render_failure(verdict, challenge="idempotency", path="submission",
                             markers={"idempotency": ["orchestrator.py:95"]})
    assert lines[0] == verdict["message"]
    assert lines[1] == "what differs:"
    assert lines[2] == "  $.payload.replay: expected true, received false"
    ctx = [l for l in lines if l.startswith("received: ")][0]
    assert len(ctx) < F.CONTEXT_LIMIT + 80 and "more characters" in ctx
    assert "replay: faultdrill check submission --challenge idempotency --seed 4242" in lines
    assert lines[-1] == ("read challenges/idempotency/README.md; the starter marks this work with "
                         "CHALLENGE(idempotency) in challenges/starter/: orchestrator.py:95")
    whole = F.render_failure(verdict, challenge="idempotency", path="submission", context_limit=0)
    assert any(l.startswith("received: ") and "more characters" not in l and len(l) > 1300 for l in whole)


def test_json_true_is_not_one_and_missing_is_not_null():
    assert F.differences(True, 1)[0].line() == "$: expected true, received 1"
    assert F.differences({"a": None}, {})[0].line() == "$.a: missing (expected null)"
    assert F.differences({"a": None}, {"a": None}) == []
    assert F.differences([1, 2], [1, 2, 3])[0].line() == "$[2]: not expected, received 3"
    assert F.differences([1, "..."], [1, 2, 3]) == []
    assert F.differences({"odd key": 1}, {"odd key": 2})[0].path == '$["odd key"]'


def test_descriptions_are_evaluated_or_reported_once():
    assert F.differences({"pruned": ">= 2"}, {"pruned": 3}) == []
    assert [d.path for d in F.differences({"pruned": ">= 2"}, {"pruned": 1})] == ["$.pruned"]
    assert F.differences("00-abc...-01", "00-abcdef-01") == []
    assert len(F.differences("a readable file", {"files": []})) == 1
    # received JSON text is compared as the structure it encodes
    assert F.differences({"a": 1}, '{"a": 2}')[0].path == "$.a"
    assert F.differences(None, {"a": 1}) == []


def test_replay_line_keeps_challenge_and_seed_and_quotes_paths():
    assert F.replay_command("sub", 7, "crash-restart") == "faultdrill check sub --challenge crash-restart --seed 7"
    assert F.replay_command("my sub", 7) == "faultdrill check 'my sub' --seed 7"


def test_every_starter_marker_names_a_real_challenge_and_the_pointer_uses_them():
    markers = F.load_starter_markers(STARTER)
    assert markers, "the starter has CHALLENGE(...) comments"
    assert set(markers) <= set(CHALLENGES)
    # a comment naming several challenges counts for each of them
    text = {"main.py": "x = 1\n    # CHALLENGE(crash-restart, overload): settings\n"}
    assert F.starter_markers(text) == {"crash-restart": ["main.py:2"], "overload": ["main.py:2"]}
    for challenge in CHALLENGES:
        assert (CHALLENGES_DIR / challenge / "README.md").is_file(), challenge
        pointer = F.challenge_pointer(challenge, markers)
        assert pointer.startswith(f"read challenges/{challenge}/README.md")
        for spot in markers.get(challenge, [])[:6]:
            name, line = spot.split(":")
            assert f"CHALLENGE(" in (STARTER / name).read_text().splitlines()[int(line) - 1]
            assert spot in pointer
    # without the starter on disk the pointer says how to find the comments
    assert "grep -nE" in F.challenge_pointer("overload", None)
    assert F.load_starter_markers(CHALLENGES_DIR / "no-such-dir") is None


def test_a_description_against_a_whole_reply_is_not_repeated_as_a_difference():
    verdict = {"message": "expected an error reply", "expected": "error 30 idempotency_conflict",
               "received": {"type": "collect_ok", "payload": {}}, "seed": 1}
    lines = F.render_failure(verdict, challenge="idempotency", path="s", markers={})
    assert "what differs:" not in lines
    assert lines[1].startswith("expected: error 30") and lines[2].startswith("received: {")
    scalar = F.render_failure({"message": "m", "expected": 200, "received": 503, "seed": 1},
                              challenge=None, path="s")
    assert scalar[1:3] == ["what differs:", "  $: expected 200, received 503"]
    assert scalar[-1] == "replay: faultdrill check s --seed 1"


@pytest.mark.slow
def test_faultdrill_check_leads_with_the_difference_and_keeps_the_challenge(capsys):
    """The starter has no idempotency: `faultdrill check --challenge idempotency` shows the
    differing field first, a replay line with --challenge and --seed, and the pointers."""
    from graders import cli
    code = cli.main(["check", str(STARTER), "--challenge", "idempotency", "--seed", "3", "--unsafe-no-sandbox"])
    out = capsys.readouterr().out
    assert code == 1, out[-3000:]
    lines = [l for l in out.splitlines() if l.startswith("[grader:idempotency.replay_conflict]")]
    text = "\n".join(lines)
    assert "what differs:" in text and re.search(r"\$\S*\.replay: expected true, received false", text), text
    assert text.index("what differs:") < text.index("] received: ") < text.index("] sent: "), "difference, reply, request"
    replay = f"replay: faultdrill check {STARTER} --challenge idempotency --seed 3"
    assert replay in text
    assert "read challenges/idempotency/README.md" in text and "CHALLENGE(idempotency) in challenges/starter/" in text
    assert f"Replay: faultdrill check {STARTER} --challenge idempotency --seed 3" in out


def test_hostile_replies_cannot_break_the_feedback():
    """Candidate replies are hostile: a value nested far deeper than Python recurses, or
    one JSON cannot hold, still gives feedback lines."""
    deep: list = []
    node = deep
    for _ in range(50_000):
        node.append([])
        node = node[0]
    for received in (deep, {"payload": deep}, b"\xff\xfe not json", {"x": float("nan"), 1: object()}):
        lines = F.render_failure({"message": "m", "expected": {"replay": True}, "received": received, "seed": 1},
                                 challenge="idempotency", path="s", markers={})
        assert lines[0] == "m" and any(l.startswith("received: ") for l in lines)
