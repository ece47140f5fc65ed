"""The reference's performance paths keep their correctness guarantees (issue 6, H13).

What is pinned here, each with a test that fails if the guarantee is lost:

* task log: two durable writes per run (admission, finish), never under ``TaskTable.lock``;
  nothing reports success before its record is durable; the final record is never
  overwritten by the older admission record; a failed final write is not a stuck task;
* record store: puts of different tasks fsync in parallel, puts of one task stay ordered,
  retention never deletes a record that is being rewritten, ``trusted`` skips only the
  schema pass;
* agent connections: pooled, hello once per connection, a fresh connection after a
  timeout or a closed peer, and a reply is only ever paired with the request it answers;
* back-pressure: ``busy`` does not wait on the task table.

Every wait is bounded; no randomness.
"""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import threading
import time

import pytest

from reference_impl.memory.store import RecordStore, utc_timestamp
from reference_impl.orchestrator.client import AgentClient
from reference_impl.orchestrator.pipeline import Settings
from reference_impl.orchestrator.service import OrchestratorService
from reference_impl.orchestrator.tasks import TaskTable
from reference_impl.protocol.framing import FrameDecoder, encode_frame
from reference_impl.runtime.logs import Logger
from reference_impl.runtime.metrics import Registry

TOKEN = "tok-perf-paths"
INPUT = {"source": "web-1", "records": ["2026-11-29T10:00:00Z ERROR payments 120 card declined"]}
STEP = {"step": "collect", "agent": "collector", "status": "running", "attempts": 1,
        "started_at": "2026-11-29T10:00:00.000Z", "finished_at": None, "error": None}
WAIT = 5.0  # bound on every wait in this file


class CountingStore(RecordStore):
    """A real store that counts puts and can hold one put (by call number) at a gate."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.puts: list[tuple[str, str]] = []
        self.hold_call: int | None = None
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_call: int | None = None
        self._count_lock = threading.Lock()

    def put(self, task_id, record, **kwargs):
        with self._count_lock:
            self.puts.append((task_id, record.get("status")))
            n = len(self.puts)
        if n == self.fail_call:
            raise OSError(28, "No space left on device")
        if n == self.hold_call:
            self.entered.set()
            assert self.release.wait(WAIT), "test gate never released"
        return super().put(task_id, record, **kwargs)


def make_table(tmp_path):
    store = CountingStore(tmp_path / "mem", 100)
    store.load()
    table = TaskTable(store, now_iso=utc_timestamp, deadline_ms=4000)
    table.recover()
    return store, table


def run_in_thread(fn, *args):
    box: dict = {}

    def target():
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller's assertions
            box["error"] = exc
    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


# -- task log ------------------------------------------------------------------------------------

def test_a_run_makes_exactly_two_durable_writes(tmp_path):
    store, table = make_table(tmp_path)
    assert table.admit("t1", "triage", INPUT, lambda t: True)[0] == "queued"
    table.mark_running("t1")
    for attempts in range(1, 10):
        table.update_steps("t1", [dict(STEP, attempts=attempts)])
    assert table.lookup("t1")["steps"][0]["attempts"] == 9      # progress is visible...
    assert [s for _, s in store.puts] == ["queued"]              # ...but not written
    table.finish("t1", ok=True, result={"r": 1}, error=None, steps=[dict(STEP, status="succeeded")])
    assert [s for _, s in store.puts] == ["queued", "succeeded"]
    on_disk = json.loads((tmp_path / "mem/records/t1.json").read_text())
    assert on_disk["status"] == "succeeded" and on_disk["steps"][0]["status"] == "succeeded"
    assert on_disk["result"] == {"r": 1} and on_disk["input"] == INPUT


def test_the_table_lock_is_not_held_while_a_record_is_written(tmp_path):
    store, table = make_table(tmp_path)
    table.admit("other", "triage", INPUT, lambda t: True)
    store.hold_call = 2
    t, box = run_in_thread(table.admit, "slow", "triage", INPUT, lambda t: True)
    assert store.entered.wait(WAIT)
    try:
        # While "slow" is inside its fsync: every other table operation proceeds.
        acquired = table.lock.acquire(timeout=1.0)
        assert acquired, "TaskTable.lock is held across store.put"
        table.lock.release()
        assert table.admit("third", "triage", INPUT, lambda t: True)[0] == "queued"
        assert table.lookup("other")["status"] == "queued"
        assert [x["task_id"] for x in table.list_payload(10)["tasks"]][:1] == ["third"]
        assert t.is_alive()
    finally:
        store.release.set()
    t.join(WAIT)
    assert box.get("value", (None,))[0] == "queued" and "error" not in box


def test_a_lookup_waits_until_the_admission_record_is_durable(tmp_path):
    store, table = make_table(tmp_path)
    store.hold_call = 1
    t, box = run_in_thread(table.admit, "t1", "triage", INPUT, lambda t: True)
    assert store.entered.wait(WAIT)
    seen, seen_box = run_in_thread(table.lookup, "t1")
    seen.join(0.3)
    assert seen.is_alive(), "status answered before the task's record was durable"
    store.release.set()
    seen.join(WAIT)
    t.join(WAIT)
    assert seen_box["value"]["status"] == "queued"
    assert json.loads((tmp_path / "mem/records/t1.json").read_text())["status"] == "queued"


def test_the_outcome_is_published_only_after_the_final_write(tmp_path):
    store, table = make_table(tmp_path)
    table.admit("t1", "triage", INPUT, lambda t: True)
    table.mark_running("t1")
    store.hold_call = 2
    t, box = run_in_thread(lambda: table.finish("t1", ok=True, result={"r": 1}, error=None, steps=[]))
    assert store.entered.wait(WAIT)
    try:
        assert table.lookup("t1")["status"] == "running"
        assert table.admit("t1", "triage", INPUT, lambda t: True)[0] == "in_progress"
        assert table.wait_done("t1", 0.2) is None
    finally:
        store.release.set()
    t.join(WAIT)
    assert box["value"]["status"] == "succeeded"
    assert table.wait_done("t1", WAIT)["status"] == "succeeded"
    assert table.admit("t1", "triage", INPUT, lambda t: True)[0] == "replay"


def test_a_slow_admission_write_is_never_written_over_the_final_record(tmp_path):
    """The worker may finish before the submit thread's admission fsync returns."""
    store, table = make_table(tmp_path)
    store.hold_call = 1
    t, _ = run_in_thread(table.admit, "t1", "triage", INPUT, lambda t: True)
    assert store.entered.wait(WAIT)
    table.mark_running("t1")
    f, fbox = run_in_thread(lambda: table.finish("t1", ok=True, result={"r": 2}, error=None, steps=[]))
    f.join(0.3)
    assert f.is_alive(), "finish must wait for the admission write"
    store.release.set()
    t.join(WAIT)
    f.join(WAIT)
    assert fbox["value"]["status"] == "succeeded"
    assert [s for _, s in store.puts] == ["queued", "succeeded"]
    reloaded = RecordStore(tmp_path / "mem", 100)
    reloaded.load()
    assert reloaded.get("t1")["status"] == "succeeded"


def test_a_failed_final_write_fails_the_task_instead_of_leaving_it_running(tmp_path):
    store, table = make_table(tmp_path)
    table.admit("t1", "triage", INPUT, lambda t: True)
    table.mark_running("t1")
    store.fail_call = 2
    with pytest.raises(OSError):
        table.finish("t1", ok=True, result={"r": 1}, error=None, steps=[])
    rec = table.wait_done("t1", WAIT)
    assert rec["status"] == "failed" and rec["error"]["name"] == "internal_error" and rec["result"] is None
    store.fail_call = None
    assert table.admit("t1", "triage", INPUT, lambda t: True)[0] == "queued"   # runs again


def test_a_crash_between_the_writes_recovers_as_failed(tmp_path):
    store, table = make_table(tmp_path)
    table.admit("t1", "triage", INPUT, lambda t: True)
    table.mark_running("t1")
    table.update_steps("t1", [STEP])
    store2 = RecordStore(tmp_path / "mem", 100)
    store2.load()
    table2 = TaskTable(store2, now_iso=utc_timestamp, deadline_ms=4000)
    assert table2.recover() == ["t1"]
    rec = table2.lookup("t1")
    assert rec["status"] == "failed" and rec["error"]["name"] == "timeout"
    assert rec["error"]["details"] == {"step": None, "timeout_ms": 4000}


def test_readers_get_snapshots_that_later_steps_do_not_change(tmp_path):
    _, table = make_table(tmp_path)
    table.admit("t1", "triage", INPUT, lambda t: True)
    steps = [dict(STEP)]
    table.update_steps("t1", steps)
    before = table.lookup("t1")
    steps[0]["attempts"] = 2                       # the pipeline edits its dicts in place
    assert before["steps"][0]["attempts"] == 1
    assert table.lookup("t1")["steps"][0]["attempts"] == 1
    table.update_steps("t1", steps)
    assert table.lookup("t1")["steps"][0]["attempts"] == 2 and before["steps"][0]["attempts"] == 1


# -- record store ----------------------------------------------------------------------------------

def agent_rec(n):
    return {"step": "collect", "input": {"n": n}, "output": {"n": n}}


def test_puts_of_different_tasks_fsync_in_parallel(tmp_path, monkeypatch):
    store = RecordStore(tmp_path / "mem", 100)
    store.load()
    barrier = threading.Barrier(2, timeout=WAIT)
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            barrier.wait()   # both file fsyncs must be in progress at the same time
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    threads = [run_in_thread(store.put, f"t{i}", agent_rec(i)) for i in range(2)]
    for t, _ in threads:
        t.join(WAIT * 2)
    for _, box in threads:
        assert "error" not in box, f"puts were serialised around fsync: {box.get('error')!r}"
    assert sorted(store.task_ids()) == ["t0", "t1"]
    assert sorted(store.seq_of(t) for t in ("t0", "t1")) == [0, 1]


def test_concurrent_puts_of_one_task_leave_the_newest_on_disk(tmp_path):
    store = RecordStore(tmp_path / "mem", 100)
    store.load()
    results: list[dict] = []
    lock = threading.Lock()

    def writer(w):
        for i in range(10):
            stored = store.put("same", agent_rec(w * 100 + i))
            with lock:
                results.append(stored)
    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 4)
    newest = max(results, key=lambda r: r["seq"])
    assert store.get("same") == newest
    assert json.loads((tmp_path / "mem/records/same.json").read_text()) == newest
    assert len(store) == 1


def test_retention_never_deletes_a_record_being_rewritten(tmp_path, monkeypatch):
    store = RecordStore(tmp_path / "mem", 2)
    store.load()
    store.put("a", agent_rec(1))
    store.put("b", agent_rec(2))
    renamed, go_on = threading.Event(), threading.Event()
    original = store._write_atomic

    def write_atomic(target, data, temp_n=None, **kw):
        original(target, data, temp_n, **kw)
        if target.name == "a.json":
            renamed.set()            # "a" is renamed into place but not indexed yet
            assert go_on.wait(WAIT)
    monkeypatch.setattr(store, "_write_atomic", write_atomic)
    t, box = run_in_thread(store.put, "a", agent_rec(3))
    assert renamed.wait(WAIT)
    store.put("c", agent_rec(4))     # over retention: must prune "b", not the new "a"
    go_on.set()
    t.join(WAIT)
    assert "error" not in box
    assert (tmp_path / "mem/records/a.json").exists()
    assert sorted(store.task_ids()) == ["a", "c"]
    assert store.get("a")["input"] == {"n": 3}
    reloaded = RecordStore(tmp_path / "mem", 2)
    reloaded.load()
    assert sorted(reloaded.task_ids()) == ["a", "c"]


def test_trusted_puts_skip_only_the_schema_pass(tmp_path):
    calls = []

    def validate(record):
        calls.append(record["task_id"])
        return "step" in record
    store = RecordStore(tmp_path / "mem", 100, validate_record=validate)
    store.load()
    stored = store.put("t1", agent_rec(1), trusted=True)
    assert calls == [] and stored["seq"] == 0 and stored["input"] == {"n": 1}
    store.put("t2", agent_rec(2))
    assert calls == ["t2"]
    with pytest.raises(ValueError):
        store.put("t3", {"nostep": 1})               # untrusted puts are still checked
    reloaded = RecordStore(tmp_path / "mem", 100, validate_record=validate)
    reloaded.load()                                   # files are always checked on load
    assert sorted(calls[2:]) == ["t1", "t2"]


# -- pooled agent connections ----------------------------------------------------------------------

class ScriptedAgent:
    """A collector that counts connections and hellos; per work request it may answer
    normally, twice (a duplicated reply), late, or close the connection afterwards."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.hellos = 0
        self.work = 0
        self.mode = "normal"          # normal | twice | late | close_after
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            self._conns.append(c)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, c):
        c.settimeout(0.1)
        dec = FrameDecoder()
        with c:
            while not self._stop.is_set():
                try:
                    data = c.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not data:
                    return
                for item in dec.feed(data):
                    req = item.value
                    base = {"v": 1, "in_reply_to": req["msg_id"], "task_id": req.get("task_id")}
                    if req["type"] == "hello":
                        self.hellos += 1
                        c.sendall(encode_frame(dict(base, type="hello_ok", payload={
                            "version": 1, "role": "collector", "capabilities": ["collect"],
                            "limits": {"max_frame_bytes": 1048576, "max_depth": 32}})))
                        continue
                    self.work += 1
                    reply = encode_frame(dict(base, type="collect_ok", replay=False,
                                              payload={"echo": req["task_id"]}))
                    mode = self.mode
                    if mode == "late":
                        time.sleep(0.4)
                    try:
                        c.sendall(reply)
                        if mode == "twice":
                            time.sleep(0.05)
                            c.sendall(encode_frame(dict(base, type="collect_ok", replay=True,
                                                        payload={"echo": "DUPLICATE"})))
                    except OSError:
                        return
                    if mode == "close_after":
                        return

    def close(self):
        self._stop.set()
        self.sock.close()
        for t in self._threads:
            t.join(2.0)


@pytest.fixture
def scripted():
    agent = ScriptedAgent()
    yield agent
    agent.close()


def call(client, task_id, timeout_s=2.0):
    return client.call("collect", {"source": "s", "records": []}, task_id=task_id,
                       traceparent=None, timeout_s=timeout_s)


def test_attempts_share_one_connection_and_one_hello(scripted):
    client = AgentClient("collector", ("127.0.0.1", scripted.port), TOKEN)
    for i in range(5):
        a = call(client, f"t{i}")
        assert a.kind == "ok" and a.payload == {"echo": f"t{i}"}
    assert (scripted.connections, scripted.hellos, scripted.work) == (1, 1, 5)
    client.close_idle()


def test_a_connection_the_agent_closed_is_replaced_without_a_failed_attempt(scripted):
    client = AgentClient("collector", ("127.0.0.1", scripted.port), TOKEN)
    scripted.mode = "close_after"
    assert call(client, "t1").kind == "ok"
    time.sleep(0.2)                    # the agent's FIN arrives
    scripted.mode = "normal"
    a = call(client, "t2")
    assert a.kind == "ok" and a.payload == {"echo": "t2"}
    assert scripted.connections == 2 and scripted.hellos == 2 and scripted.work == 2
    client.close_idle()


def test_a_connection_idle_too_long_is_replaced(scripted):
    client = AgentClient("collector", ("127.0.0.1", scripted.port), TOKEN, pool_idle_s=0.2)
    assert call(client, "t1").kind == "ok"
    assert call(client, "t2").kind == "ok"
    assert scripted.connections == 1
    time.sleep(0.35)
    assert call(client, "t3").payload == {"echo": "t3"}
    assert scripted.connections == 2 and scripted.hellos == 2
    assert client.pool_stats["discarded_stale"] == 1
    client.close_idle()


def test_after_a_timeout_the_late_reply_is_never_paired_with_the_next_request(scripted):
    client = AgentClient("collector", ("127.0.0.1", scripted.port), TOKEN)
    assert call(client, "t0").kind == "ok"
    scripted.mode = "late"
    a = call(client, "t1", timeout_s=0.2)
    assert a.kind == "transport" and a.error["name"] == "timeout"
    scripted.mode = "normal"
    b = call(client, "t2")
    assert b.kind == "ok" and b.payload == {"echo": "t2"}
    assert scripted.connections == 2          # the timed-out connection was not reused
    time.sleep(0.4)                           # the late reply lands on the closed socket
    c = call(client, "t3")
    assert c.kind == "ok" and c.payload == {"echo": "t3"}
    client.close_idle()


def test_a_duplicated_reply_is_skipped_not_returned(scripted):
    client = AgentClient("collector", ("127.0.0.1", scripted.port), TOKEN)
    scripted.mode = "twice"
    assert call(client, "t1").payload == {"echo": "t1"}
    scripted.mode = "normal"
    # Whether the duplicate is already waiting (connection discarded) or arrives while
    # the next request is in flight (skipped by in_reply_to), it is never the answer.
    for i in range(2, 6):
        a = call(client, f"t{i}")
        assert a.kind == "ok" and a.payload == {"echo": f"t{i}"}
    client.close_idle()


def test_an_in_flight_duplicate_is_skipped_by_in_reply_to(scripted):
    """Force the race: reuse a connection whose duplicate reply is still on its way."""
    from reference_impl.orchestrator import client as client_mod
    client = AgentClient("collector", ("127.0.0.1", scripted.port), TOKEN)
    assert call(client, "t0").kind == "ok"
    scripted.mode = "twice"
    original = client_mod.connection_is_quiet
    client_mod.connection_is_quiet = lambda sock: True       # pretend the check raced
    try:
        assert call(client, "t1").payload == {"echo": "t1"}
        scripted.mode = "normal"
        a = call(client, "t2")
        assert a.kind == "ok" and a.payload == {"echo": "t2"}
        assert scripted.connections == 1
    finally:
        client_mod.connection_is_quiet = original
        client.close_idle()


# -- back-pressure ----------------------------------------------------------------------------------

def test_busy_does_not_wait_for_the_task_table(tmp_path):
    store = RecordStore(tmp_path / "memory", 100)
    store.load()
    clients = {r: AgentClient(r, ("127.0.0.1", 9), TOKEN) for r in ("collector", "analyzer", "reporter")}
    svc = OrchestratorService(
        token=TOKEN, logger=Logger("orchestrator", stream=io.StringIO()), registry=Registry(),
        store=store, routes={"triage": ["collect", "analyze", "report"]}, clients=clients,
        settings=Settings(), deadline_ms=3000, queue_size=0, workers=1, now_iso=utc_timestamp)
    svc.install_common_metrics(store, lambda: 0)
    svc._admitted = svc.capacity              # every slot taken
    frame = {"v": 1, "type": "submit", "msg_id": "m-1", "task_id": "t-busy", "token": TOKEN,
             "payload": {"task_type": "triage", "input": INPUT}}
    item = FrameDecoder().feed(encode_frame(frame))[0]
    holder_ready, release = threading.Event(), threading.Event()

    def hold_table():
        with svc.table.lock:
            holder_ready.set()
            release.wait(WAIT)
    h = threading.Thread(target=hold_table, daemon=True)
    h.start()
    assert holder_ready.wait(WAIT)
    try:
        t0 = time.monotonic()
        t, box = run_in_thread(svc.handle, item, None)
        t.join(1.0)
        assert not t.is_alive(), "busy waited for TaskTable.lock"
        assert time.monotonic() - t0 < 1.0
        reply = box["value"]
        assert reply["error"]["name"] == "busy" and reply["in_reply_to"] == "m-1"
        assert reply["error"]["details"]["retry_after_ms"] >= 1
    finally:
        release.set()
        h.join(WAIT)
    assert store.get("t-busy") is None and svc.table.lookup("t-busy") is None
    assert svc.m_busy.value() == 1

