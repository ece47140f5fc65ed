"""graders/drivers/docker_network.py: the Docker driver gives the process sandbox's
network guarantees (issue 10).

First the pure plan (subnet choice, addresses, names, the iproute2 steps), then the
plumbing on real namespaces without Docker (a bridge the test makes stands in for the
engine's), then the refusal and the report banner, then, on a real engine, from inside a
running service container with its own python3:

(a) a listener the test opens on the host at 0.0.0.0 is not reachable at any host
    address (the bridge's former gateway, every other interface's address);
(b) an "outside" network (a namespace the test creates, routed from the host, as the
    internet would be) is not reachable;
(c) a second concurrent deployment's containers and proxies are not reachable;
(d) the grader's proxies are reachable (and tests/test_docker_grade.py grades the
    reference to full marks this way);
and a grader SIGKILLed mid-grade leaves the network isolated, and `faultdrill clean`
removes everything, the veth pair included.

Every engine test fails on the old driver (a plain bridge network): run them with
FD_TEST_DOCKER_NETWORK=bridge to see it (that is `--unsafe-no-sandbox`'s network).
Engine tests are skipped only when no Docker engine can run here; with
FAULTDRILL_REQUIRE_DOCKER=1 (CI) a missing engine is a failure.
"""
from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from graders.drivers import docker_network as dnet

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "reference_impl"
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0 or not dnet.shutil.which("ip"),
                               reason="network namespaces and veth pairs need root and iproute2")
LEGACY = os.environ.get("FD_TEST_DOCKER_NETWORK") == "bridge"


# --------------------------------------------------------------------------- pure plan

def test_names_fit_linux_interface_names_and_refuse_odd_run_ids():
    n = dnet.names_for("0a1b2c3d")
    assert (n.bridge, n.host_link, n.grader_link) == ("fdbr-0a1b2c3d", "fdh-0a1b2c3d", "fdg-0a1b2c3d")
    assert all(len(x) <= 15 for x in (n.bridge, n.host_link, n.grader_link))
    assert dnet.LINK_RE.match(n.host_link) and not dnet.LINK_RE.match(n.grader_link)
    for bad in ("", "0a1b2c3", "0A1B2C3D", "0a1b2c3d0", "../x1234"):
        with pytest.raises(ValueError):
            dnet.names_for(bad)


nets = st.builds(lambda a, p: ipaddress.ip_network((a, p), strict=False),
                 st.integers(0, 2 ** 32 - 1), st.integers(8, 32))


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2 ** 32), taken=st.lists(nets, max_size=12))
def test_chosen_subnet_is_a_free_slash24_of_the_pool(seed, taken):
    try:
        net = dnet.choose_subnet(random.Random(seed), taken)
    except dnet.NetworkIsolationError:
        # only when the taken networks cover the whole pool
        assert any(t.supernet_of(dnet.SUBNET_POOL) or t == dnet.SUBNET_POOL for t in taken)
        return
    assert net.prefixlen == 24 and net.subnet_of(dnet.SUBNET_POOL)
    assert not any(net.overlaps(t) for t in taken)


def test_a_crowded_pool_still_yields_its_last_free_subnet_and_a_full_one_refuses():
    pool = ipaddress.ip_network("10.9.0.0/22")          # four /24s
    taken = [ipaddress.ip_network(f"10.9.{i}.0/24") for i in (0, 1, 3)]
    assert dnet.choose_subnet(random.Random(1), taken, pool=pool, tries=1) == \
        ipaddress.ip_network("10.9.2.0/24")
    with pytest.raises(dnet.NetworkIsolationError, match="no free"):
        dnet.choose_subnet(random.Random(1), taken + [ipaddress.ip_network("10.9.2.0/24")], pool=pool)
    # IPv6 networks and host routes given as strings are understood, not crashed on
    assert dnet.choose_subnet(random.Random(2), ["fd00::/8", "10.0.0.0/9"]).subnet_of(
        ipaddress.ip_network("10.128.0.0/9"))


def test_address_plan_separates_gateway_grader_and_containers():
    plan = dnet.plan_addresses("10.77.3.0/24")
    assert plan.gateway == "10.77.3.1" and plan.grader == "10.77.3.254"
    assert plan.grader_cidr == "10.77.3.254/24"
    addrs = list(plan.containers.values())
    assert sorted(plan.containers) == sorted(dnet.ROLE_HOSTS)
    assert len(set(addrs + [plan.gateway, plan.grader])) == len(addrs) + 2
    assert all(ipaddress.ip_address(a) in plan.subnet for a in addrs)
    ipam = dnet.docker_ipam(plan)["Config"][0]
    assert ipam == {"Subnet": "10.77.3.0/24", "Gateway": "10.77.3.1",
                    "AuxiliaryAddresses": {"grader": "10.77.3.254"}}
    with pytest.raises(ValueError):
        dnet.plan_addresses("10.77.3.0/25")


def test_plumbing_takes_the_host_off_the_network_before_joining_the_grader():
    names = dnet.names_for("0badcafe")
    plan = dnet.plan_addresses("10.1.2.0/24")
    steps = dnet.plumbing_steps(names, plan, engine_ns_path="/proc/self/fd/9")
    argvs = [" ".join(s.argv) for s in steps]
    assert argvs[0] == "ip link add fdg-0badcafe type veth peer name fdh-0badcafe"
    move = argvs.index("ip link set fdh-0badcafe netns /proc/self/fd/9")
    engine = [i for i, s in enumerate(steps) if s.side == "engine"]
    assert engine and min(engine) > move           # the host end is there before it is used
    # on the engine's side only the bridge and our own host end are ever touched
    for i in engine:
        assert set(steps[i].argv) & {names.bridge, names.host_link}
        assert names.grader_link not in steps[i].argv
    flush4 = argvs.index("ip -4 addr flush dev fdbr-0badcafe")
    flush6 = argvs.index("ip -6 addr flush dev fdbr-0badcafe")
    port = argvs.index("ip link set fdh-0badcafe master fdbr-0badcafe up")
    addr = argvs.index("ip addr add 10.1.2.254/24 dev fdg-0badcafe")
    assert max(flush4, flush6) < port < addr       # no moment with both the host and the grader on it
    assert argvs.index("ip link set fdh-0badcafe addrgenmode none") < port
    assert argvs.index("ip link set fdbr-0badcafe addrgenmode none") < flush6
    assert [s.side for s in dnet.teardown_steps(names)] == ["engine", "grader"]
    assert all(s.tolerate for s in dnet.teardown_steps(names))


def test_isolation_preconditions_say_what_is_missing(monkeypatch):
    import importlib
    probe = importlib.import_module("graders.sandbox.probe")   # the package re-exports a function of that name
    assert "not a local unix socket" in dnet.isolation_unavailable(docker_host="tcp://10.0.0.5:2375")
    monkeypatch.setattr(probe, "host_mode", lambda: "user")
    assert "needs root" in dnet.isolation_unavailable(docker_host="unix:///var/run/docker.sock")
    monkeypatch.setattr(probe, "host_mode", lambda: "root")
    monkeypatch.setattr(dnet.shutil, "which", lambda tool: None if tool == "ip" else "/usr/bin/" + tool)
    assert "apt-get install iproute2" in dnet.isolation_unavailable(docker_host="unix:///x.sock")
    monkeypatch.setattr(dnet.shutil, "which", lambda tool: "/usr/bin/" + tool)
    assert dnet.isolation_unavailable(docker_host="unix:///x.sock") is None


# --------------------------------------------------------------------------- refusal, banner

class _Args:
    def __init__(self, **kw):
        self.driver, self.unsafe_no_sandbox = "docker", False
        self.__dict__.update(kw)


def test_docker_grade_refuses_with_one_line_and_exit_3_where_isolation_is_impossible(monkeypatch, capsys):
    from graders.sandbox import entry
    monkeypatch.setattr(dnet, "isolation_unavailable", lambda **kw: "WHY-NOT-HERE")
    monkeypatch.delenv("FAULTDRILL_SANDBOX", raising=False)
    assert entry.prepare_command(_Args(), "grade") == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "WHY-NOT-HERE" in err[0] and "--unsafe-no-sandbox" in err[0]
    assert err[0].startswith("faultdrill grade: cannot isolate the Docker containers' network here")
    # the unsafe flag goes on (unisolated), and says so in every report (below)
    assert entry.prepare_command(_Args(unsafe_no_sandbox=True), "grade") is None
    assert capsys.readouterr().err == ""


def test_unisolated_docker_grades_carry_the_unsandboxed_banner_naming_the_network(monkeypatch):
    from graders.drivers import get_driver
    from graders.report.model import banners, unsandboxed
    monkeypatch.delenv("FAULTDRILL_SANDBOX", raising=False)
    unsafe = get_driver("docker", sandbox=False)
    assert unsafe.isolate_network is False
    desc = unsafe.sandbox_description()
    assert unsandboxed({"sandbox": desc})
    text = dict(banners({"sandbox": desc}))["unsandboxed"]
    assert "network was not isolated" in text and "--unsafe-no-sandbox" in text
    # the default isolates, and in-process outside a grader namespace says it did not
    default = get_driver("docker")
    assert default.isolate_network is None
    assert not unsandboxed({"sandbox": default.sandbox_description()})
    assert "not isolated" in default.sandbox_description()["network"]
    with pytest.raises(dnet.NetworkIsolationError, match="namespace of its own"):
        type(default)(isolate_network=True).engine_namespace()


# --------------------------------------------------------------------------- real namespaces

_libc = ctypes.CDLL(None, use_errno=True)


def _in_thread(fn, *, new_ns: bool = False, ns_fd: int | None = None):
    """fn() in a fresh thread, in a new network namespace or in `ns_fd`'s."""
    box: dict = {}

    def body():
        try:
            if new_ns:
                assert _libc.unshare(dnet.CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
            if ns_fd is not None:
                assert _libc.setns(ns_fd, dnet.CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc
    t = threading.Thread(target=body)
    t.start()
    t.join(60)
    assert not t.is_alive()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _reach(host: str, port: int, timeout: float = 2.0) -> str:
    with socket.socket() as s:
        s.settimeout(timeout)
        try:
            s.connect((host, port))
            return "connected"
        except OSError as exc:
            return f"not reached: {exc}"


def _ip(ns_fd: int, *args) -> list:
    out = subprocess.run(["nsenter", f"--net=/proc/self/fd/{ns_fd}", "--", "ip", "-j", *args],
                         capture_output=True, text=True, timeout=10, pass_fds=(ns_fd,), check=True)
    return json.loads(out.stdout or "[]")


def _addresses(ns_fd: int, dev: str) -> list[str]:
    return [a["local"] for link in _ip(ns_fd, "addr", "show", "dev", dev) for a in link.get("addr_info", [])]


@ROOT_ONLY
def test_grader_namespace_moves_this_thread_and_comes_back():
    before = os.readlink("/proc/thread-self/ns/net")
    assert dnet.engine_namespace() is None
    with dnet.grader_namespace():
        inside = os.readlink("/proc/thread-self/ns/net")
        assert inside != before
        assert os.readlink(f"/proc/self/fd/{dnet.engine_namespace()}") == before
        # loopback is up, nothing else exists
        links = [link["ifname"] for link in json.loads(subprocess.run(
            ["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout)]
        assert links == ["lo"]
        with socket.create_server(("127.0.0.1", 0)) as srv:
            socket.create_connection(srv.getsockname(), timeout=2).close()
        with pytest.raises(RuntimeError, match="already active"):
            with dnet.grader_namespace():
                pass
    assert os.readlink("/proc/thread-self/ns/net") == before
    assert dnet.engine_namespace() is None
    with pytest.raises(dnet.NetworkIsolationError, match="engine's network namespace"):
        fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            dnet.Namespaces(fd)
        finally:
            os.close(fd)


@ROOT_ONLY
def test_plumbing_on_real_namespaces_joins_the_grader_and_leaves_the_host_no_address():
    """A bridge with a gateway address in an 'engine' namespace the test makes (what
    Docker creates) with a 'container' namespace on it, then the driver's steps from a
    'grader' namespace: the bridge loses every address, the grader's end holds the
    reserved one, the container reaches the grader's listener and not the engine's
    (listening on 0.0.0.0), and teardown deletes the pair."""
    run = secrets.token_hex(4)
    names = dnet.names_for(run)
    plan = dnet.plan_addresses("10.123.45.0/24")
    own_ns = lambda: os.open("/proc/thread-self/ns/net", os.O_RDONLY)  # noqa: E731
    engine_fd = _in_thread(own_ns, new_ns=True)
    box_fd = _in_thread(own_ns, new_ns=True)
    box_addr = plan.containers["collector"]
    try:
        def sh(*argvs):
            for argv in argvs:
                subprocess.run(argv, check=True, capture_output=True, timeout=10, pass_fds=(box_fd,))
        _in_thread(lambda: sh(["ip", "link", "set", "lo", "up"],
                              ["ip", "link", "add", names.bridge, "type", "bridge"],
                              ["ip", "addr", "add", f"{plan.gateway}/24", "dev", names.bridge],
                              ["ip", "link", "set", names.bridge, "up"],
                              ["ip", "link", "add", f"fdc-{run}", "type", "veth", "peer", "name", f"fdp-{run}"],
                              ["ip", "link", "set", f"fdp-{run}", "master", names.bridge, "up"],
                              ["ip", "link", "set", f"fdc-{run}", "netns", f"/proc/self/fd/{box_fd}"]),
                   ns_fd=engine_fd)
        _in_thread(lambda: sh(["ip", "addr", "add", f"{box_addr}/24", "dev", f"fdc-{run}"],
                              ["ip", "link", "set", f"fdc-{run}", "up"],
                              ["ip", "route", "add", "default", "via", plan.gateway]), ns_fd=box_fd)
        assert plan.gateway in _addresses(engine_fd, names.bridge)
        host_srv = _in_thread(lambda: socket.create_server(("0.0.0.0", 0)), ns_fd=engine_fd)
        # what Docker's plain bridge gives: the host's 0.0.0.0 listener at the gateway
        assert _in_thread(lambda: _reach(plan.gateway, host_srv.getsockname()[1]),
                          ns_fd=box_fd) == "connected"

        def plumb():
            ns = dnet.Namespaces(engine_fd)
            dnet.run_steps(dnet.plumbing_steps(names, plan, engine_ns_path=f"/proc/self/fd/{ns.engine}"), ns)
            return ns, socket.create_server((plan.grader, 0))
        ns, grader_srv = _in_thread(plumb, new_ns=True)
        try:
            assert _addresses(engine_fd, names.bridge) == []          # no v4, no v6
            port = _ip(engine_fd, "link", "show", "dev", names.host_link)[0]
            assert port.get("master") == names.bridge and "UP" in port["flags"]
            assert _addresses(ns.grader, names.grader_link) == [plan.grader]
            assert [link["ifname"] for link in _ip(ns.grader, "link")] == ["lo", names.grader_link]
            assert _in_thread(lambda: _reach(plan.grader, grader_srv.getsockname()[1]),
                              ns_fd=box_fd) == "connected"
            assert _in_thread(lambda: _reach(plan.gateway, host_srv.getsockname()[1]),
                              ns_fd=box_fd) != "connected"
        finally:
            grader_srv.close()
            host_srv.close()
            notes = dnet.run_steps(dnet.teardown_steps(names), ns)
            assert notes and "Cannot find device" in notes[0]     # the grader end went with the pair
            assert names.host_link not in [link["ifname"] for link in _ip(engine_fd, "link")]
            assert names.grader_link not in [link["ifname"] for link in _ip(ns.grader, "link")]
            ns.close()
    finally:
        os.close(engine_fd)
        os.close(box_fd)


# --------------------------------------------------------------------------- on a real engine

PROBE = r"""
import json, socket, sys, threading
targets = json.loads(sys.argv[1])
out = {}
def one(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(3.0)
    try:
        s.connect((host, port))
        out[f"{host}:{port}"] = "connected"
    except OSError as exc:
        out[f"{host}:{port}"] = f"not reached: {exc}"
    finally:
        s.close()
ts = [threading.Thread(target=one, args=(h, p)) for h, p in targets]
[t.start() for t in ts]
[t.join(10) for t in ts]
caps = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]
print(json.dumps({"results": out, "cap_eff": caps}))
"""


from tests.docker_engine import require_engine as _require_engine  # noqa: E402


def _grader_ns():
    """Where a grade's grader lives: its own namespace (what `faultdrill grade` enters);
    with FD_TEST_DOCKER_NETWORK=bridge the host's, as the old driver had it."""
    return contextlib.nullcontext() if LEGACY else dnet.grader_namespace()


def _host_ipv4() -> list[str]:
    out = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True, check=True, timeout=10)
    return [a["local"] for link in json.loads(out.stdout) for a in link.get("addr_info", [])
            if not a["local"].startswith("127.")]


class _Outside:
    """'The internet': a network namespace routed from the host (a veth pair on
    203.0.113.0/30, TEST-NET-3), with a listener on 0.0.0.0. A plain bridge reaches it
    through the engine's NAT, as it would reach any address outside."""

    def __init__(self):
        r = secrets.token_hex(3)
        self.host_if, self.peer_if = f"fdo-{r}", f"fdq-{r}"
        self.host_addr, self.addr = "203.0.113.1", "203.0.113.2"
        self.fd = _in_thread(lambda: os.open("/proc/thread-self/ns/net", os.O_RDONLY), new_ns=True)
        for argv in (["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if],
                     ["ip", "link", "set", self.peer_if, "netns", f"/proc/self/fd/{self.fd}"],
                     ["ip", "addr", "add", f"{self.host_addr}/30", "dev", self.host_if],
                     ["ip", "link", "set", self.host_if, "up"]):
            subprocess.run(argv, check=True, capture_output=True, timeout=10, pass_fds=(self.fd,))

        def inside():
            for argv in (["ip", "link", "set", "lo", "up"],
                         ["ip", "addr", "add", f"{self.addr}/30", "dev", self.peer_if],
                         ["ip", "link", "set", self.peer_if, "up"],
                         ["ip", "route", "add", "default", "via", self.host_addr]):
                subprocess.run(argv, check=True, capture_output=True, timeout=10)
            return socket.create_server(("0.0.0.0", 0), backlog=64)
        self.server = _in_thread(inside, ns_fd=self.fd)
        self.port = self.server.getsockname()[1]
        # it really is reachable from the host: what a container must not get to
        assert _reach(self.addr, self.port) == "connected"

    def close(self):
        self.server.close()
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=10)
        os.close(self.fd)


class _Grade:
    """One grade's deployment: the reference's collector running, and a fault proxy in
    front of it listening where containers reach the grader (proxy_host)."""

    def __init__(self, driver):
        from graders.faults.proxy import FaultProxy
        from graders.manifest import ROLES, load_manifest
        self.proxy = None
        with _grader_ns():
            self.dep = driver.deploy(load_manifest(REFERENCE),
                                     base_env={r: {"FD_TOKEN": "net-test-token"} for r in ROLES})
            try:
                self.dep.start("collector", timeout=30)
                ep = self.dep.endpoint("collector")
                self.proxy = FaultProxy("collector", (ep.host, ep.port), seed=1).start()
                self.proxy.listen_also(self.dep.proxy_host)
            except BaseException:
                self.close()
                raise
        self.container = self.dep.client.containers.get(self.dep.container_name("collector"))
        self.container.reload()

    def container_addresses(self) -> list[str]:
        nets = self.container.attrs["NetworkSettings"]["Networks"]
        return [n["IPAddress"] for n in nets.values() if n.get("IPAddress")]

    def gateway(self) -> str:
        return self.dep._network.attrs["IPAM"]["Config"][0]["Gateway"] if LEGACY else \
            self.dep.address_plan.gateway

    def probe(self, targets) -> dict:
        rc, out = self.container.exec_run(["python3", "-c", PROBE, json.dumps(targets)])
        assert rc == 0, out
        return json.loads(out.decode().strip().splitlines()[-1])

    def close(self):
        if self.proxy is not None:
            self.proxy.close()
        report = self.dep.close()
        assert report.ok, report


@pytest.fixture(scope="module")
def grades():
    """Two concurrent grades (each with its own grader namespace), and the outside."""
    _require_engine()
    if dnet.isolation_unavailable() is not None and not LEGACY:
        pytest.fail(f"the engine runs here but isolation cannot: {dnet.isolation_unavailable()}")
    from graders.drivers.docker import DockerDriver, connect, ensure_base_image
    client = connect()
    base = ensure_base_image(client)
    client.close()
    driver = DockerDriver(base_image=base, isolate_network=not LEGACY)
    made: list = []
    outside = None
    try:
        made.append(_Grade(driver))
        made.append(_Grade(driver))
        outside = _Outside()
        yield made[0], made[1], outside
    finally:
        if outside is not None:
            outside.close()
        for g in made:
            g.close()
        driver.close()


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_a_containers_cannot_reach_a_host_listener_at_any_host_address(grades):
    a, _b, _out = grades
    with socket.create_server(("0.0.0.0", 0)) as listener:
        port = listener.getsockname()[1]
        addresses = sorted(set(_host_ipv4() + [a.gateway()]))
        assert a.gateway() in addresses and len(addresses) >= 2
        got = a.probe([(h, port) for h in addresses])
    reached = {k: v for k, v in got["results"].items() if v == "connected"}
    assert not reached, f"a container reached the host's 0.0.0.0 listener at {sorted(reached)}"
    assert len(got["results"]) == len(addresses)


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_b_containers_cannot_reach_outside_networks(grades):
    a, _b, outside = grades
    got = a.probe([(outside.addr, outside.port)])
    assert got["results"] == {f"{outside.addr}:{outside.port}": got["results"][f"{outside.addr}:{outside.port}"]}
    assert got["results"][f"{outside.addr}:{outside.port}"] != "connected", \
        "a container reached a network outside the host"


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_c_containers_cannot_reach_another_grades_containers_or_proxies(grades):
    a, b, _out = grades
    targets = [(addr, port) for addr in b.container_addresses() for port in (7001, 7101)]
    targets += [(host, port) for host, port in b.proxy.addresses if host != "127.0.0.1"]
    ep = b.dep.endpoint("collector")
    if ep.host != "127.0.0.1":
        targets.append((ep.host, ep.port))
    got = a.probe(targets)
    reached = {k for k, v in got["results"].items() if v == "connected"}
    assert not reached, f"grade A's container reached grade B at {sorted(reached)}"
    # ...and the other way round
    targets = [(host, port) for host, port in a.proxy.addresses if host != "127.0.0.1"]
    assert targets and not {k for k, v in b.probe(targets)["results"].items() if v == "connected"}


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_d_containers_reach_their_graders_proxies_only_and_hold_no_capabilities(grades):
    a, _b, _out = grades
    host, port = a.proxy.addresses[-1]
    assert host == a.dep.proxy_host != "127.0.0.1"
    got = a.probe([(host, port)])
    assert got["results"] == {f"{host}:{port}": "connected"}
    assert int(got["cap_eff"], 16) == 0          # no NET_RAW, no NET_ADMIN: no forged frames
    hc = a.container.attrs["HostConfig"]
    assert hc["CapDrop"] == ["ALL"] and not hc.get("CapAdd")
    # the isolated shape: an internal network, nothing published, no host address on it
    assert not hc.get("PortBindings"), hc.get("PortBindings")
    net = a.dep._network
    net.reload()
    assert net.attrs["Internal"] is True
    bridge = net.attrs["Options"].get("com.docker.network.bridge.name")
    out = subprocess.run(["ip", "-j", "addr", "show", "dev", bridge], capture_output=True,
                         text=True, check=True, timeout=10)
    assert [x["local"] for link in json.loads(out.stdout) for x in link.get("addr_info", [])] == []


KILLED_GRADER = r"""
import json, socket, sys, time
from graders.drivers import docker_network as dnet
from graders.drivers.docker import DockerDriver
from graders.manifest import ROLES, load_manifest
legacy = sys.argv[3] == "bridge"
import contextlib
with (contextlib.nullcontext() if legacy else dnet.grader_namespace()):
    driver = DockerDriver(base_image=sys.argv[2], isolate_network=not legacy)
    dep = driver.deploy(load_manifest(sys.argv[1]), base_env={r: {"FD_TOKEN": "t-kill"} for r in ROLES})
    dep.start("collector", timeout=30)
    ep = dep.endpoint("collector")
    conn = socket.create_connection((ep.host, ep.port), timeout=5)   # a grader mid-conversation
    print(json.dumps({"run": dep.run_id, "bridge": dep.link_names.bridge,
                      "network": dep.network_name}), flush=True)
    time.sleep(600)
"""


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_a_sigkilled_grader_leaves_the_network_isolated_and_clean_removes_everything(tmp_path):
    _require_engine()
    from graders.drivers.docker import LABEL, RUN_LABEL, connect, ensure_base_image
    client = connect()
    base = ensure_base_image(client)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_GRADER, str(REFERENCE), base,
                             "bridge" if LEGACY else "isolated"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT))
    info = None
    try:
        box: dict = {}
        reader = threading.Thread(target=lambda: box.update(line=proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(180)
        assert box.get("line"), f"the grader did not deploy: {proc.stderr.read() if proc.poll() is not None else 'still starting'}"
        info = json.loads(box["line"])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    try:
        # the orphaned containers are still isolated: the host holds no address on their bridge
        out = subprocess.run(["ip", "-j", "addr", "show", "dev", info["bridge"] if not LEGACY else
                              "br-" + client.networks.get(info["network"]).id[:12]],
                             capture_output=True, text=True, check=True, timeout=10)
        assert [x["local"] for link in json.loads(out.stdout) for x in link.get("addr_info", [])] == []
    finally:
        clean = subprocess.run([sys.executable, "-m", "graders.cli", "clean", "--run", info["run"]],
                               capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    f = {"label": [f"{LABEL}=1", f"{RUN_LABEL}={info['run']}"]}
    left = {"containers": [c.name for c in client.containers.list(all=True, filters=f)],
            "networks": [n.name for n in client.networks.list(filters=f)],
            "volumes": [v.name for v in client.volumes.list(filters=f)]}
    client.close()
    assert not any(left.values()), left
    links = [link["ifname"] for link in json.loads(subprocess.run(
        ["ip", "-j", "link"], capture_output=True, text=True, check=True, timeout=10).stdout)]
    assert f"fdh-{info['run']}" not in links and info["bridge"] not in links, links


@ROOT_ONLY
def test_faultdrill_grade_docker_refuses_a_grader_that_is_not_root(tmp_path):
    """The real command, as an ordinary user: one line, exit 3, nothing graded."""
    os.chmod(tmp_path, 0o777)
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-m", "graders.cli", "grade", str(REFERENCE),
                           "--driver", "docker", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120, cwd=str(ROOT),
                          env=dict(os.environ, HOME=str(tmp_path)))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert len(lines) == 1 and "cannot isolate the Docker containers' network here" in lines[0], lines
    assert "needs root" in lines[0] and "--unsafe-no-sandbox" in lines[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_faultdrill_grade_docker_grades_on_the_isolated_network_and_says_so(tmp_path):
    """`faultdrill grade --driver docker` itself (the re-exec into the grade's namespace,
    the engine's namespace carried across it): a TLS check (the grader dials container
    addresses, the orchestrator the proxies) and a contract check pass, and the grade
    metadata says the network was isolated, with no UNSANDBOXED banner."""
    _require_engine()
    argv = [sys.executable, "-m", "graders.cli", "grade", str(REFERENCE), "--driver", "docker",
            "--seed", "20261201", "--only", "contract.hello_v2,tls.server_tls",
            "--out", str(tmp_path / "o"), "--quiet"]
    if LEGACY:
        argv.append("--unsafe-no-sandbox")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=540, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (out,) = [p for p in tmp_path.iterdir() if p.name.startswith("o-replay-")]
    meta = json.loads((out / "results.json").read_text())["extra_data"]
    assert meta["driver"] == "docker" and not meta["incomplete"]
    assert meta["sandbox"]["network"].startswith("isolated"), meta["sandbox"]
    assert "UNSANDBOXED" not in (out / "report.md").read_text()
