"""The grader's small fault servers (H16): the fake agent's answer in every mode, its
socket behaviour, the line relay's actions (pass, drop, reset, byte-for-byte when a
direction is not judged) and that closing either leaves no thread behind.

Everything is on 127.0.0.1 with bounded waits; inputs come from fixed seeds."""
from __future__ import annotations

import json
import random
import socket
import threading

import pytest

from graders import oracle
from graders.faults.fake_agent import EXPECTED_REPLY_PATHS, MODES, FakeAgent
from graders.faults.loopback import LoopbackServer, read_lines
from graders.faults.relay import DROP, PASS, RESET, LineRelay, ReplyDropper

pytestmark = pytest.mark.timeout(60)

TOKEN = "fault-servers-token"
ROLES = {"collector": "collect", "analyzer": "analyze", "reporter": "report"}


def _inputs(seed: int = 16) -> dict[str, dict]:
    """A valid payload for each step, and the oracle's output for it."""
    task_input = oracle.generate_input(random.Random(seed), 12)
    outs = oracle.run_route(["collect", "analyze", "report"], task_input)
    return {
        "collect": {"source": task_input["source"], "records": task_input["records"]},
        "analyze": {"source": outs["collect"]["source"], "events": outs["collect"]["events"]},
        "report": {"analysis": outs["analyze"], "thresholds": dict(oracle.DEFAULT_THRESHOLDS)},
    }


def _req(rtype: str, payload: dict | None = None, *, msg_id: str = "m-1", task_id: str | None = "t-1",
         token: str = TOKEN) -> dict:
    frame = {"v": 1, "type": rtype, "msg_id": msg_id, "token": token}
    if rtype == "hello":
        frame["payload"] = {"versions": [1], "role": "orchestrator"}
    else:
        frame["task_id"] = task_id
        frame["payload"] = payload or {}
    return frame


@pytest.fixture
def agents():
    made: list[FakeAgent] = []

    def make(role, mode, **kw):
        made.append(FakeAgent(role, mode, **kw))
        return made[-1]
    yield make
    for a in made:
        a.close()


# --- the fake agent's answers ------------------------------------------------------------

@pytest.mark.parametrize("mode", ["reset", "internal_error", "unauthorized"])
def test_failing_modes_answer_hello_and_fail_work(agents, mode):
    agent = agents("analyzer", mode)
    hello = agent.answer(_req("hello"))
    assert hello["type"] == "hello_ok" and hello["v"] == 1 and hello["in_reply_to"] == "m-1"
    assert hello["payload"]["capabilities"] == ["analyze"] and hello["payload"]["role"] == "analyzer"
    reply = agent.answer(_req("analyze", _inputs()["analyze"], msg_id="m-2"))
    if mode == "reset":
        assert reply is None
        return
    err = reply["error"]
    assert reply["type"] == "error" and reply["in_reply_to"] == "m-2"
    if mode == "internal_error":
        assert (err["code"], err["definite"], err["retryable"]) == (14, False, True)
        assert reply["task_id"] == "t-1"
    else:
        assert (err["code"], err["definite"], err["retryable"]) == (20, True, False)
        assert reply["task_id"] is None          # an unauthenticated request's task is not echoed
    assert [r["msg_id"] for r in agent.work_requests()] == ["m-2"] and len(agent.work_times) == 1
    assert len(agent.requests) == 2


def test_v2_only_refuses_hello_and_work_in_v2(agents):
    agent = agents("collector", "v2_only")
    for frame in (_req("hello"), _req("collect", _inputs()["collect"])):
        reply = agent.answer(frame)
        assert reply["v"] == 2 and reply["type"] == "error"
        assert reply["error"]["name"] == "unsupported_version" and reply["error"]["code"] == 22
        assert reply["error"]["details"] == {"supported": [2]}


def test_hello_ok_v2_claims_version_2(agents):
    agent = agents("reporter", "hello_ok_v2")
    hello = agent.answer(_req("hello"))
    assert hello["v"] == 2 and hello["payload"]["version"] == 2
    work = agent.answer(_req("report", _inputs()["report"]))
    assert work["v"] == 2 and work["type"] == "report_ok"
    assert work["payload"] == oracle.report(_inputs()["report"])


def test_drift_schema_renames_latency_in_every_event(agents):
    agent = agents("collector", "drift_schema")
    payload = _inputs()["collect"]
    reply = agent.answer(_req("collect", payload))
    expected = oracle.collect(payload)
    assert reply["type"] == "collect_ok" and reply["replay"] is False and reply["v"] == 1
    assert expected["events"], "the seed must give events for the rename to show"
    for got, want in zip(reply["payload"]["events"], expected["events"], strict=True):
        assert "latency_ms" not in got and got["latency"] == want["latency_ms"]
    with pytest.raises(ValueError):
        FakeAgent("analyzer", "drift_schema")


@pytest.mark.parametrize("role", sorted(ROLES))
@pytest.mark.parametrize("mode", ["renamed_field", "missing_field", "wrong_type", "extra_field"])
def test_drifted_results_differ_from_the_oracle_where_expected(agents, role, mode):
    step = ROLES[role]
    agent = agents(role, mode)
    payload = _inputs()[step]
    reply = agent.answer(_req(step, payload))
    got, want = reply["payload"], getattr(oracle, step)(payload)
    assert reply["type"] == f"{step}_ok" and got != want
    paths = agent.expected_paths()
    assert paths == EXPECTED_REPLY_PATHS[(mode, step)]
    # the first expected path names the member that drifted; everything else is the oracle's
    member = paths[0].removeprefix("$.payload.").split(".")[0]
    rest = {k: v for k, v in got.items() if k not in (member, "entries", "groups", "findings")}
    assert rest == {k: v for k, v in want.items() if k != member}
    if mode == "missing_field":
        assert "source" not in got
    elif mode == "extra_field":
        assert got["v2_extra"] is True
    elif mode == "renamed_field":
        assert member not in got
    else:
        *parents, last = paths[0].removeprefix("$.payload.").split(".")
        for key in parents:
            got, want = got[key], want[key]
        assert type(got[last]) is not type(want[last])


def test_token_other_types_and_unreadable_payload(agents):
    agent = agents("analyzer", "renamed_field", token=TOKEN)
    refused = agent.answer(_req("analyze", _inputs()["analyze"], token="other"))
    assert refused["error"]["name"] == "unauthorized"
    other = agent.answer(_req("collect", _inputs()["collect"]))
    assert other["error"]["name"] == "not_supported" and other["error"]["details"] == {"type": "collect"}
    bad = agent.answer(_req("analyze", {"events": "not a list"}))
    assert bad["error"]["name"] == "schema_violation" and bad["error"]["details"]["path"] == "$.payload"
    assert bad["error"]["retryable"] is False
    # without a token the token is not looked at
    assert agents("analyzer", "extra_field").answer(_req("analyze", _inputs()["analyze"], token="x"))[
        "type"] == "analyze_ok"
    with pytest.raises(ValueError):
        FakeAgent("analyzer", "no_such_mode")
    assert set(MODES) >= {"reset", "internal_error", "unauthorized", "v2_only", "drift_schema"}


# --- over sockets --------------------------------------------------------------------------

def _lines(sock: socket.socket, n: int) -> list[dict]:
    stop = threading.Event()
    out = []
    for line in read_lines(sock, stop):
        out.append(json.loads(line))
        if len(out) == n:
            break
    return out


def test_fake_agent_ignores_garbage_and_resets_work(agents):
    agent = agents("analyzer", "reset")
    with socket.create_connection(agent.address, timeout=5) as s:
        s.settimeout(5)
        s.sendall(b"not json\n[1,2]\n\n" + json.dumps(_req("hello")).encode() + b"\n")
        assert _lines(s, 1)[0]["type"] == "hello_ok"
        s.sendall(json.dumps(_req("analyze", _inputs()["analyze"])).encode() + b"\n")
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        assert data == b""
    assert [r["type"] for r in agent.requests] == ["hello", "analyze"]


def _echo_agent() -> LoopbackServer:
    """Answers each request line `<type>_ok` for its task_id, on the same connection."""
    def serve(conn):
        for line in read_lines(conn, server.stop):
            req = json.loads(line)
            conn.sendall(json.dumps({"type": req["type"] + "_ok", "task_id": req.get("task_id")}).encode() + b"\n")
    server = LoopbackServer(serve, "echo")
    return server


def _call(addr, frames: list[dict]) -> list:
    """Send each frame and read its answer; "eof"/"reset" when the link ends instead."""
    out = []
    with socket.create_connection(addr, timeout=5) as s, s.makefile("rb") as replies:
        s.settimeout(5)
        for f in frames:
            s.sendall(json.dumps(f).encode() + b"\n")
            try:
                line = replies.readline()
            except ConnectionResetError:
                out.append("reset")
                return out
            if not line:
                out.append("eof")
                return out
            out.append(json.loads(line)["type"])
    return out


def test_reply_dropper_loses_exactly_the_first_matching_reply():
    echo = _echo_agent()
    dropper = ReplyDropper(echo.address, "collect_ok", "t-1")
    try:
        hello_then_work = [{"type": "hello", "task_id": None}, {"type": "collect", "task_id": "t-1"}]
        first = _call(dropper.address, hello_then_work)
        second = _call(dropper.address, hello_then_work + [{"type": "collect", "task_id": "t-2"}])
    finally:
        dropper.close()
        echo.close()
    assert first == ["hello_ok", "eof"]
    assert second == ["hello_ok", "collect_ok", "collect_ok"]
    assert dropper.dropped == {"type": "collect_ok", "task_id": "t-1"}


@pytest.mark.parametrize("action,outcome", [(PASS, "analyze_ok"), (DROP, "eof"), (RESET, "reset")])
def test_line_relay_actions_on_requests(action, outcome):
    echo = _echo_agent()
    seen: list[bytes] = []

    def policy(line):
        seen.append(line)
        return action
    relay = LineRelay(echo.address, on_request=policy)
    try:
        got = _call(relay.address, [{"type": "analyze", "task_id": "t-9"}])
    finally:
        relay.close()
        echo.close()
    assert got == [outcome] and len(seen) == 1 and json.loads(seen[0])["task_id"] == "t-9"


def test_unjudged_direction_is_forwarded_byte_for_byte():
    """A partial line (no newline yet) crosses an unjudged direction at once."""
    got = []

    def serve(conn):
        conn.settimeout(5)
        data = conn.recv(4096)
        got.append(data)
        conn.sendall(b"partial reply without newline")
    upstream = LoopbackServer(serve, "raw")
    relay = LineRelay(upstream.address, on_reply=lambda line: PASS)
    try:
        with socket.create_connection(relay.address, timeout=5) as s:
            s.settimeout(5)
            s.sendall(b"half a frame")
            # the reply direction is judged by lines: its partial line is held back, then the
            # upstream closes and the link ends without it
            assert s.recv(4096) == b""
    finally:
        relay.close()
        upstream.close()
    assert got == [b"half a frame"]


def test_close_leaves_no_thread_behind(agents):
    before = set(threading.enumerate())     # servers other tests may still be closing
    echo = _echo_agent()
    relay = ReplyDropper(echo.address, "collect_ok", "t-1")
    agent = agents("collector", "unauthorized")
    clients = []
    for addr in (relay.address, agent.address):
        s = socket.create_connection(addr, timeout=5)   # left open: close() must still end it
        clients.append(s)
        s.sendall(json.dumps({"type": "hello", "task_id": None}).encode() + b"\n")
        s.settimeout(5)
        assert s.recv(4096)
    names = ("reply-dropper", "fake-collector", "echo")
    ours = [t for t in threading.enumerate() if t.name.startswith(names) and t not in before]
    assert len(ours) >= 6      # per server an accept thread, per connection its handler (+1 pump)
    relay.close()
    agent.close()
    echo.close()
    for s in clients:
        s.close()
    assert not [t.name for t in threading.enumerate()
                if t.name.startswith(names) and t not in before and t.is_alive()]
