"""graders/drivers/docker.py: the pure helpers, then the driver on a real engine.

Engine tests deploy the reference from its own manifest (`[docker]` section) on the
isolated network (the tests in a grader namespace of their own), route the orchestrator's
agent traffic through TCP proxies listening on the grader's address (`proxy_host`), and
exercise what checks do: kill/restart with memory kept,
memory damage through the archive API, pause/resume, SIGTERM, a bad environment, and
cleanup that leaves nothing labelled.

Engine tests are skipped only when no Docker engine can run here; with
FAULTDRILL_REQUIRE_DOCKER=1 (CI) a missing engine is a failure.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from graders import oracle
from graders.client import Connection, make_request, http_get
from graders.drivers.base import Endpoint, StartError
from graders.drivers.docker import (LABEL, RUN_LABEL, build_paths,
                                    container_command, single_file_tar, tar_listing,
                                    translate_agent_addr, _safe_relpath)
from graders.manifest import ROLES, load_manifest

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "driver-test-token-51c2"


# --------------------------------------------------------------------------- pure helpers

def _sub(tmp_path: Path, docker_table: str = "", command='["{python}", "main.py", "%s"]'):
    services = "".join(f"[services.{r}]\ncommand = {command % r}\n" for r in ROLES)
    (tmp_path / "faultdrill.toml").write_text(
        f'[submission]\nname = "T t!"\nspec_version = 1\n{services}{docker_table}')
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    return load_manifest(tmp_path)


def test_container_command_replaces_placeholders_and_honours_overrides(tmp_path):
    sub = _sub(tmp_path, '[docker.command]\nanalyzer = ["/bin/an", "x"]\n',
               command='["{python}", "{root}/main.py", "%s"]')
    assert container_command(sub, "collector") == ["python3", "./main.py", "collector"]
    assert container_command(sub, "analyzer") == ["/bin/an", "x"]


def test_build_paths_stay_inside_the_submission(tmp_path):
    sub = _sub(tmp_path)
    assert build_paths(sub) == (tmp_path.resolve(), (tmp_path / "Dockerfile").resolve())
    bad = _sub(tmp_path, '[docker]\ncontext = ".."\n')
    with pytest.raises(ValueError, match="outside the submission root"):
        build_paths(bad)
    missing = _sub(tmp_path, '[docker]\ndockerfile = "nope/Dockerfile"\n')
    with pytest.raises(ValueError, match="does not exist"):
        build_paths(missing)


def test_agent_addresses_are_translated_for_the_container_network():
    eps = {"collector": Endpoint("collector", "127.0.0.1", 41001, 41101),
           "analyzer": Endpoint("analyzer", "127.0.0.1", 41002, 41102)}
    gw = "172.30.0.1"
    assert translate_agent_addr(None, "reporter", eps, gw) == "reporter:7003"
    assert translate_agent_addr("127.0.0.1:41001", "collector", eps, gw) == "collector:7001"
    # a proxy on the host's loopback/wildcard -> the same port on the gateway
    assert translate_agent_addr("127.0.0.1:5555", "collector", eps, gw) == f"{gw}:5555"
    assert translate_agent_addr("0.0.0.0:5556", "analyzer", eps, gw) == f"{gw}:5556"
    assert translate_agent_addr(f"{gw}:5557", "analyzer", eps, gw) == f"{gw}:5557"
    assert translate_agent_addr("collector:7001", "collector", eps, gw) == "collector:7001"


def test_agent_addresses_are_translated_for_the_isolated_network():
    """Isolated: endpoints are container addresses on SPEC ports, proxies listen on the
    grader's address; a grader-side 127.0.0.1 port is never taken for an agent."""
    eps = {"collector": Endpoint("collector", "10.4.5.3", 7001, 7101),
           "analyzer": Endpoint("analyzer", "10.4.5.4", 7002, 7102)}
    grader = "10.4.5.254"
    assert translate_agent_addr("10.4.5.3:7001", "collector", eps, grader) == "collector:7001"
    assert translate_agent_addr("127.0.0.1:7001", "collector", eps, grader) == f"{grader}:7001"
    assert translate_agent_addr("127.0.0.1:45678", "analyzer", eps, grader) == f"{grader}:45678"
    assert translate_agent_addr(f"{grader}:45678", "analyzer", eps, grader) == f"{grader}:45678"
    assert translate_agent_addr(None, "analyzer", eps, grader) == "analyzer:7002"


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "records/../../x", "", "."])
def test_memory_paths_cannot_escape(bad):
    with pytest.raises(ValueError):
        _safe_relpath(bad)


_seg = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.-", min_size=1,
               max_size=12).filter(lambda s: s not in (".", ".."))


@settings(max_examples=150, derandomize=True, deadline=None)
@given(parts=st.lists(_seg, min_size=1, max_size=4), data=st.binary(max_size=2048),
       mode=st.sampled_from([0, 0o600, 0o644]), uid=st.integers(0, 65535))
def test_single_file_tar_round_trips(parts, data, mode, uid):
    rel = "/".join(parts)
    dirs = tuple("/".join(parts[:i]) for i in range(1, len(parts)))
    members, files = tar_listing(single_file_tar(rel, data, mode=mode, uid=uid, gid=uid,
                                                 new_dirs=dirs))
    assert files == {rel: data}
    assert [m.name for m in members] == list(dirs) + [rel]
    assert all(m.uid == uid and m.gid == uid for m in members)
    assert members[-1].mode == mode and all(m.isdir() for m in members[:-1])


# --------------------------------------------------------------------------- engine

class Proxy:
    """A counting TCP forwarder: listen on (host, 0), forward to target. Every socket has
    a timeout and every thread a bounded join."""

    def __init__(self, host: str, target: tuple[str, int]):
        self.target = target
        self.connections = 0
        self.bytes_up = 0
        self._lsock = socket.create_server((host, 0))
        self._lsock.settimeout(0.2)
        self.host, self.port = self._lsock.getsockname()[:2]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept.start()

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._lsock.accept()
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                t = threading.Thread(target=self._pipe, args=(src, dst, up), daemon=True)
                t.start()
                self._threads.append(t)

    def _pipe(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        src.settimeout(0.5)
        try:
            while not self._stop.is_set():
                try:
                    data = src.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                if up:
                    self.bytes_up += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._accept.join(5)
        for t in self._threads:
            t.join(5)
        self._lsock.close()


from tests.docker_engine import require_engine as _require_engine  # noqa: E402


@pytest.fixture(scope="module")
def deployed():
    """The reference deployed with the Docker driver on its isolated network, the tests
    (the grader) in a network namespace of their own as `faultdrill grade` is, agents
    behind proxies listening on the grader's address (`proxy_host`)."""
    _require_engine()
    from graders.drivers.docker import DockerDriver, connect, ensure_base_image
    from graders.drivers.docker_network import grader_namespace
    base = ensure_base_image(connect())
    with grader_namespace():
        yield from _deployed(DockerDriver(base_image=base, isolate_network=True))


def _deployed(driver):
    sub = load_manifest(ROOT / "reference_impl")
    env = {r: {"FD_TOKEN": TOKEN, "FD_LOG_LEVEL": "info"} for r in ROLES}
    t0 = time.monotonic()
    dep = driver.deploy(sub, base_env=env)
    proxies: dict[str, Proxy] = {}
    try:
        for role in ("collector", "analyzer", "reporter"):
            dep.start(role)
            ep = dep.endpoint(role)
            proxies[role] = Proxy(dep.proxy_host, (ep.host, ep.port))
        dep.start("orchestrator", {
            "FD_COLLECTOR_ADDR": proxies["collector"].addr,
            "FD_ANALYZER_ADDR": proxies["analyzer"].addr,
            "FD_REPORTER_ADDR": proxies["reporter"].addr})
        print(f"[docker-driver] run {dep.run_id} started in {time.monotonic() - t0:.1f} s; "
              f"proxies on {dep.proxy_host}")
        yield driver, dep, proxies
    finally:
        for p in proxies.values():
            p.close()
        dep.close()
        driver.close()


def _submit(dep, task_id: str, task_input: dict, timeout: float = 15.0) -> dict:
    ep = dep.endpoint("orchestrator")
    with Connection(ep.host, ep.port, timeout=timeout) as conn:
        return conn.request(make_request("submit", {"task_type": "triage", "input": task_input},
                                         token=TOKEN, task_id=task_id), timeout=timeout)


def _input(seed: int, n: int = 40) -> dict:
    import random
    print(f"[docker-driver] input seed {seed}")
    return oracle.generate_input(random.Random(seed), n)


def test_reference_serves_a_task_through_host_proxies(deployed):
    _driver, dep, proxies = deployed
    task_input = _input(7)
    reply = _submit(dep, "dk-1", task_input)
    assert reply["type"] == "submit_ok", reply
    assert reply["payload"]["result"] == oracle.expected_result("triage", task_input)
    for role, p in proxies.items():
        assert p.connections >= 1 and p.bytes_up > 0, f"no traffic through the {role} proxy"
    orch = dep.client.containers.get(dep.container_name("orchestrator"))
    env = dict(e.split("=", 1) for e in orch.attrs["Config"]["Env"])
    assert env["FD_COLLECTOR_ADDR"] == f"{dep.proxy_host}:{proxies['collector'].port}"
    assert env["FD_LISTEN_HOST"] == "0.0.0.0" and env["FD_MEMORY_DIR"].startswith("/")
    assert orch.attrs["Config"]["Labels"][LABEL] == "1"
    assert orch.attrs["Config"]["Labels"][RUN_LABEL] == dep.run_id
    # no image HEALTHCHECK: it would send unasked-for hellos through the proxies
    assert orch.attrs["Config"]["Healthcheck"]["Test"] == ["NONE"]
    hc = orch.attrs["HostConfig"]
    assert hc["ReadonlyRootfs"] and hc["CapDrop"] == ["ALL"]
    # nothing published on the host: the grader reaches the container at its address
    assert not hc.get("PortBindings")
    nets = orch.attrs["NetworkSettings"]["Networks"]
    assert [n["IPAddress"] for n in nets.values()] == [dep.endpoint("orchestrator").host]


def test_killed_agent_restarts_with_memory_and_replays(deployed):
    _driver, dep, _ = deployed
    task_input = _input(11, 20)
    assert _submit(dep, "dk-2", task_input)["type"] == "submit_ok"
    assert "records/dk-2.json" in dep.memory_files("collector")
    dep.kill("collector")
    assert not dep.running("collector") and dep.exit_code("collector") == -9
    dep.restart("collector")
    assert dep.running("collector")
    assert "records/dk-2.json" in dep.memory_files("collector")
    ep = dep.endpoint("collector")
    collect_input = {"source": task_input["source"], "records": task_input["records"]}
    with Connection(ep.host, ep.port, timeout=10) as conn:
        reply = conn.request(make_request("collect", collect_input, token=TOKEN,
                                          task_id="dk-2"), timeout=10)
    assert reply["type"] == "collect_ok" and reply["replay"] is True, reply
    assert reply["payload"] == oracle.collect(collect_input)
    # The orchestrator's published port and task log also survive its own SIGKILL.
    dep.kill("orchestrator")
    dep.restart("orchestrator")
    again = _submit(dep, "dk-2", task_input)
    assert again["type"] == "submit_ok" and again["replay"] is True, again


def test_corrupt_memory_is_quarantined_after_restart(deployed):
    _driver, dep, _ = deployed
    task_input = _input(13, 10)
    assert _submit(dep, "dk-3", task_input)["type"] == "submit_ok"
    dep.stop("analyzer", grace=3)
    dep.write_memory("analyzer", "records/garbage-1.json", b"\x00not json")
    dep.make_unreadable("analyzer", "records/dk-3.json")
    files = dep.memory_files("analyzer")
    assert "records/garbage-1.json" in files and "records/dk-3.json/unreadable" in files
    # what the grader wrote is owned like the memory dir, so the service can read it
    assert dep.read_memory("analyzer", "records/garbage-1.json") == b"\x00not json"
    dep.start("analyzer")
    files = dep.memory_files("analyzer")
    assert not any(f.startswith("records/garbage-1.json") for f in files), files
    assert any(f.startswith("quarantine/garbage-1.json") for f in files), files
    assert any(f.startswith("quarantine/dk-3.json") for f in files), files
    corrupt = [json.loads(l) for l in dep.logs("analyzer", current_run=True)
               if '"memory_corrupt"' in l]
    assert len(corrupt) == 2, corrupt
    ep = dep.endpoint("analyzer")
    assert http_get(ep.host, ep.http_port, "/readyz", timeout=5)[0] == 200


def test_pause_resume_and_graceful_stop(deployed):
    _driver, dep, _ = deployed
    ep = dep.endpoint("reporter")
    dep.pause("reporter")
    try:
        assert dep.running("reporter")
        with pytest.raises(OSError):
            http_get(ep.host, ep.http_port, "/livez", timeout=1.0)
    finally:
        dep.resume("reporter")
    assert http_get(ep.host, ep.http_port, "/livez", timeout=5)[0] == 200
    assert dep.stop("reporter", grace=5) == 0
    assert any('"shutdown"' in l for l in dep.logs("reporter", current_run=True))
    dep.start("reporter")


def test_invalid_environment_is_a_start_error_with_the_services_words(deployed):
    _driver, dep, _ = deployed
    dep.stop("collector", grace=3)
    with pytest.raises(StartError) as info:
        dep.start("collector", {"FD_MAX_CONNECTIONS": "abc"}, timeout=10)
    assert info.value.exit_code == 2
    assert any("FD_MAX_CONNECTIONS" in line for line in info.value.output_tail)
    with pytest.raises(ValueError):
        dep.start("collector", {"NOT_A_SPEC_VAR": "1"})
    dep.start("collector")     # back with the base environment
    assert dep.running("collector")


def test_zz_close_leaves_nothing_labelled(deployed):
    driver, dep, proxies = deployed
    for p in proxies.values():
        p.close()
    report = dep.close()
    assert report.ok, report
    assert sorted(report.stopped) == sorted(ROLES)
    driver.close()
    from graders.drivers.docker import connect
    client = connect()
    f = {"label": [f"{RUN_LABEL}={dep.run_id}"]}
    left = (client.containers.list(all=True, filters=f) + client.networks.list(filters=f)
            + client.volumes.list(filters=f))
    assert left == []
    assert not [i for i in client.images.list(filters={"label": f"{LABEL}=1"})
                if dep.image in i.tags]
    client.close()
