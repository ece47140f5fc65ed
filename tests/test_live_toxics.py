"""Toxiproxy JSON <-> fault proxy toxics (pure), and the `faultdrill fault` argument mapping."""
from __future__ import annotations

import argparse

import pytest
from hypothesis import given, settings, strategies as st

from graders.commands import fault as fault_cmd
from graders.faults import proxy as fp
from graders.live.actions import FaultError, check_fault
from graders.live.toxics import TOXIC_TYPES, ToxicError, parse_toxic, toxic_json


def test_toxiproxy_defaults_and_units():
    spec = parse_toxic({"type": "latency", "attributes": {"latency": 300, "jitter": 20}})
    assert spec.name == "latency_downstream"
    assert isinstance(spec.toxic, fp.Latency)
    assert (spec.toxic.latency_ms, spec.toxic.jitter_ms, spec.toxic.stream, spec.toxic.toxicity) == \
        (300, 20, "downstream", 1.0)
    assert spec.json() == {"name": "latency_downstream", "type": "latency", "stream": "downstream",
                           "toxicity": 1.0, "attributes": {"latency": 300, "jitter": 20}}
    slicer = parse_toxic({"type": "slicer", "name": "s1", "stream": "upstream", "toxicity": 0.5,
                          "attributes": {"average_size": 10, "delay": 50}})
    assert (slicer.toxic.average_size, slicer.toxic.delay_us, slicer.toxic.stream) == (10, 50, "upstream")
    assert parse_toxic({"type": "duplicate"}).toxic.stream == "upstream"
    assert parse_toxic({"type": "drop_reply", "attributes": {"match": "collect"}}).toxic.match == "collect"


@pytest.mark.parametrize("bad, words", [
    ({"type": "lag"}, "unknown toxic type"),
    ({"type": "latency", "attributes": {"delay": 3}}, "no attribute"),
    ({"type": "latency", "attributes": {"latency": -1}}, "negative"),
    ({"type": "latency", "attributes": {"latency": "300"}}, "number"),
    ({"type": "latency", "attributes": {"latency": 1.5}}, "integer"),
    ({"type": "latency", "toxicity": 2}, "[0, 1]"),
    ({"type": "latency", "stream": "sideways"}, "stream"),
    ({"type": "bandwidth", "attributes": {"rate": 0}}, "above 0"),
    ({"type": "latency", "name": "a b"}, "name"),
    ({"type": "latency", "extra": 1}, "unknown toxic field"),
    ([1], "JSON object"),
])
def test_bad_toxics_say_what_is_wrong(bad, words):
    with pytest.raises(ToxicError, match=None) as info:
        parse_toxic(bad)
    assert words in str(info.value)


_attr_values = st.one_of(st.integers(-5, 10**6), st.floats(allow_nan=True), st.text(max_size=5),
                         st.none(), st.booleans())


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.sampled_from(sorted(TOXIC_TYPES)), st.dictionaries(st.sampled_from(
    ["latency", "jitter", "rate", "delay", "timeout", "average_size", "size_variation", "bytes",
     "match", "probability", "bogus"]), _attr_values, max_size=3),
    st.one_of(st.floats(-1, 2), st.integers(-1, 2)), st.sampled_from(["upstream", "downstream", "x"]))
def test_any_input_is_accepted_and_round_trips_or_refused_cleanly(ttype, attrs, toxicity, stream):
    obj = {"type": ttype, "attributes": attrs, "toxicity": toxicity, "stream": stream}
    try:
        spec = parse_toxic(obj)
    except ToxicError as exc:
        assert str(exc)
        return
    again = parse_toxic(spec.json())
    assert again.json() == spec.json() == toxic_json(spec.name, spec.toxic)


def test_fault_actions_are_validated_before_anything_runs():
    check_fault({"action": "service", "role": "analyzer", "op": "pause"})
    check_fault({"action": "toxic", "hop": "collector", "toxic": {"type": "reset_peer"}})
    for bad, words in [({"action": "explode"}, "unknown action"),
                       ({"action": "service", "role": "db", "op": "kill"}, "role"),
                       ({"action": "drift", "role": "orchestrator"}, "role"),
                       ({"action": "drift", "role": "analyzer", "mode": "drift_schema"}, "collector"),
                       ({"action": "reconfigure", "role": "analyzer", "env": {"PATH": "/"}}, "cannot be changed"),
                       ({"action": "overload", "concurrency": 10**6}, "concurrency"),
                       ({"action": "toxic", "hop": "collector", "toxic": {"type": "x"}}, "unknown toxic type")]:
        with pytest.raises(FaultError) as info:
            check_fault(bad)
        assert words in str(info.value)


def _args(argv):
    parser = argparse.ArgumentParser()
    fault_cmd.add_arguments(parser)
    return parser.parse_args(argv)


def test_fault_cli_maps_to_the_api():
    assert fault_cmd.request_for(_args(["add", "analyzer", "latency", "-a", "latency=300"])) == \
        ("POST", "/proxies/analyzer/toxics", {"type": "latency", "toxicity": 1.0,
                                              "attributes": {"latency": 300}})
    assert fault_cmd.request_for(_args(["remove", "analyzer", "latency_downstream"])) == \
        ("DELETE", "/proxies/analyzer/toxics/latency_downstream", None)
    assert fault_cmd.request_for(_args(["pause", "reporter"])) == \
        ("POST", "/faultdrill/services/reporter/pause", None)
    assert fault_cmd.request_for(_args(["disable", "collector"])) == \
        ("POST", "/proxies/collector", {"enabled": False})
    method, path, body = fault_cmd.request_for(_args(["drift", "reporter", "--mode", "wrong_type"]))
    assert body == {"action": "drift", "role": "reporter", "mode": "wrong_type"}
    with pytest.raises(ValueError):
        fault_cmd.request_for(_args(["add", "analyzer", "latency", "-a", "latency"]))


def test_state_files_of_dead_processes_are_ignored(tmp_path, monkeypatch):
    from graders.live import state
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    state.write_state(41001, {"token": "t1"})
    assert state.read_state()["token"] == "t1"
    stale = state.state_dir() / "control-41002.json"
    stale.write_text('{"port": 41002, "pid": 999999999, "token": "old"}')
    assert state.read_state()["port"] == 41001 and not stale.exists()
    assert oct(state.state_dir().stat().st_mode & 0o777) == "0o700"
    assert oct((state.state_dir() / "control-41001.json").stat().st_mode & 0o777) == "0o600"
    state.write_state(41003, {"token": "t3"})
    with pytest.raises(state.LiveClientError):
        state.read_state()
    assert state.read_state(41003)["token"] == "t3"
    state.remove_state(41001)
    state.remove_state(41003)
    assert state.read_state() is None
