"""The candidate's starter (challenges/starter/) is a working, SPEC-conformant baseline.

It is started exactly as a grader would start it -- from its faultdrill.toml, one process
per role, scrubbed environment, free loopback ports -- and driven over the wire. The
expected results are parsed from SPEC §18.1, so the SPEC and the starter cannot drift
apart silently.
"""
import ast
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STARTER = ROOT / "challenges" / "starter"
SPEC = ROOT / "challenges" / "SPEC.md"
ROLES = ("orchestrator", "collector", "analyzer", "reporter")
AGENTS = ("collector", "analyzer", "reporter")
CHALLENGES = ("pipeline-basics", "dropped-sockets", "crash-restart", "corrupt-memory",
              "bad-tokens", "schema-drift", "idempotency", "overload", "observability",
              "tls-shutdown")


def worked_example():
    """The JSON blocks of SPEC §18.1, in order: submit frame, collect, analyze, report."""
    text = SPEC.read_text(encoding="utf-8")
    section = text[text.index("### 18.1"):text.index("### 18.2")]
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", section, re.S)]
    assert len(blocks) == 4, "SPEC §18.1 should hold four JSON blocks"
    return blocks


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class Wire:
    """A bounded NDJSON client: every read has a deadline."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by server")
            self.buf += chunk
            assert len(self.buf) < 4 << 20, "reply larger than 4 MiB"
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def request(self, obj):
        self.send_raw(json.dumps(obj).encode() + b"\n")
        return self.recv()

    def closed_by_peer(self, timeout=3.0):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


class Starter:
    """Runs the starter's services as a grader would (SPEC §2, §3). Always clean up."""

    def __init__(self, tmp, token):
        manifest = tomllib.loads((STARTER / "faultdrill.toml").read_text())
        assert manifest["submission"]["spec_version"] == 1
        self.commands = {
            role: [sys.executable if a == "{python}" else a.replace("{root}", str(STARTER))
                   for a in manifest["services"][role]["command"]] for role in ROLES}
        self.tmp, self.token, self.procs, self.logs = Path(tmp), token, {}, {}
        ports = free_ports(8)
        self.port = dict(zip(ROLES, ports[:4]))
        self.http = dict(zip(ROLES, ports[4:]))

    def env(self, role, **extra):
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
        env.update(TZ="UTC", PYTHONUNBUFFERED="1", FD_ROLE=role, FD_TOKEN=self.token,
                   FD_LISTEN_HOST="127.0.0.1", FD_LISTEN_PORT=str(self.port[role]),
                   FD_HTTP_PORT=str(self.http[role]),
                   FD_MEMORY_DIR=str(self.tmp / "memory" / role))
        if role == "orchestrator":
            for agent in AGENTS:
                env[f"FD_{agent.upper()}_ADDR"] = f"127.0.0.1:{self.port[agent]}"
        env.update(extra)
        return {k: v for k, v in env.items() if v is not None}

    def start(self, role, wait=True, **extra):
        log_path = self.tmp / f"{role}.stderr"
        with open(log_path, "wb") as stderr:
            proc = subprocess.Popen(self.commands[role], cwd=STARTER, env=self.env(role, **extra),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=stderr, start_new_session=True)
        self.procs[role], self.logs[role] = proc, log_path
        if wait:
            self.wait_started(role)
        return proc

    def wait_started(self, role, timeout=10.0):
        """SPEC §3: started = TCP port accepts and GET /livez answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[role].poll() is not None:
                pytest.fail(f"{role} exited {self.procs[role].returncode}: {self.stderr(role)}")
            try:
                socket.create_connection(("127.0.0.1", self.port[role]), timeout=0.5).close()
                if http_get(self.http[role], "/livez")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        pytest.fail(f"{role} not started within {timeout} s: {self.stderr(role)}")

    def stderr(self, role):
        return self.logs[role].read_text(errors="replace")[-2000:]

    def stop(self, role, grace=5.0):
        proc = self.procs.pop(role, None)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
            return None

    def close(self):
        for role in list(self.procs):
            self.stop(role)

    def request(self, role, obj):
        wire = Wire(self.port[role])
        try:
            return wire.request(obj)
        finally:
            wire.close()


def frame(kind, payload, token, task_id=None, msg_id="m-1"):
    obj = {"v": 1, "type": kind, "msg_id": msg_id, "token": token, "payload": payload}
    if task_id is not None:
        obj["task_id"] = task_id
    return obj


@pytest.fixture(scope="module")
def example():
    return worked_example()


@pytest.fixture(scope="module")
def system(tmp_path_factory, example):
    starter = Starter(tmp_path_factory.mktemp("starter"), token=example[0]["token"])
    try:
        for role in AGENTS + ("orchestrator",):
            starter.start(role)
        yield starter
    finally:
        starter.close()


def test_worked_example_end_to_end(system, example):
    submit, _, _, report = example
    reply = system.request("orchestrator", submit)
    assert reply["type"] == "submit_ok", reply
    assert reply["in_reply_to"] == submit["msg_id"] and reply["task_id"] == submit["task_id"]
    assert reply["replay"] is False
    assert reply["payload"]["status"] == "succeeded"
    assert reply["payload"]["result"] == report
    assert [s["step"] for s in reply["payload"]["steps"]] == ["collect", "analyze", "report"]
    status = system.request("orchestrator", frame("status", {}, system.token,
                                                  task_id=submit["task_id"]))
    assert status["type"] == "status_ok" and status["payload"]["result"] == report
    assert system.token not in json.dumps(reply) + json.dumps(status)


def test_each_agent_matches_worked_example(system, example):
    submit, collected, analyzed, report = example
    task_input, token = submit["payload"]["input"], system.token
    steps = [("collector", "collect", {"source": task_input["source"],
                                       "records": task_input["records"]}, collected),
             ("analyzer", "analyze", {"source": collected["source"],
                                      "events": collected["events"]}, analyzed),
             ("reporter", "report", {"analysis": analyzed,
                                     "thresholds": task_input["thresholds"]}, report)]
    for role, step, payload, expected in steps:
        reply = system.request(role, frame(step, payload, token, task_id="agent-direct"))
        assert reply["type"] == f"{step}_ok", reply
        assert reply["payload"] == expected, step


def test_hello_negotiates_version_one(system):
    for role in ROLES:
        reply = system.request(role, frame("hello", {"versions": [2, 1], "role": "client"},
                                           system.token))
        assert reply["type"] == "hello_ok" and reply["payload"]["version"] == 1
        limit = 1048576 if role == "orchestrator" else 16777216   # SPEC §4
        assert reply["payload"]["limits"] == {"max_frame_bytes": limit, "max_depth": 32}
        none = system.request(role, frame("hello", {"versions": [7]}, system.token))
        assert none["error"]["code"] == 22 and none["error"]["details"]["supported"] == [1]


@pytest.mark.parametrize("bad", [None, "", "wrong", 12345, "s" * 70000])
def test_wrong_token_is_unauthorized_everywhere(system, example, bad):
    submit = dict(example[0], msg_id="m-bad", task_id="never-run")
    if bad is None:
        del submit["token"]
    else:
        submit["token"] = bad
    for role in ROLES:
        reply = system.request(role, submit)
        assert reply["type"] == "error", reply
        error = reply["error"]
        assert (error["code"], error["name"]) == (20, "unauthorized")
        assert error["definite"] is True and error["retryable"] is False
        assert "unauthorized" in error["message"]
        assert reply["in_reply_to"] == "m-bad" and reply["task_id"] is None
        if isinstance(bad, str) and bad:
            assert bad not in json.dumps(reply)
    nothing = system.request("orchestrator", frame("status", {}, system.token,
                                                   task_id="never-run"))
    assert nothing["error"]["code"] == 41  # nothing was executed or stored


def test_framing_errors_keep_or_close_the_connection(system):
    wire = Wire(system.port["collector"])
    try:
        wire.send_raw(b"\xff\xfe{{{\n")
        error = wire.recv()["error"]
        assert (error["code"], error["details"]["reason"]) == (12, "not utf-8")
        wire.send_raw(b"[1,2]\r\n\n")
        assert wire.recv()["error"]["code"] == 12
        deep = {"v": 1, "x": 0}
        for _ in range(40):
            deep = {"d": deep}
        assert wire.request(deep)["error"]["code"] == 12
        ok = wire.request(frame("hello", {"versions": [1]}, system.token))
        assert ok["type"] == "hello_ok"  # still open after malformed frames
        wire.send_raw(b"x" * (16777216 + 1))   # one byte over the collector's 16 MiB limit (SPEC §4)
        error = wire.recv()["error"]
        assert (error["code"], error["details"]["limit_bytes"]) == (13, 16777216)
        assert wire.closed_by_peer()
    finally:
        wire.close()


def test_unserved_type_is_not_supported(system, example):
    reply = system.request("analyzer", dict(example[0], type="collect"))
    assert reply["error"]["code"] == 10 and reply["error"]["details"]["type"] == "collect"


def test_dead_agent_gives_upstream_failed(tmp_path, example):
    starter = Starter(tmp_path, token=example[0]["token"])
    try:  # nobody listens on the analyzer's port
        starter.start("collector")
        starter.start("orchestrator")
        reply = starter.request("orchestrator", example[0])
        error = reply["error"]
        assert (error["code"], error["name"]) == (40, "upstream_failed"), reply
        assert error["details"]["step"] == "analyze" and error["details"]["agent"] == "analyzer"
        assert error["details"]["cause"]["message"] == "connection refused"
        assert http_get(starter.http["orchestrator"], "/readyz") == (
            503, {"status": "not_ready", "reasons": ["analyzer", "reporter"]})
    finally:
        starter.close()


def test_sigterm_stops_cleanly_and_logs_are_json(tmp_path, example):
    starter = Starter(tmp_path, token=example[0]["token"])
    try:
        starter.start("reporter")
        reply = starter.request("reporter", frame("hello", {"versions": [1]}, "nope"))
        assert reply["error"]["code"] == 20
        began = time.monotonic()
        assert starter.stop("reporter") == 0
        assert time.monotonic() - began < 5
        lines = [json.loads(line) for line in starter.logs["reporter"].read_text().splitlines()]
        required = {"ts", "level", "service", "msg", "task_id", "trace_id", "span_id"}
        assert all(required <= line.keys() for line in lines)
        events = [line.get("event") for line in lines]
        assert "unauthorized" in events and events[-1] == "shutdown"
        assert "nope" not in starter.logs["reporter"].read_text()
    finally:
        starter.close()


@pytest.mark.parametrize("extra", [{"FD_TOKEN": None}, {"FD_WORKERS": "abc"},
                                   {"FD_ROUTES": '{"triage": ["analyze"]}'}])
def test_bad_configuration_exits_2(tmp_path, extra):
    starter = Starter(tmp_path, token="t")
    proc = starter.start("orchestrator", wait=False, **extra)
    try:
        assert proc.wait(timeout=10) == 2
        name = next(iter(extra))
        assert name in starter.stderr("orchestrator")
    finally:
        starter.close()


def test_starter_is_standard_library_only_and_independent():
    local = {p.stem for p in STARTER.glob("*.py")}
    allowed = set(sys.stdlib_module_names) | local
    for path in STARTER.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"


def test_challenge_markers_name_real_challenges():
    """Each `# CHALLENGE(name...)` marker points at a challenge folder that exists."""
    seen = set()
    for path in STARTER.glob("*.py"):
        for names in re.findall(r"CHALLENGE\(([^)]*)\)", path.read_text()):
            for name in (n.strip() for n in names.split(",")):
                assert name in CHALLENGES, f"{path.name}: unknown challenge {name!r}"
                seen.add(name)
    assert {"dropped-sockets", "idempotency", "crash-restart", "overload",
            "schema-drift", "observability", "tls-shutdown"} <= seen


def load_starter_steps():
    """Import the starter's pure `steps` module without leaving it on sys.path (its
    module names `wire`/`steps` are deliberately plain, as a candidate would write)."""
    saved = {name: sys.modules.pop(name) for name in ("wire", "steps") if name in sys.modules}
    sys.path.insert(0, str(STARTER))
    try:
        import steps  # noqa: PLC0415
        return steps
    finally:
        sys.path.remove(str(STARTER))
        for name in ("wire", "steps"):
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def test_starter_steps_agree_with_the_grader_oracle():
    """The starter claims to pass pipeline-basics: its pure steps must equal the graders'
    independent oracle on seeded generated batches (seed printed for replay)."""
    import random
    oracle = pytest.importorskip("graders.oracle")
    steps = load_starter_steps()
    seed = 20261129
    print(f"oracle cross-check seed {seed}")
    rng = random.Random(seed)
    for n in (0, 1, 7, 60, 400):
        task_input = oracle.generate_input(rng, n, bad_fraction=0.3)
        collected = steps.collect({"source": task_input["source"],
                                   "records": task_input["records"]})
        assert collected == oracle.collect({"source": task_input["source"],
                                            "records": task_input["records"]}), n
        analyzed = steps.analyze({"source": collected["source"], "events": collected["events"]})
        assert analyzed == oracle.analyze({"source": collected["source"],
                                           "events": collected["events"]}), n
        thresholds = {**steps.DEFAULT_THRESHOLDS, **task_input.get("thresholds", {})}
        assert steps.report({"analysis": analyzed, "thresholds": thresholds}) == \
            oracle.expected_result("triage", task_input), n
