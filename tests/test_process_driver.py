"""ProcessDriver: lifecycle on a fake service, env scrubbing, output cap, hostile fixtures."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from graders.client import BadReply, Connection, ClientTimeout, http_get, make_request
from graders.drivers import StartError
from graders.drivers.process import OUTPUT_CAP_BYTES, ProcessDriver
from graders.manifest import ROLES, ManifestError, load_manifest

pytestmark = pytest.mark.timeout(120)

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "driver-test-token"


def deploy(name: str, **driver_kw):
    root = FIXTURES / name if not name.startswith("hostile/") else FIXTURES / name
    sub = load_manifest(root)
    return ProcessDriver(**driver_kw).deploy(sub, base_env={r: {"FD_TOKEN": TOKEN} for r in ROLES})


def alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def host_pid(d, role: str, pid: int) -> int:
    """The host pid of a process the service reported as `pid`: the same number
    unsandboxed; inside a sandbox, the process of the service's PID namespace whose
    innermost pid (NSpid) is `pid`."""
    svc = d.services[role]
    if not d.sandboxed:
        return pid
    from graders.sandbox import procs
    for host in procs.members(svc.ns_inode):
        status = Path(f"/proc/{host}/status").read_text()
        nspid = [line.split()[-1] for line in status.splitlines() if line.startswith("NSpid:")]
        if nspid and int(nspid[0]) == pid:
            return host
    raise AssertionError(f"no process with pid {pid} in the sandbox of {role}")


def hello(ep, timeout=3.0):
    with Connection(ep.host, ep.port, timeout=timeout) as c:
        return c.request(make_request("hello", {"versions": [1]}, token=TOKEN))


@pytest.fixture
def fake():
    d = deploy("fake_service")
    yield d
    report = d.close()
    assert report.ok, report


def test_manifest_expands_placeholders():
    sub = load_manifest(FIXTURES / "fake_service")
    assert sub.name.startswith("fake-service") and sub.spec_version == 1
    from graders.sandbox.layout import base_python
    assert sub.commands["collector"][0] == base_python()     # the base interpreter, never a venv's
    assert sub.commands["analyzer"][1] == str((FIXTURES / "fake_service" / "fake_service.py").resolve())
    assert sub.raw_commands["collector"] == ["{python}", "fake_service.py"]


@pytest.mark.parametrize("text, fragment", [
    (None, "manifest not found"),
    ("[submission\nname=", "invalid TOML"),
    ('[submission]\nname="x"\nspec_version=2\n', "spec_version is 2"),
    ('[submission]\nname="x"\nspec_version="1"\n', "must be an integer"),
    ('[submission]\nname="x"\nspec_version=1\n[services.orchestrator]\ncommand=["a"]\n',
     "missing role [services.collector]"),
    ('[submission]\nname="x"\nspec_version=1\n' + "".join(
        f'[services.{r}]\ncommand=[]\n' for r in ROLES), "non-empty list"),
    ('[submission]\nspec_version=1\n', "submission.name"),
])
def test_manifest_errors_are_clear(tmp_path, text, fragment):
    if text is not None:
        (tmp_path / "faultdrill.toml").write_text(text)
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path)
    assert fragment in info.value.message


def test_start_hello_stop(fake):
    ep = fake.endpoint("collector")
    fake.start("collector")
    assert fake.running("collector")
    reply = hello(ep)
    assert reply["type"] == "hello_ok" and reply["payload"]["role"] == "collector"
    assert http_get(ep.host, ep.http_port, "/livez")[0] == 200
    t0 = time.monotonic()
    assert fake.stop("collector") == 0
    assert time.monotonic() - t0 < 3
    assert not fake.running("collector") and fake.exit_code("collector") == 0
    assert any('"shutdown"' in line for line in fake.logs("collector"))
    assert "stdout hello from collector" in fake.logs("collector", "stdout")


def test_env_is_scrubbed(fake, monkeypatch):
    monkeypatch.setenv("GRADER_SECRET", "do-not-leak")
    fake.start("analyzer", env={"FD_WORKERS": "3"})
    env = json.loads(fake.read_memory("analyzer", "env.json"))
    assert "GRADER_SECRET" not in env
    allowed = {"PATH", "HOME", "LANG", "TZ", "PYTHONUNBUFFERED"}
    assert all(k.startswith("FD_") or k in allowed for k in env), sorted(env)
    assert env["TZ"] == "UTC" and env["PYTHONUNBUFFERED"] == "1"
    assert env["FD_ROLE"] == "analyzer" and env["FD_TOKEN"] == TOKEN and env["FD_WORKERS"] == "3"
    assert env["FD_MEMORY_DIR"] == str(fake.memory_dir("analyzer"))
    assert env["FD_LISTEN_PORT"] == str(fake.endpoint("analyzer").port)
    with pytest.raises(ValueError):
        fake.start("reporter", env={"NOT_A_SPEC_VAR": "1"})


def test_missing_token_exit_code(fake):
    with pytest.raises(StartError) as info:
        fake.start("reporter", env={"FD_TOKEN": None})
    assert info.value.exit_code == 2
    assert "exited with status 2" in str(info.value)
    assert any("FD_TOKEN" in line for line in info.value.output_tail)


def test_kill_pause_resume_restart(fake):
    ep = fake.endpoint("orchestrator")
    fake.start("orchestrator", env={"FD_LOG_LEVEL": "debug"})
    first_pid = host_pid(fake, "orchestrator", hello(ep)["payload"]["pid"])
    assert first_pid == fake.pid("orchestrator")
    fake.pause("orchestrator")
    with pytest.raises(ClientTimeout):
        hello(ep, timeout=0.5)
    fake.resume("orchestrator")
    assert hello(ep)["type"] == "hello_ok"
    fake.restart("orchestrator")
    second_pid = host_pid(fake, "orchestrator", hello(ep)["payload"]["pid"])
    assert second_pid != first_pid and not alive(first_pid)
    env = json.loads(fake.read_memory("orchestrator", "env.json"))
    assert env["FD_LOG_LEVEL"] == "debug"            # restart keeps the start env
    fake.kill("orchestrator")
    assert fake.exit_code("orchestrator") == -signal.SIGKILL
    assert not alive(second_pid)
    fake.restart("orchestrator")                      # restart of a dead service = start
    assert hello(ep)["type"] == "hello_ok"


def test_stop_paused_service(fake):
    fake.start("collector")
    fake.pause("collector")
    t0 = time.monotonic()
    assert fake.stop("collector", grace=3) == 0
    assert time.monotonic() - t0 < 3


def test_signal_term_and_wait(fake):
    fake.start("collector")
    fake.signal_term("collector")
    assert fake.wait("collector", 5) == 0


def test_memory_helpers(fake):
    fake.write_memory("collector", "records/t-1.json", b'{"x": 1}')
    assert fake.read_memory("collector", "records/t-1.json") == b'{"x": 1}'
    assert "records/t-1.json" in fake.memory_files("collector")
    fake.make_unreadable("collector", "records/t-1.json")
    with pytest.raises(OSError):
        (fake.memory_dir("collector") / "records/t-1.json").read_bytes()
    with pytest.raises(ValueError):
        fake.read_memory("collector", "../../etc/passwd")


def test_close_removes_temp_dirs():
    d = deploy("fake_service")
    d.start("collector")
    tmp = d.memory_dir("collector")
    report = d.close()
    assert report.ok and not tmp.exists()
    assert report.stopped == {"collector": 0}


# --- hostile fixtures ---
def test_hangs_at_start_bounded_and_cleaned():
    d = deploy("hostile/hangs-at-start")
    try:
        t0 = time.monotonic()
        with pytest.raises(StartError) as info:
            d.start("collector", timeout=1.5)
        assert time.monotonic() - t0 < 6
        assert "not started within 1.5 s" in str(info.value)
        assert "not accepting connections" in str(info.value)
        assert not d.running("collector")
    finally:
        report = d.close()
    assert report.ok, report


def test_exits_at_once_clear_message():
    d = deploy("hostile/exits-at-once")
    try:
        with pytest.raises(StartError) as info:
            d.start("analyzer")
        assert info.value.exit_code == 3 and info.value.role == "analyzer"
        assert any("database is on fire" in line for line in info.value.output_tail)
    finally:
        assert d.close().ok


def test_wrong_port_start_error():
    d = deploy("hostile/wrong-port")
    try:
        with pytest.raises(StartError) as info:
            d.start("reporter", timeout=1.5)
        assert str(d.endpoint("reporter").port) in str(info.value)
    finally:
        assert d.close().ok


@pytest.mark.slow
def test_floods_output_is_capped():
    d = deploy("hostile/floods-output", output_cap=256 * 1024)
    try:
        d.start("collector")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any("rest dropped" in line for line in d.logs("collector")) and \
               any("rest dropped" in line for line in d.logs("collector", "stdout")):
                break
            time.sleep(0.1)
        for stream in ("stdout", "stderr"):
            lines = d.logs("collector", stream)
            assert sum(len(x) for x in lines) <= 256 * 1024 + 200
            assert lines[-1].startswith("[faultdrill: output over")
        assert hello(d.endpoint("collector"))["type"] == "hello_ok"   # still serving
    finally:
        report = d.close()
    assert report.ok, report
    assert OUTPUT_CAP_BYTES >= 1024 * 1024


def test_leaves_child_running_everything_killed():
    d = deploy("hostile/leaves-child-running")
    d.start("collector")
    child = host_pid(d, "collector", int(d.read_memory("collector", "children.txt")))
    assert alive(child)
    marker = f"FD_MEMORY_DIR={d.memory_dir('collector')}".encode()
    t0 = time.monotonic()
    assert d.stop("collector", grace=2) == 0
    report = d.close()
    assert time.monotonic() - t0 < 10
    assert not alive(child)
    assert child in report.stray_pids
    assert len(report.stray_pids) >= 2            # the in-group child and the escaped daemon
    assert report.ok, report
    for pid in report.stray_pids:
        assert not alive(pid)
    # nothing anywhere still carries this deployment's memory dir in its environment
    for name in os.listdir("/proc"):
        if name.isdigit() and alive(int(name)):
            try:
                env = Path(f"/proc/{name}/environ").read_bytes()
            except OSError:
                continue
            assert marker not in env.split(b"\0")


def test_binary_garbage_bad_reply():
    d = deploy("hostile/binary-garbage")
    try:
        d.start("collector")
        with pytest.raises(BadReply) as info:
            hello(d.endpoint("collector"))
        assert info.value.raw.startswith(b"\xff\xfe")
        assert d.logs("collector")                 # garbage captured, decoded with replacement
    finally:
        assert d.close().ok
