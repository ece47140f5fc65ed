"""Grading through the Docker driver gives the reference full marks, and leaves nothing.

First the pieces that make the checks driver-agnostic, without an engine: a fault proxy
that also listens on the address containers reach the host at (`listen_also`, never a
wildcard), topology wiring of that address, files placed for a service
(`Deployment.place_file`, used by the TLS checks) and certificates naming extra hosts.

Then, on a real engine, one full grade of the reference with `--driver docker` semantics
(every check, one seed): 35/35 passed, no grader error, within the time budget; and every
container, network, volume and built image of the run is gone afterwards.

The engine test is skipped only when no Docker engine can run here; with
FAULTDRILL_REQUIRE_DOCKER=1 (CI) a missing engine is a failure.
"""
from __future__ import annotations

import io
import ipaddress
import json
import os
import socket
import stat
import time
from pathlib import Path

import pytest

from graders.client import Connection, make_request
from graders.drivers.base import Deployment
from graders.drivers.process import ProcessDeployment, ProcessDriver
from graders.faults.proxy import FaultProxy
from graders.manifest import ROLES, load_manifest

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "tests" / "fixtures" / "fake_service"
REFERENCE = ROOT / "reference_impl"
SEED = 20261129
#: The whole docker grade must stay well inside the harness budget (issue 5 §2: ~3 min).
GRADE_BUDGET_S = 180.0


# --------------------------------------------------------------------------- no engine

class _Echo:
    """A one-connection-at-a-time line echo server on loopback (bounded by timeouts)."""

    def __init__(self):
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2.0)
                try:
                    data = conn.recv(65536)
                    if data:
                        conn.sendall(data)
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.thread.join(2.0)
        self.sock.close()


def _roundtrip(host: str, port: int, payload: bytes = b'{"x":1}\n') -> bytes:
    with socket.create_connection((host, port), timeout=3.0) as s:
        s.settimeout(3.0)
        s.sendall(payload)
        return s.recv(65536)


def test_proxy_listen_also_serves_both_addresses_and_survives_down_up():
    echo = _Echo()
    proxy = FaultProxy("t", ("127.0.0.1", echo.port), seed=1).start()
    try:
        port = proxy.address[1]
        proxy.listen_also("127.0.0.2")      # any loopback alias stands in for a gateway
        assert proxy.address == ("127.0.0.1", port)
        assert proxy.addresses == [("127.0.0.1", port), ("127.0.0.2", port)]
        assert _roundtrip("127.0.0.1", port) == b'{"x":1}\n'
        assert _roundtrip("127.0.0.2", port) == b'{"x":1}\n'
        # both connections were recorded by the one proxy
        assert len([e for e in proxy.frames("upstream")]) == 2
        proxy.set_down(True)
        for host in ("127.0.0.1", "127.0.0.2"):
            with pytest.raises(OSError):
                _roundtrip(host, port)
        proxy.set_down(False)
        assert proxy.addresses == [("127.0.0.1", port), ("127.0.0.2", port)]
        assert _roundtrip("127.0.0.2", port) == b'{"x":1}\n'
        proxy.listen_also("127.0.0.2")      # idempotent
        assert len(proxy.addresses) == 2
    finally:
        proxy.close()
        echo.close()
    for host in ("127.0.0.1", "127.0.0.2"):
        with pytest.raises(OSError):
            _roundtrip(host, port)


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::"])
def test_proxy_never_listens_on_a_wildcard(host):
    with FaultProxy("w", ("127.0.0.1", 1), seed=1) as proxy:
        with pytest.raises(ValueError, match="wildcard"):
            proxy.listen_also(host)
        assert len(proxy.addresses) == 1


def test_deployments_default_proxy_host_is_loopback():
    assert Deployment.proxy_host == "127.0.0.1"


def test_process_place_file_is_readable_by_path_and_confined(tmp_path):
    dep = ProcessDeployment(load_manifest(FAKE), {r: {"FD_TOKEN": "t"} for r in ROLES})
    try:
        path = dep.place_file("collector", "tls/service.key", b"KEY", mode=0o400)
        p = Path(path)
        assert p.is_absolute() and p.read_bytes() == b"KEY"
        assert stat.S_IMODE(p.stat().st_mode) == 0o400
        again = dep.place_file("collector", "tls/service.key", b"KEY2", mode=0o400)
        assert again == path and p.read_bytes() == b"KEY2"
        assert dep.place_file("analyzer", "tls/service.key", b"K") != path
        with pytest.raises(ValueError):
            dep.place_file("collector", "../../escape", b"x")
    finally:
        dep.close()
    assert not Path(path).exists()


def test_pki_names_the_extra_hosts(tmp_path):
    from cryptography import x509
    from graders.checks.lifecycle import make_pki
    pki = make_pki(tmp_path, hosts=("172.31.0.1", "collector", "127.0.0.1"))
    cert = x509.load_pem_x509_certificate(pki["service.pem"].read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = san.get_values_for_type(x509.IPAddress)
    assert ips == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("172.31.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "collector"]


def test_topology_with_process_driver_binds_loopback_only():
    from graders.topology import Topology
    topo = Topology.up(load_manifest(FAKE), ProcessDriver(), seed=5, token="tok-h11",
                       start=False)
    try:
        for proxy in topo.agent_proxy.values():
            assert proxy.addresses == [proxy.address] and proxy.address[0] == "127.0.0.1"
        topo.start_all(env={"orchestrator": {"FD_WORKERS": "3"}})
        env = json.loads(topo.deployment.read_memory("orchestrator", "env.json"))
        assert env["FD_WORKERS"] == "3" and topo.settings["FD_WORKERS"] == "3"
        with Connection(*topo.client_proxy.address, timeout=5.0) as c:
            assert c.request(make_request("hello", {}, token="tok-h11"),
                             timeout=5.0)["type"] == "hello_ok"
        # a restart keeps the start environment
        topo.deployment.restart("orchestrator")
        env = json.loads(topo.deployment.read_memory("orchestrator", "env.json"))
        assert env["FD_WORKERS"] == "3"
    finally:
        report = topo.close()
    assert report.ok, report


# --------------------------------------------------------------------------- engine

from tests.docker_engine import require_engine as _require_engine  # noqa: E402


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_docker_grade_of_the_reference_is_full_marks_and_leaves_nothing():
    _require_engine()
    from graders.checks.registry import all_checks
    from graders.drivers import docker as dk
    from graders.harness import Progress, run_checks

    client = dk.connect()
    base = dk.ensure_base_image(client)
    run_ids: list[str] = []

    class RecordingDriver(dk.DockerDriver):
        def deploy(self, submission, *, base_env):
            dep = super().deploy(submission, base_env=base_env)
            run_ids.append(dep.run_id)
            # the agent proxies must be reachable from the containers: the grader's
            # address on the deployment's isolated network (docs/DOCKER.md §4)
            ipaddress.ip_address(dep.proxy_host)
            assert dep.proxy_host != "127.0.0.1"
            assert dep.address_plan is not None and dep.proxy_host == dep.address_plan.grader
            return dep

    # The grader in a network namespace of its own, as `faultdrill grade` runs it, so the
    # deployments get the isolated network (tests/test_docker_network.py tests that).
    from graders.drivers.docker_network import grader_namespace
    driver = RecordingDriver(base_image=base, isolate_network=True)
    out = io.StringIO()
    # Checks that need the process driver (strace beside the service) are not run under
    # --driver docker, exactly as `faultdrill grade --driver docker` leaves them out.
    from graders.checks.registry import runs_under
    specs = [c for c in all_checks() if runs_under(c, "docker")]
    print(f"[docker-grade] seed {SEED} (replay: faultdrill grade reference_impl "
          f"--driver docker --seed {SEED})")
    t0 = time.monotonic()
    try:
        with grader_namespace():
            result = run_checks(specs, submission=load_manifest(REFERENCE), driver=driver,
                                seed=SEED, progress=Progress(stream=out), driver_name="docker")
    finally:
        elapsed = time.monotonic() - t0
        built = list(driver.built)
        registered = driver in dk._DRIVERS
        cleanup = driver.close()
    bad = [(v.check_id, v.status, v.message) for v in result.verdicts if v.status != "pass"]
    assert not bad, "\n".join(map(str, bad)) + "\n" + out.getvalue()[-6000:]
    assert len(result.verdicts) == len(specs) == len([c for c in all_checks() if runs_under(c, "docker")])
    assert result.cleanup == [], result.cleanup
    assert elapsed < GRADE_BUDGET_S, f"docker grade took {elapsed:.1f} s"
    print(f"[docker-grade] {len(result.verdicts)} passed in {elapsed:.1f} s; "
          f"deployments {run_ids}")
    # shared deployment + the two TLS deployments (at least), each with its own run id
    assert len(run_ids) >= 3
    assert cleanup.ok, cleanup
    if built:
        # a driver that built an image stays registered for the atexit sweep until closed
        assert registered and driver not in dk._DRIVERS
    try:
        for run_id in run_ids:
            f = {"label": [f"{dk.LABEL}=1", f"{dk.RUN_LABEL}={run_id}"]}
            left = {"containers": [c.name for c in client.containers.list(all=True, filters=f)],
                    "networks": [n.name for n in client.networks.list(filters=f)],
                    "volumes": [v.name for v in client.volumes.list(filters=f)],
                    "images": [i.id for i in client.images.list(all=True, filters=f)]}
            assert not any(left.values()), (run_id, left)
        from docker.errors import ImageNotFound
        for image_id in built:
            with pytest.raises(ImageNotFound):
                client.images.get(image_id)
    finally:
        client.close()
