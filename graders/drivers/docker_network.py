"""The Docker driver's network isolation: each deployment's containers can reach only each
other and the grader's own network namespace, never the host, other grades or the world.

Why: the process driver runs every grade in a network namespace of its own with only
loopback, so grades never see each other or the host. A plain Docker bridge network does
not give that: the host holds the bridge's gateway address, so a container reaches every
host listener (on 0.0.0.0 or any host address, since Linux accepts a packet for any of
its addresses on any interface), the outside world through the engine's NAT, and another
grade's fault proxies at that grade's gateway. So, per deployment (docs/DOCKER.md §4):

1. an `internal` bridge network (no NAT, no route out) on a /24 the driver chooses
   (`choose_subnet`: random, never overlapping a Docker network or an address or route
   of the host), with a bridge name of its own and one address reserved for the grader
   (`aux_addresses`); containers get static addresses (`AddressPlan`);
2. a veth pair: one end (`fdg-<run>`) in the grader's own network namespace with the
   reserved address (the grader, its proxies, clients and fake agents live there), the
   other (`fdh-<run>`) a port of the deployment's bridge in the engine's namespace;
3. the gateway address (and every IPv6 address) removed from the bridge: the host has no
   address on that network at all, and containers have no capability to forge frames
   (`cap_drop ALL` drops NET_RAW and NET_ADMIN), so nothing but the bridge's members
   answers them.

The grader's namespace is the one `faultdrill grade` re-execs into
(graders/sandbox/netns.py); the engine's namespace is the one the command was started in,
kept open as a descriptor across that re-exec (`export_engine_namespace`, read back by
`engine_namespace`). In-process callers (tests) get the same with `grader_namespace()`.
When the grader dies its namespace goes, and the veth pair with it; `close()` and
`faultdrill clean` delete the host end explicitly (`remove_leftover_links`), because a
namespace can outlive its last process while the kernel finishes closing TCP connections.

The plan (subnet, addresses, names, the iproute2 argv) is pure and unit-tested; the I/O
(`run_steps`, the namespace descriptors) is at the edges. iproute2 (`ip`) and util-linux
(`nsenter`, `unshare`) do the work: both are on every Linux that runs a Docker engine.
"""
from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import random
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass, field

__all__ = [
    "ENGINE_NETNS_ENV", "SUBNET_POOL", "SUBNET_PREFIX", "GRADER_HOST", "GATEWAY_HOST",
    "ROLE_HOSTS", "NetworkIsolationError", "Names", "AddressPlan", "Step", "names_for",
    "choose_subnet", "plan_addresses", "docker_ipam", "plumbing_steps", "teardown_steps",
    "isolation_unavailable", "export_engine_namespace", "engine_namespace", "grader_namespace",
    "Namespaces", "run_steps", "host_networks", "leftover_links", "remove_leftover_links", "LINK_RE",
]

#: The variable carrying the descriptor of the engine's network namespace across the
#: re-exec into the grade's own namespace (a number: an inherited file descriptor).
ENGINE_NETNS_ENV = "FAULTDRILL_ENGINE_NETNS_FD"
#: Where deployment subnets are chosen: private space Docker's default pools
#: (172.17-31.x, 192.168.x) never use, one /24 per deployment.
SUBNET_POOL = ipaddress.ip_network("10.0.0.0/8")
SUBNET_PREFIX = 24
GATEWAY_HOST = 1          # the address Docker gives the bridge; removed at once
GRADER_HOST = 254         # reserved for the grader (aux_addresses), on its veth end
ROLE_HOSTS = {"orchestrator": 2, "collector": 3, "analyzer": 4, "reporter": 5}
STEP_TIMEOUT = 15.0       # seconds for one iproute2 command
#: Names of the host-side veth ends this module creates (`fdh-` + an 8-hex run id).
LINK_RE = re.compile(r"^fdh-[0-9a-f]{8}$")
CLONE_NEWNET = 0x40000000


class NetworkIsolationError(RuntimeError):
    """The deployment's network could not be isolated (a grader error, never the
    candidate's): the message says which step failed and why."""


# --------------------------------------------------------------------------- pure plan

@dataclass(frozen=True)
class Names:
    bridge: str        # the Linux bridge Docker creates for the network
    host_link: str     # the veth end in the engine's namespace (a bridge port)
    grader_link: str   # the veth end in the grader's namespace


def names_for(run_id: str) -> Names:
    """Interface names for one deployment: at most 15 characters (IFNAMSIZ - 1)."""
    if not re.fullmatch(r"[0-9a-f]{8}", run_id):
        raise ValueError(f"run id {run_id!r} must be 8 lowercase hex digits")
    return Names(bridge=f"fdbr-{run_id}", host_link=f"fdh-{run_id}", grader_link=f"fdg-{run_id}")


def choose_subnet(rng: random.Random, taken, *, pool=SUBNET_POOL,
                  prefix: int = SUBNET_PREFIX, tries: int = 256) -> ipaddress.IPv4Network:
    """A random /24 of `pool` that overlaps none of `taken` (networks in use: Docker's,
    the host's addresses and routes). Randomness needs no seed here (it decides no
    verdict); uniqueness is what matters, and Docker refuses an overlap we did not see
    (a concurrent grader), so the caller retries with that subnet added to `taken`."""
    taken = [ipaddress.ip_network(t, strict=False) for t in taken]
    taken = [t for t in taken if t.version == 4]
    count = 2 ** (prefix - pool.prefixlen)
    step = 2 ** (32 - prefix)
    base = int(pool.network_address)

    def nth(i: int) -> ipaddress.IPv4Network:
        return ipaddress.ip_network((base + i * step, prefix))

    def free(net) -> bool:
        return not any(net.overlaps(t) for t in taken)

    for _ in range(tries):
        net = nth(rng.randrange(count))
        if free(net):
            return net
    for i in range(count):      # a crowded pool: the first free one, if any
        if free(nth(i)):
            return nth(i)
    raise NetworkIsolationError(f"no free /{prefix} subnet left in {pool}")


@dataclass(frozen=True)
class AddressPlan:
    subnet: ipaddress.IPv4Network
    gateway: str                      # what Docker puts on the bridge (then removed)
    grader: str                       # the grader's veth end: proxy_host
    containers: dict = field(default_factory=dict)   # role -> static address

    @property
    def grader_cidr(self) -> str:
        return f"{self.grader}/{self.subnet.prefixlen}"


def plan_addresses(subnet, roles=tuple(ROLE_HOSTS)) -> AddressPlan:
    subnet = ipaddress.ip_network(subnet)
    if subnet.prefixlen > 24:
        raise ValueError(f"subnet {subnet} is too small")
    at = lambda n: str(subnet.network_address + n)  # noqa: E731
    return AddressPlan(subnet=subnet, gateway=at(GATEWAY_HOST), grader=at(GRADER_HOST),
                       containers={role: at(ROLE_HOSTS[role]) for role in roles})


def docker_ipam(plan: AddressPlan) -> dict:
    """The IPAM section of the network (as the engine API takes it): our subnet, the
    gateway Docker insists on, and the grader's address reserved."""
    return {"Driver": "default",
            "Config": [{"Subnet": str(plan.subnet), "Gateway": plan.gateway,
                        "AuxiliaryAddresses": {"grader": plan.grader}}]}


@dataclass(frozen=True)
class Step:
    side: str            # "grader" | "engine": which namespace the command runs in
    argv: tuple
    why: str
    tolerate: str = ""   # an error text that means "already done" (teardown)


def plumbing_steps(names: Names, plan: AddressPlan, *, engine_ns_path: str) -> list[Step]:
    """The iproute2 commands that join the grader's namespace to the deployment's bridge
    and take the host off it, in order. `engine_ns_path` names the engine's namespace
    for the one command that moves the host end there (`ip link set ... netns PATH`)."""
    g, h, br = names.grader_link, names.host_link, names.bridge
    return [
        Step("grader", ("ip", "link", "add", g, "type", "veth", "peer", "name", h),
             "create the veth pair"),
        # No IPv6 link-local address on either end: nothing for a container to reach
        # (set on the host end after the move: a namespace move resets it).
        Step("grader", ("ip", "link", "set", g, "addrgenmode", "none"), "no IPv6 on the grader end"),
        Step("grader", ("ip", "link", "set", h, "netns", engine_ns_path),
             "move the host end into the engine's namespace"),
        Step("engine", ("ip", "link", "set", h, "addrgenmode", "none"), "no IPv6 on the host end"),
        # The host must hold no address on the network: the gateway goes before any
        # container exists, and so do the bridge's IPv6 addresses (link-local included).
        Step("engine", ("ip", "link", "set", br, "addrgenmode", "none"), "no new IPv6 on the bridge"),
        Step("engine", ("ip", "-4", "addr", "flush", "dev", br), "remove the gateway address"),
        Step("engine", ("ip", "-6", "addr", "flush", "dev", br), "remove the bridge's IPv6 addresses"),
        Step("engine", ("ip", "link", "set", h, "master", br, "up"), "make the host end a bridge port"),
        Step("grader", ("ip", "addr", "add", plan.grader_cidr, "dev", g), "give the grader its address"),
        Step("grader", ("ip", "link", "set", g, "up"), "bring the grader end up"),
    ]


def teardown_steps(names: Names) -> list[Step]:
    """Deleting the host end deletes the pair (the grader end with it)."""
    return [Step("engine", ("ip", "link", "del", names.host_link), "delete the veth pair",
                 tolerate="Cannot find device"),
            # A plumbing that stopped before the move left both ends with the grader.
            Step("grader", ("ip", "link", "del", names.grader_link), "delete the grader's veth end",
                 tolerate="Cannot find device")]


# --------------------------------------------------------------------------- preconditions

def isolation_unavailable(*, docker_host: str | None = None) -> str | None:
    """None when this machine can isolate Docker deployments' networks, else why not (one
    clause): root of the initial user namespace (it must create interfaces in the
    engine's namespace), iproute2 and util-linux present, and a local engine on a unix
    socket (a remote engine's bridges are on another machine)."""
    from graders.sandbox.probe import host_mode
    host = docker_host if docker_host is not None else (
        os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return (f"the Docker engine is not a local unix socket (DOCKER_HOST={host}), so its "
                "networks cannot be joined to the grader's namespace")
    if host_mode() != "root":
        return "isolating the containers' network needs root (it creates interfaces in the host's network namespace)"
    for tool, package in (("ip", "iproute2"), ("nsenter", "util-linux"), ("unshare", "util-linux")):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian/Ubuntu: apt-get install {package})"
    return None


# --------------------------------------------------------------------------- namespaces

_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _ns_id(fd_or_path) -> str:
    return os.readlink(f"/proc/self/fd/{fd_or_path}" if isinstance(fd_or_path, int) else fd_or_path)


def export_engine_namespace() -> None:
    """Before `faultdrill grade` re-execs itself into its own namespace: keep the current
    (the engine's) network namespace open as an inheritable descriptor named in
    ENGINE_NETNS_ENV. Only for the Docker driver; `engine_namespace` takes it back."""
    fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    os.set_inheritable(fd, True)
    os.environ[ENGINE_NETNS_ENV] = str(fd)


_engine_lock = threading.Lock()
_engine_fd: int | None = None        # from the re-exec (process-wide)
_context_fd: int | None = None       # from grader_namespace() (in-process callers)


def engine_namespace() -> int | None:
    """A descriptor of the engine's network namespace when this process runs in a grader
    namespace of its own (else None): the inherited one (taken out of the environment
    and made non-inheritable on first use, so no child ever gets it), or the one
    `grader_namespace()` holds."""
    global _engine_fd
    with _engine_lock:
        if _context_fd is not None:
            return _context_fd
        raw = os.environ.pop(ENGINE_NETNS_ENV, None)
        if raw is not None and _engine_fd is None:
            try:
                fd = int(raw)
                if _ns_id(fd).startswith("net:") and _ns_id(fd) != _ns_id("/proc/thread-self/ns/net"):
                    os.set_inheritable(fd, False)
                    _engine_fd = fd
            except (ValueError, OSError):
                pass
        return _engine_fd


@contextlib.contextmanager
def grader_namespace():
    """For in-process callers (tests): move the calling thread (and every thread it
    starts from now on) into a new network namespace with loopback up, as `faultdrill
    grade` does for the whole process; Docker deployments made inside are isolated.
    On exit the thread returns to its namespace; sockets made inside stay in the new
    one until closed. Threads started before keep the old namespace."""
    global _context_fd
    libc = _c()
    with _engine_lock:
        if _context_fd is not None:
            raise RuntimeError("grader_namespace() is already active")
        back = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        if libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            os.close(back)
            raise NetworkIsolationError(f"unshare(CLONE_NEWNET) failed: {os.strerror(err)}")
        _context_fd = back
    try:
        from graders.sandbox.netns import _lo_up
        _lo_up()
        yield
    finally:
        with _engine_lock:
            _context_fd = None
        if libc.setns(back, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            os.close(back)
            raise NetworkIsolationError(f"setns back to the original namespace failed: {os.strerror(err)}")
        os.close(back)


class Namespaces:
    """The two namespaces one deployment's plumbing runs in, each held by a descriptor
    of its own (so a deployment can be closed from any thread, and neither namespace
    number can be reused while it is open)."""

    def __init__(self, engine_fd: int):
        self.engine = os.dup(engine_fd)
        self.grader = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        if _ns_id(self.engine) == _ns_id(self.grader):
            self.close()
            raise NetworkIsolationError("the grader runs in the engine's network namespace; "
                                        "it needs one of its own (faultdrill grade enters one)")

    def fd(self, side: str) -> int:
        return self.engine if side == "engine" else self.grader

    def close(self) -> None:
        for name in ("engine", "grader"):
            fd = getattr(self, name, None)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, None)


def run_steps(steps: list[Step], ns: Namespaces) -> list[str]:
    """Run each step in its namespace (`nsenter --net=/proc/self/fd/N`), in order; stop
    at the first failure with NetworkIsolationError. Returns tolerated errors."""
    notes = []
    fds = (ns.engine, ns.grader)
    for step in steps:
        argv = ["nsenter", f"--net=/proc/self/fd/{ns.fd(step.side)}", "--", *step.argv]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=STEP_TIMEOUT,
                                  stdin=subprocess.DEVNULL, pass_fds=fds)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NetworkIsolationError(f"could not {step.why} ({' '.join(step.argv)}): {exc}") from None
        if proc.returncode != 0:
            err = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            if step.tolerate and step.tolerate in err:
                notes.append(err)
                continue
            raise NetworkIsolationError(f"could not {step.why} ({' '.join(step.argv)}): {err}")
    return notes


def _ip_json(args: list[str], ns: Namespaces | None) -> list:
    argv = ["ip", "-j", *args]
    fds: tuple = ()
    if ns is not None:
        argv = ["nsenter", f"--net=/proc/self/fd/{ns.engine}", "--", *argv]
        fds = (ns.engine,)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=STEP_TIMEOUT,
                          stdin=subprocess.DEVNULL, pass_fds=fds)
    if proc.returncode != 0:
        raise NetworkIsolationError(f"`ip {' '.join(args)}` failed: {proc.stderr.strip()[-300:]}")
    return json.loads(proc.stdout or "[]")


def host_networks(ns: Namespaces) -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the engine's namespace has an address or a route in (a subnet
    chosen over one of these would shadow it on the host while Docker holds the
    gateway, or confuse the grader's own routes)."""
    out = []
    for link in _ip_json(["-4", "addr"], ns):
        for a in link.get("addr_info", []):
            out.append(ipaddress.ip_network(f"{a['local']}/{a.get('prefixlen', 32)}", strict=False))
    for route in _ip_json(["-4", "route", "show", "table", "all"], ns):
        dst = route.get("dst")
        if dst and dst != "default":
            try:
                out.append(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False))
            except ValueError:
                pass
    return out


def leftover_links(run_id: str | None = None) -> list[str]:
    """Host-side veth ends this module made (`fdh-<run>`, or only `run_id`'s) that exist in
    the current network namespace."""
    if shutil.which("ip") is None:
        return []
    try:
        proc = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True,
                              timeout=STEP_TIMEOUT, stdin=subprocess.DEVNULL)
        links = json.loads(proc.stdout or "[]") if proc.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return []
    return [name for name in (link.get("ifname", "") for link in links)
            if LINK_RE.match(name) and (not run_id or name == f"fdh-{run_id}")]


def remove_leftover_links(run_id: str | None = None) -> tuple[list[str], list[str]]:
    """Delete `leftover_links(run_id)`: what a grader left when its namespace outlived it
    (deleting the host end deletes the pair). (removed, errors)."""
    removed, errors = [], []
    for name in leftover_links(run_id):
        proc = subprocess.run(["ip", "link", "del", name], capture_output=True, text=True,
                              timeout=STEP_TIMEOUT, stdin=subprocess.DEVNULL)
        if proc.returncode == 0 or "Cannot find device" in proc.stderr:
            removed.append(name)
        else:
            errors.append(f"link {name}: {proc.stderr.strip()}")
    return removed, errors
