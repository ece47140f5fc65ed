"""RecordStore (SPEC §11): layout, seq, retention, constant per-write cost, quarantine."""
import json
import os
import re
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from reference_impl.memory import store as store_mod
from reference_impl.memory.store import MAX_RECORD_BYTES, RecordStore, RecordTooLarge

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


class Corruptions:
    """on_corrupt recorder."""

    def __init__(self):
        self.calls = []

    def __call__(self, path, reason, quarantined_to):
        self.calls.append((Path(path), reason, quarantined_to))


def make(tmp_path, retention=100, **kw):
    s = RecordStore(tmp_path / "mem", retention, **kw)
    s.load()
    return s


def rec(n=0):
    return {"step": "collect", "input": {"n": n}, "output": {"ok": True, "n": n}}


# ------------------------------------------------------------------ basics

def test_put_adds_fields_writes_file_and_get_round_trips(tmp_path):
    s = make(tmp_path)
    stored = s.put("t-1", rec(1))
    assert stored["format"] == 1 and stored["task_id"] == "t-1" and stored["seq"] == 0
    assert TS_RE.match(stored["stored_at"])
    assert stored["input"] == {"n": 1}
    on_disk = json.loads((tmp_path / "mem/records/t-1.json").read_bytes().decode("utf-8"))
    assert on_disk == stored == s.get("t-1")
    assert s.get("nope") is None
    assert len(s) == 1 and "t-1" in s
    assert s.put("t-2", rec(2))["seq"] == 1
    assert s.put("t-1", rec(3))["seq"] == 2
    assert s.get("t-1")["input"] == {"n": 3}


def test_get_returns_independent_copies(tmp_path):
    s = make(tmp_path)
    original = rec(1)
    s.put("t-1", original)
    original["input"]["n"] = 99
    got = s.get("t-1")
    got["input"]["n"] = 42
    assert s.get("t-1")["input"] == {"n": 1}


def test_reload_sees_records_and_seq_continues_after_max(tmp_path):
    s = make(tmp_path)
    for i in range(5):
        s.put(f"t-{i}", rec(i))
    s2 = make(tmp_path)
    assert len(s2) == 5
    assert s2.get("t-3") == s.get("t-3")
    assert s2.put("t-9", rec(9))["seq"] == 5
    assert s2.task_ids() == ["t-0", "t-1", "t-2", "t-3", "t-4", "t-9"]


@pytest.mark.parametrize("bad", ["", "../x", ".hidden", "a/b", "x" * 65, "-lead", 7, None])
def test_put_rejects_invalid_task_ids(tmp_path, bad):
    s = make(tmp_path)
    with pytest.raises(ValueError):
        s.put(bad, rec())
    assert len(s) == 0
    assert list((tmp_path / "mem/records").iterdir()) == []


def test_put_rejects_non_json_and_oversized_records_without_side_effects(tmp_path):
    s = make(tmp_path)
    s.put("keep", rec(1))
    with pytest.raises(ValueError):
        s.put("t-1", {"x": float("nan")})
    with pytest.raises(ValueError):
        s.put("t-1", {"x": object()})
    with pytest.raises(RecordTooLarge, match="16 MiB"):
        s.put("t-1", {"blob": "a" * MAX_RECORD_BYTES})
    assert s.task_ids() == ["keep"]
    assert sorted(p.name for p in (tmp_path / "mem/records").iterdir()) == ["keep.json"]


def test_validate_record_guards_put(tmp_path):
    s = make(tmp_path, validate_record=lambda r: "step" in r)
    s.put("ok", rec())
    with pytest.raises(ValueError):
        s.put("bad", {"nostep": 1})
    assert s.task_ids() == ["ok"]


# ------------------------------------------------------------------ retention

def test_retention_prunes_smallest_seq(tmp_path):
    s = make(tmp_path, retention=3)
    for i in range(5):
        s.put(f"t-{i}", rec(i))
    assert s.task_ids() == ["t-2", "t-3", "t-4"]
    assert s.counters["pruned"] == 2
    entries = list((tmp_path / "mem/records").iterdir())
    assert sorted(p.name for p in entries if not p.name.startswith(".")) == [
        "t-2.json", "t-3.json", "t-4.json"]
    # Pruned records are recycled as spares (temp-named, SPEC §11.1): emptied, not kept.
    assert all(p.stat().st_size == 0 for p in entries if p.name.startswith("."))
    s.put("t-2", rec(22))  # rewriting makes it the newest
    s.put("t-5", rec(5))
    assert s.task_ids() == ["t-4", "t-2", "t-5"]
    assert s.get("t-3") is None


def test_retention_applies_at_load_when_lowered(tmp_path):
    s = make(tmp_path, retention=10)
    for i in range(6):
        s.put(f"t-{i}", rec(i))
    s2 = make(tmp_path, retention=2)
    assert s2.task_ids() == ["t-4", "t-5"]
    assert s2.counters["pruned"] == 4
    assert len(list((tmp_path / "mem/records").iterdir())) == 2


def test_invalid_retention_rejected(tmp_path):
    for bad in (0, -1, True, "5"):
        with pytest.raises(ValueError):
            RecordStore(tmp_path, bad)


def count_fs_calls(monkeypatch):
    counts = {}
    for name in ("open", "replace", "unlink", "listdir", "rename", "fsync", "scandir", "stat"):
        real = getattr(os, name)

        def wrapper(*a, _real=real, _name=name, **k):
            counts[_name] = counts.get(_name, 0) + 1
            return _real(*a, **k)
        monkeypatch.setattr(os, name, wrapper)
    return counts


@pytest.mark.parametrize("retention", [1000, 5])
def test_per_write_cost_does_not_grow_with_record_count(tmp_path, monkeypatch, retention):
    s = make(tmp_path, retention=retention)
    costs = []
    written = 0
    for n in (10, 400):
        while written < n:
            s.put(f"t-{written}", rec())
            written += 1
        assert len(s) == min(n + len(costs), retention)
        before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "mem/records").iterdir()
                  if not p.name.startswith(".")}  # temp names: spares, see below
        with monkeypatch.context() as m:
            counts = count_fs_calls(m)
            s.put(f"new-{n}", rec(n))
        costs.append(counts)
        after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "mem/records").iterdir()
                 if not p.name.startswith(".")}
        touched = {k for k in after if before.get(k) != after[k]}
        assert touched == {f"new-{n}.json"}  # no other record rewritten
    assert costs[0] == costs[1]
    assert costs[0]["fsync"] == 2 and costs[0]["replace"] == 1


# ------------------------------------------------------------------ durability details

def test_stale_temp_files_cleaned_at_load_other_files_left(tmp_path):
    s = make(tmp_path)
    s.put("t-1", rec())
    rd = tmp_path / "mem/records"
    (rd / ".t-2.json.123.1.tmp").write_bytes(b'{"half')
    (rd / ".index").write_text("kept")
    (rd / "README").write_text("not a record")
    s2 = make(tmp_path)
    assert sorted(p.name for p in rd.iterdir()) == [".index", "README", "t-1.json"]
    assert s2.task_ids() == ["t-1"] and s2.counters["corruptions"] == 0


def test_writable_reflects_directory_state(tmp_path):
    s = make(tmp_path)
    assert s.writable()
    assert [p.name for p in (tmp_path / "mem/records").iterdir()] == []
    os.rmdir(tmp_path / "mem/records")
    (tmp_path / "mem/records").write_text("now a file")
    assert not s.writable()


def test_put_recreates_a_vanished_directory(tmp_path):
    s = make(tmp_path)
    os.rmdir(tmp_path / "mem/records")
    s.put("t-1", rec())
    assert (tmp_path / "mem/records/t-1.json").is_file()


def test_concurrent_puts_are_all_stored_with_unique_seqs(tmp_path):
    s = make(tmp_path, retention=10_000)
    errors = []

    def worker(w):
        try:
            for i in range(25):
                s.put(f"w{w}-{i}", rec(i))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads) and errors == []
    seqs = sorted(s.seq_of(t) for t in s.task_ids())
    assert seqs == list(range(200))
    assert len(make(tmp_path, retention=10_000)) == 200


# ------------------------------------------------------------------ corruption

def good_bytes(task_id, seq=0):
    return json.dumps({"format": 1, "task_id": task_id, "seq": seq, "step": "collect",
                       "input": {}, "output": {}, "stored_at": "2026-01-01T00:00:00.000Z"}).encode()


CORRUPTIONS = {
    "truncated": lambda: good_bytes("victim")[:25],
    "garbage": lambda: bytes(range(256)) * 3,
    "empty": lambda: b"",
    "not_utf8": lambda: good_bytes("victim").replace(b"collect", b"coll\xffct"),
    "bom": lambda: b"\xef\xbb\xbf" + good_bytes("victim"),
    "array": lambda: b"[1, 2, 3]",
    "string": lambda: b'"hello"',
    "missing_seq": lambda: b'{"format": 1, "task_id": "victim"}',
    "seq_string": lambda: b'{"format": 1, "task_id": "victim", "seq": "3"}',
    "seq_bool": lambda: b'{"format": 1, "task_id": "victim", "seq": true}',
    "format_2": lambda: b'{"format": 2, "task_id": "victim", "seq": 3}',
    "nan": lambda: b'{"format": 1, "task_id": "victim", "seq": NaN}',
    "wrong_task_id": lambda: good_bytes("someone-else"),
    "deep": lambda: b'{"format": 1, "task_id": "victim", "seq": 1, "x": ' + b"[" * 100000
             + b"]" * 100000 + b"}",
}


def seed_store(tmp_path):
    s = make(tmp_path)
    s.put("before", rec(1))
    s.put("victim", rec(2))
    s.put("after", rec(3))
    return s


def assert_quarantined(tmp_path, calls, name, content_check):
    assert len(calls) == 1
    path, reason, moved = calls[0]
    assert path == tmp_path / "mem/records" / name and isinstance(reason, str) and reason
    assert moved is not None and moved.parent == tmp_path / "mem/quarantine"
    assert moved.name.startswith(name + ".")
    assert not os.path.lexists(path)
    content_check(moved)


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_file_is_quarantined_with_same_bytes(tmp_path, kind):
    seed_store(tmp_path)
    victim = tmp_path / "mem/records/victim.json"
    bad = CORRUPTIONS[kind]()
    victim.write_bytes(bad)
    calls = Corruptions()
    s = make(tmp_path, on_corrupt=calls)
    assert_quarantined(tmp_path, calls.calls, "victim.json",
                       lambda moved: moved.read_bytes() == bad or pytest.fail("bytes changed"))
    assert s.counters["corruptions"] == 1
    assert s.get("victim") is None and "victim" not in s
    assert s.get("before")["input"] == {"n": 1} and s.get("after")["input"] == {"n": 3}
    assert s.put("victim", rec(7))["seq"] == 3  # keeps serving; task is unknown, runs afresh
    assert make(tmp_path).get("victim")["input"] == {"n": 7}


def test_directory_in_place_is_quarantined_whole(tmp_path):
    seed_store(tmp_path)
    victim = tmp_path / "mem/records/victim.json"
    victim.unlink()
    victim.mkdir()
    (victim / "inner").write_bytes(b"payload")
    calls = Corruptions()
    s = make(tmp_path, on_corrupt=calls)
    assert_quarantined(tmp_path, calls.calls, "victim.json",
                       lambda moved: (moved / "inner").read_bytes() == b"payload"
                       or pytest.fail("contents changed"))
    assert s.task_ids() == ["before", "after"]


def test_directory_appearing_at_target_during_put_is_quarantined(tmp_path):
    calls = Corruptions()
    s = make(tmp_path, on_corrupt=calls)
    (tmp_path / "mem/records/t-1.json").mkdir()
    s.put("t-1", rec(1))
    assert len(calls.calls) == 1 and calls.calls[0][2] is not None
    assert make(tmp_path).get("t-1")["input"] == {"n": 1}


def test_oversized_file_is_quarantined_without_reading_it(tmp_path):
    seed_store(tmp_path)
    victim = tmp_path / "mem/records/victim.json"
    with open(victim, "r+b") as f:  # valid prefix, sparse tail: size is MAX + 1
        f.truncate(MAX_RECORD_BYTES + 1)
    calls = Corruptions()
    s = make(tmp_path, on_corrupt=calls)
    assert_quarantined(tmp_path, calls.calls, "victim.json",
                       lambda moved: moved.stat().st_size == MAX_RECORD_BYTES + 1
                       or pytest.fail("size changed"))
    assert "16777216" in calls.calls[0][1]
    assert s.task_ids() == ["before", "after"]


def test_fifo_in_place_does_not_block_load(tmp_path):
    seed_store(tmp_path)
    victim = tmp_path / "mem/records/victim.json"
    victim.unlink()
    os.mkfifo(victim)
    calls = Corruptions()
    s = make(tmp_path, on_corrupt=calls)
    assert len(calls.calls) == 1 and s.task_ids() == ["before", "after"]


def test_invalid_file_name_is_quarantined(tmp_path):
    seed_store(tmp_path)
    (tmp_path / "mem/records/bad name!.json").write_bytes(good_bytes("bad name!"))
    calls = Corruptions()
    s = make(tmp_path, on_corrupt=calls)
    assert_quarantined(tmp_path, calls.calls, "bad name!.json", lambda moved: None)
    assert len(s) == 3


def test_validate_record_false_quarantines(tmp_path):
    seed_store(tmp_path)
    calls = Corruptions()
    s = make(tmp_path, on_corrupt=calls,
             validate_record=lambda r: r["input"].get("n") != 2)
    assert_quarantined(tmp_path, calls.calls, "victim.json", lambda moved: None)
    assert s.task_ids() == ["before", "after"]


def test_validator_that_raises_counts_as_corrupt(tmp_path):
    seed_store(tmp_path)

    def boom(r):
        if r["task_id"] == "victim":
            raise KeyError("x")
        return True
    calls = Corruptions()
    make(tmp_path, on_corrupt=calls, validate_record=boom)
    assert len(calls.calls) == 1 and "KeyError" in calls.calls[0][1]


def test_unmovable_corrupt_file_is_left_and_skipped(tmp_path):
    seed_store(tmp_path)
    victim = tmp_path / "mem/records/victim.json"
    victim.write_bytes(b"junk")
    q = tmp_path / "mem/quarantine"
    os.rmdir(q)
    q.write_text("a file where the quarantine directory should be")
    calls = Corruptions()
    s = make(tmp_path, on_corrupt=calls)
    assert calls.calls == [(victim, calls.calls[0][1], None)]
    assert victim.read_bytes() == b"junk"
    assert s.task_ids() == ["before", "after"] and s.counters["corruptions"] == 1


def test_callback_errors_do_not_stop_loading(tmp_path):
    seed_store(tmp_path)
    (tmp_path / "mem/records/victim.json").write_bytes(b"junk")
    (tmp_path / "mem/records/before.json").write_bytes(b"junk")

    def bad_callback(*a):
        raise RuntimeError("logger broke")
    s = make(tmp_path, on_corrupt=bad_callback)
    assert s.task_ids() == ["after"]
    assert s.counters == {"corruptions": 2, "pruned": 0, "callback_errors": 2}
    assert len(list((tmp_path / "mem/quarantine").iterdir())) == 2


def test_repeated_quarantine_of_same_name_never_overwrites(tmp_path):
    for i in range(3):
        s = make(tmp_path)
        (tmp_path / "mem/records/victim.json").write_bytes(f"junk{i}".encode())
        make(tmp_path)
    contents = sorted(p.read_bytes() for p in (tmp_path / "mem/quarantine").iterdir())
    assert contents == [b"junk0", b"junk1", b"junk2"]


# ------------------------------------------------------------------ model-based

ops = st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d", "e", "f"]),
                         st.integers(0, 1000), st.booleans()), min_size=1, max_size=25)


@settings(max_examples=60, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops, retention=st.integers(1, 5))
def test_store_matches_a_model_across_reloads(tmp_path_factory, ops, retention):
    directory = tmp_path_factory.mktemp("model")
    s = RecordStore(directory, retention)
    s.load()
    model = {}  # task_id -> (seq, n)
    seq = 0
    for task_id, n, reload in ops:
        stored = s.put(task_id, rec(n))
        assert stored["seq"] == seq
        model[task_id] = (seq, n)
        seq += 1
        if reload:
            s = RecordStore(directory, retention)
            s.load()
        expected = dict(sorted(model.items(), key=lambda kv: kv[1][0])[-retention:])
        assert s.task_ids() == list(expected)
        for tid, (sq, val) in expected.items():
            got = s.get(tid)
            assert got["seq"] == sq and got["input"] == {"n": val}
