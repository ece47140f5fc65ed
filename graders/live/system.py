"""A live system: a submission running behind a fault proxy on every hop.

Why not `Topology.up` as is: `faultdrill up` must keep the ports people type (the
orchestrator at BASE, agents at BASE+1..3, HTTP side ports at BASE+100..103), and a drill
or `up` must be able to put faults on every hop. So here the *proxies* own the public TCP
ports - the client hop listens on BASE (in front of the orchestrator) and each agent hop
on BASE+i (in front of that agent) - while the services listen on free ports behind them;
the orchestrator reaches its agents through their hops. HTTP side ports are not proxied
(the dashboard, /metrics and health stay readable during any network fault, as an
operator's would). With no BASE every port is a free one (tests, drills).

The result is an ordinary `Topology` (checks' helpers work on it) plus the hop names
Toxiproxy users expect: each proxy is named after the service it fronts.
"""
from __future__ import annotations

import inspect

from ..drivers.process import ProcessDriver, allocate_ports, release_ports
from ..faults.proxy import FaultProxy
from ..manifest import ROLES, Submission
from ..topology import ADDR_VARS, AGENTS, Topology

__all__ = ["LiveSystem", "HOPS", "LIVE_SETTINGS", "port_plan", "make_driver"]

#: Hop name -> the role whose TCP port it fronts (client -> orchestrator, orchestrator -> agent).
HOPS = ("orchestrator", "collector", "analyzer", "reporter")

#: Settings for drills: short enough that symptoms show within seconds, long enough that a
#: healthy system never trips them. `up` passes none (the SPEC's defaults).
LIVE_SETTINGS = {
    "orchestrator": {"FD_ATTEMPT_TIMEOUT_MS": "800", "FD_TASK_DEADLINE_MS": "5000",
                     "FD_RETRY_BASE_MS": "100", "FD_RETRY_CAP_MS": "600",
                     "FD_RETRY_MAX_ATTEMPTS": "4", "FD_QUEUE_SIZE": "8", "FD_WORKERS": "4",
                     "FD_MAX_CONNECTIONS": "48", "FD_IDLE_TIMEOUT_MS": "20000",
                     "FD_SHUTDOWN_GRACE_MS": "2000", "FD_MEMORY_RETENTION": "200"},
    "collector": {"FD_MEMORY_RETENTION": "40", "FD_SHUTDOWN_GRACE_MS": "2000"},
    "analyzer": {"FD_MEMORY_RETENTION": "40", "FD_SHUTDOWN_GRACE_MS": "2000"},
    "reporter": {"FD_MEMORY_RETENTION": "40", "FD_SHUTDOWN_GRACE_MS": "2000"},
}


def port_plan(base: int) -> dict[str, tuple[int, int]]:
    """Public (tcp, http) ports per role from one base port (pure): tcp is the hop's proxy."""
    if not 1 <= base <= 65535 - 103:
        raise ValueError(f"--port-base must be between 1 and {65535 - 103}")
    return {role: (base + i, base + 100 + i) for i, role in enumerate(ROLES)}


def make_driver(ports: dict[str, tuple[int, int]] | None, *, unsafe_no_sandbox: bool = False):
    """The process driver, with the grader's sandbox unless `unsafe_no_sandbox`.

    Why through the driver: candidate code in a drill or a bug hunt must run exactly as it
    does when graded. The driver decides how; this passes the flag on when the installed
    driver takes one (the sandbox is the driver's job, not this module's)."""
    params = inspect.signature(ProcessDriver.__init__).parameters
    kwargs: dict = {"ports": ports}
    if "sandbox" in params:
        # Exactly as `faultdrill grade` asks for it: False when unsafe, else the driver's
        # default (graders.sandbox.enabled_by_default()).
        kwargs["sandbox"] = False if unsafe_no_sandbox else None
    return ProcessDriver(**kwargs)


class LiveSystem:
    """`LiveSystem.start(submission, seed=..., token=...)`; `.topo`, `.hops`, `.close()`."""

    def __init__(self, topo: Topology, claimed: list[int], settings: dict[str, dict[str, str]]):
        self.topo = topo
        self._claimed = claimed
        self.role_settings = settings
        self.extra_proxies: dict[str, FaultProxy] = {}   # created through POST /proxies

    @property
    def hops(self) -> dict[str, FaultProxy]:
        return {"orchestrator": self.topo.client_proxy, **self.topo.agent_proxy}

    @property
    def proxies(self) -> dict[str, FaultProxy]:
        return {**self.hops, **self.extra_proxies}

    @property
    def deployment(self):
        return self.topo.deployment

    @property
    def token(self) -> str:
        return self.topo.token

    @property
    def seed(self) -> int:
        return self.topo.seed

    @classmethod
    def start(cls, submission: Submission, *, seed: int, token: str, port_base: int | None = None,
              settings: dict[str, dict[str, str]] | None = None, driver=None,
              unsafe_no_sandbox: bool = False, start_timeout: float = 15.0) -> "LiveSystem":
        """Deploy and start every service behind its hop. On any failure everything
        started so far is stopped before the exception propagates."""
        settings = {role: dict((settings or {}).get(role, {})) for role in ROLES}
        public = port_plan(port_base) if port_base is not None else None
        claimed: list[int] = []
        proxies: dict[str, FaultProxy] = {}
        deployment = None
        try:
            if public is not None:
                claimed = allocate_ports(len(ROLES))
                ports = {role: (claimed[i], public[role][1]) for i, role in enumerate(ROLES)}
            else:
                ports = None
            for i, hop in enumerate(HOPS):
                listen = public[hop][0] if public else 0
                proxies[hop] = FaultProxy(hop, ("127.0.0.1", 0), seed=seed * 10 + i,
                                          listen_port=listen).start()
            base_env: dict[str, dict[str, str]] = {}
            for role in ROLES:
                env = {"FD_TOKEN": token, **settings[role]}
                if role == "orchestrator":
                    for agent in AGENTS:
                        host, port = proxies[agent].address
                        env[ADDR_VARS[agent]] = f"{host}:{port}"
                base_env[role] = env
            driver = driver or make_driver(ports, unsafe_no_sandbox=unsafe_no_sandbox)
            deployment = driver.deploy(submission, base_env=base_env)
            # Where the services reach the grader's host (see Topology.up): the agent hops
            # listen there too, never on a wildcard address.
            proxy_host = getattr(deployment, "proxy_host", "127.0.0.1") or "127.0.0.1"
            for hop in HOPS:
                if hop in AGENTS and proxy_host != "127.0.0.1":
                    proxies[hop].listen_also(proxy_host)
                ep = deployment.endpoint(hop)
                proxies[hop].set_upstream(ep.host, ep.port)
            orch_settings = {"FD_TASK_DEADLINE_MS": "10000", **settings["orchestrator"]}
            topo = Topology(submission, deployment, seed=seed, token=token,
                            settings=orch_settings,
                            agent_proxy={a: proxies[a] for a in AGENTS},
                            client_proxy=proxies["orchestrator"])
            system = cls(topo, claimed, settings)
            topo.start_all(timeout=start_timeout)
            return system
        except BaseException:
            for proxy in proxies.values():
                proxy.close()
            if deployment is not None:
                deployment.close()
            release_ports(claimed)
            raise

    def public_address(self, hop: str) -> tuple[str, int]:
        return tuple(self.hops[hop].address)

    def close(self):
        """Stop every proxy and service; the driver's cleanup report (None if closed)."""
        for proxy in self.extra_proxies.values():
            proxy.close()
        self.extra_proxies.clear()
        report = self.topo.close()
        release_ports(self._claimed)
        self._claimed = []
        return report
