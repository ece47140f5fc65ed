"""RecordStore inode recycling: spares from retention and replacement, never at the
price of SPEC §11's guarantees (atomic replace, deleted data gone, damaged memory
quarantined, load leaves no temp file)."""
import json
import os
from pathlib import Path

import pytest

from reference_impl.memory import exchange as exchange_mod
from reference_impl.memory import store as store_mod
from reference_impl.memory.store import SPARES_MAX, RecordStore

needs_exchange = pytest.mark.skipif(not exchange_mod.supported(),
                                    reason="renameat2(RENAME_EXCHANGE) not available here")


def make(tmp_path, retention=3):
    s = RecordStore(tmp_path / "mem", retention)
    s.load()
    return s


def rec(marker):
    return {"step": "collect", "input": {"marker": marker}, "output": {"ok": True}}


def records_dir(tmp_path) -> Path:
    return tmp_path / "mem" / "records"


def spares(tmp_path) -> list[Path]:
    return sorted(p for p in records_dir(tmp_path).iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------ exchange

@needs_exchange
def test_exchange_swaps_two_entries_atomically(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("A")
    b.write_text("B")
    ino_a, ino_b = a.stat().st_ino, b.stat().st_ino
    assert exchange_mod.exchange(a, b) is True
    assert (a.read_text(), b.read_text()) == ("B", "A")
    assert (a.stat().st_ino, b.stat().st_ino) == (ino_b, ino_a)


@needs_exchange
def test_exchange_with_a_missing_entry_changes_nothing(tmp_path):
    a = tmp_path / "a"
    a.write_text("A")
    assert exchange_mod.exchange(a, tmp_path / "missing") is False
    assert a.read_text() == "A" and not (tmp_path / "missing").exists()


# ------------------------------------------------------------------ retention

def test_pruned_record_becomes_an_empty_spare_and_the_next_put_reuses_its_inode(tmp_path):
    s = make(tmp_path, retention=2)
    s.put("t-0", rec("first-secret-looking-marker"))
    old_inode = (records_dir(tmp_path) / "t-0.json").stat().st_ino
    s.put("t-1", rec("b"))
    s.put("t-2", rec("c"))                      # prunes t-0
    assert not (records_dir(tmp_path) / "t-0.json").exists()
    kept = spares(tmp_path)
    assert [p.stat().st_size for p in kept] == [0]  # the pruned content is gone
    assert kept[0].stat().st_ino == old_inode
    for p in records_dir(tmp_path).iterdir():
        assert b"first-secret-looking-marker" not in p.read_bytes()
    s.put("t-3", rec("d"))                      # written into the spare
    assert (records_dir(tmp_path) / "t-3.json").stat().st_ino == old_inode
    assert s.get("t-3")["input"] == {"marker": "d"}


def test_spares_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "SPARES_MAX", 2)
    s = make(tmp_path, retention=10)
    for i in range(10):
        s.put(f"t-{i}", rec(i))
    s.retention = 1
    s.put("last", rec("last"))                  # prunes 10 records at once
    assert len(spares(tmp_path)) == 2
    assert sorted(p.name for p in records_dir(tmp_path).iterdir() if not p.name.startswith(".")) == ["last.json"]


def test_default_bound_is_small():
    assert 1 <= SPARES_MAX <= 256


# ------------------------------------------------------------------ replacement

@needs_exchange
def test_replacing_exchanges_and_keeps_the_old_inode_as_a_spare(tmp_path):
    s = make(tmp_path, retention=10)
    s.put("t", rec("v1"))
    v1_inode = (records_dir(tmp_path) / "t.json").stat().st_ino
    s.put("t", rec("v2"))
    target = records_dir(tmp_path) / "t.json"
    assert json.loads(target.read_text())["input"] == {"marker": "v2"}
    assert [p.stat().st_ino for p in spares(tmp_path)] == [v1_inode]
    s.put("other", rec("x"))                    # reuses the old version's inode
    assert (records_dir(tmp_path) / "other.json").stat().st_ino == v1_inode
    assert spares(tmp_path) == []


def test_replacing_without_exchange_falls_back_to_os_replace(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "exchange", lambda a, b: False)
    s = make(tmp_path, retention=10)
    s.put("t", rec("v1"))
    s.put("t", rec("v2"))
    assert json.loads((records_dir(tmp_path) / "t.json").read_text())["input"] == {"marker": "v2"}
    assert spares(tmp_path) == []


def test_a_directory_at_the_target_is_quarantined_not_exchanged(tmp_path):
    s = make(tmp_path, retention=10)
    s.put("t", rec("v1"))
    target = records_dir(tmp_path) / "t.json"
    target.unlink()
    target.mkdir()
    s.put("t", rec("v2"))
    assert target.is_file() and json.loads(target.read_text())["input"] == {"marker": "v2"}
    assert [p.name.startswith("t.json") for p in (tmp_path / "mem" / "quarantine").iterdir()] == [True]
    assert all(p.is_file() for p in spares(tmp_path))


def test_a_damaged_spare_is_dropped_and_the_put_still_lands(tmp_path):
    s = make(tmp_path, retention=1)
    s.put("a", rec("a"))
    s.put("b", rec("b"))                        # prunes a: one spare
    (spare,) = spares(tmp_path)
    spare.unlink()
    spare.mkdir()                               # an operator or a fault drill
    s.put("c", rec("c"))
    assert s.get("c")["input"] == {"marker": "c"}
    assert json.loads((records_dir(tmp_path) / "c.json").read_text())["input"] == {"marker": "c"}


def test_load_removes_spares_and_keeps_every_record(tmp_path):
    s = make(tmp_path, retention=2)
    for i in range(5):
        s.put(f"t-{i}", rec(i))
        s.put(f"t-{i}", rec(f"{i}-again"))
    assert spares(tmp_path)
    again = RecordStore(tmp_path / "mem", 2)
    again.load()
    assert spares(tmp_path) == []
    assert again.task_ids() == ["t-3", "t-4"]
    assert again.get("t-4")["input"] == {"marker": "4-again"}


def test_take_pruned_names_each_pruned_id_once(tmp_path):
    s = make(tmp_path, retention=2)
    for i in range(5):
        s.put(f"t-{i}", rec(i))
    assert s.take_pruned() == (["t-0", "t-1", "t-2"], 3)
    assert s.take_pruned() == ([], 3)
