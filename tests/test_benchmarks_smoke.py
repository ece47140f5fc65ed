"""Smoke test of benchmarks/run.py: a tiny version of every section, keys and sanity only.

Speed targets are measured by the benchmark itself (BENCHMARKS.md), never asserted here:
the machine is shared and timed unit tests would be flaky. What is asserted: every
documented key is present, figures are finite and coherent (ratios match their parts,
the relay actually relayed, the reference answered correctly), and the pure helpers.
"""
from __future__ import annotations

import json
import math

import pytest

from benchmarks import run as bench
from benchmarks.relay import DurableRecords, encode
from benchmarks.stats import format_table, latency_summary, percentile, ratio

SEED = 424242


def test_percentile_and_ratio():
    assert percentile([], 50) is None
    assert percentile([3, 1, 2], 50) == 2
    assert percentile(range(1, 101), 99) == 99
    assert percentile([5], 99) == 5
    assert ratio(1, 0) is None and ratio(None, 2) is None and ratio(1, 4) == 0.25
    s = latency_summary([0.001, 0.002, 0.003])
    assert s == {"n": 3, "p50_ms": 2.0, "p99_ms": 3.0, "max_ms": 3.0}
    assert "missing" in format_table("x", [("k", None, "")])
    assert encode({"a": "é"}) == '{"a":"é"}\n'.encode()


@pytest.fixture(scope="module")
def tiny():
    print(f"benchmark smoke seed={SEED}")
    return bench.run("tiny", SEED, list(bench.SECTIONS), log=print)


def _finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_every_section_has_its_keys(tiny):
    json.dumps(tiny)   # serialisable as written by --json
    assert tiny["seed"] == SEED and tiny["machine"]["nproc"] >= 1
    for section, rows in bench.TABLE_ROWS.items():
        assert "error" not in tiny[section], tiny[section]
        for key, _note in rows:
            assert key in tiny[section], (section, key)
    assert all(k in tiny["pipeline"] for k in ("tasks_per_s", "ceiling_tasks_per_s", "ratio", "p50_ms", "p99_ms"))
    assert "write_ratio_10k_vs_100" in tiny["memory"] and "full_grade_s" in tiny["grader"]


def test_pipeline_sane(tiny):
    p = tiny["pipeline"]
    assert p["tasks"] > 0 and p["wrong_results"] == 0 and p["transport_errors"] == 0
    assert _finite(p["tasks_per_s"]) and _finite(p["ceiling_tasks_per_s"]) and p["ceiling_tasks_per_s"] > 0
    assert p["ratio"] == pytest.approx(p["tasks_per_s"] / p["ceiling_tasks_per_s"], abs=0.002)
    plain, recycled = p["durable_plain_relay_tasks_per_s"], p["durable_recycling_relay_tasks_per_s"]
    assert plain > 0 and recycled > 0 and p["durable_ceiling_tasks_per_s"] == max(plain, recycled)
    assert p["ratio_vs_durable_ceiling"] == pytest.approx(p["tasks_per_s"] / max(plain, recycled), abs=0.002)
    assert 0 < p["p50_ms"] <= p["p99_ms"]
    assert set(p["cpu_ms_per_task"]) == {"orchestrator", "collector", "analyzer", "reporter"}


def test_memory_sane(tiny):
    m = tiny["memory"]
    assert m["write_ms_100"] > 0 and m["write_ms_10k"] > 0
    assert m["write_ratio_10k_vs_100"] == pytest.approx(m["write_ms_10k"] / m["write_ms_100"], rel=0.01)
    assert m["loaded_records"] == m["settings"]["records_big"]
    assert m["record_files_after_4x_retention"] == m["settings"]["retention_check"]
    assert 0 <= m["spare_files_after_4x_retention"] <= 64
    assert m["disk_growth_ratio"] < 1.5      # pruning keeps the disk bounded


def test_open_loop_sends_every_arrival_once_and_times_each_reply():
    from benchmarks.load import open_loop
    from benchmarks.systems import relay
    from graders.client import make_request
    seen = []

    def check(i, reply):
        seen.append(i)
        return reply["task_id"] == f"ol-{i}"
    with relay() as addr:
        res = open_loop(addr, lambda i: make_request("submit", {"task_type": "triage", "input": {"n": i}},
                                                     token="t", task_id=f"ol-{i}"),
                        rate=200.0, duration=0.5, senders=4, timeout=5.0, check=check, start_index=7)
    assert res.sent == 100 and res.ok == 100 and res.transport_errors == 0 and res.wrong_results == 0
    assert sorted(seen) == list(range(7, 107))
    assert all(0 < lat < 5.0 for lat in res.ok_latencies)
    assert 0 <= res.late_sends <= 100 and res.elapsed >= 0.45


@pytest.mark.parametrize("recycle", [False, True])
def test_durable_relay_writes_what_spec_11_asks_and_prunes(tmp_path, recycle):
    records = DurableRecords(str(tmp_path), retention=3, recycle=recycle)
    for i in range(6):
        records.put(f"t{i}", encode({"n": i}))
        records.put(f"t{i}", encode({"n": i, "done": True}))   # the orchestrator's second write
    names = sorted(p.name for p in (tmp_path / "records").iterdir() if not p.name.startswith("."))
    assert names == ["t3.json", "t4.json", "t5.json"]
    assert json.loads((tmp_path / "records" / "t5.json").read_text()) == {"n": 5, "done": True}
    spares = [p for p in (tmp_path / "records").iterdir() if p.name.startswith(".")]
    assert len(spares) <= DurableRecords.SPARES_MAX and (spares == [] or recycle)


def test_overload_sane(tiny):
    o = tiny["overload"]
    assert o["capacity_tasks_per_s"] > 0 and o["offered_per_s"] == pytest.approx(5 * o["capacity_tasks_per_s"], rel=0.01)
    assert o["admitted"] > 0 and o["wrong_results"] == 0
    assert o["orchestrator_up_after"] is True
    assert o["rss_peak_mb"] > 0 and o["rss_growth_mb"] is not None
    if o["rejected_busy"]:
        assert o["busy_p50_ms"] <= o["busy_p99_ms"] <= o["busy_max_ms"]
    assert o["settings"]["FD_QUEUE_SIZE"] == 0
    for q in o["settings"]["sweep_queue_sizes"]:
        swept = o["queue_sweep"][str(q)]
        assert swept["admitted"] > 0 and swept["wrong_results"] == 0
        assert o[f"admitted_p99_vs_unloaded_queue{q}"] == swept["admitted_p99_vs_unloaded"]


def test_grader_sane(tiny):
    g = tiny["grader"]
    if g.get("missing_reason"):
        pytest.fail(f"grader machinery missing: {g['missing_reason']}")
    assert g["full_grade_s"] > 0 and g["self_check_s"] > 0
    assert "challenge_check_s" in g  # None in the tiny profile (a subset of checks)
    assert g["full_grade_verdicts"] == {"pass": 2}, g
    assert g["cleanup_notes"] == []


def test_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert bench.main(["--profile", "tiny", "--only", "memory", "--seed", "7", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "seed 7" in printed and "write_ratio_10k_vs_100" in printed
    data = json.loads(out.read_text())
    assert data["seed"] == 7 and "memory" in data and "pipeline" not in data
