"""Topology: one deployment wired through fault proxies, the unit every check runs against.

Why: every fault a check injects between services needs a proxy on that path, and every
check needs the same fast, bounded settings. Here the orchestrator's three agent addresses
point at one FaultProxy per agent (`agent_proxy[role]`) and clients reach the orchestrator
through `client_proxy`, so a check can delay, drop or cut any hop and read the recorded
frames (attempts, msg_ids, timings) without the submission noticing a grader in between.
"""
from __future__ import annotations

import time
from typing import Any

from .client import Connection, make_request
from .drivers.base import Deployment, Driver
from .faults.proxy import FaultProxy
from .manifest import ROLES, Submission

__all__ = ["Topology", "FAST_SETTINGS", "AGENTS", "ADDR_VARS"]

AGENTS = ("collector", "analyzer", "reporter")
ADDR_VARS = {"collector": "FD_COLLECTOR_ADDR", "analyzer": "FD_ANALYZER_ADDR",
             "reporter": "FD_REPORTER_ADDR"}
#: Fast, still SPEC-valid settings so that fault scenarios finish in seconds.
FAST_SETTINGS = {
    "FD_ATTEMPT_TIMEOUT_MS": "1000",
    "FD_TASK_DEADLINE_MS": "6000",
    "FD_RETRY_BASE_MS": "100",
    "FD_RETRY_CAP_MS": "800",
    "FD_RETRY_MAX_ATTEMPTS": "4",
    "FD_SHUTDOWN_GRACE_MS": "3000",
    "FD_IDLE_TIMEOUT_MS": "10000",
}


def _split_overrides(env_overrides: dict | None) -> dict[str, dict[str, str]]:
    """Accept {role: {VAR: value}} or a flat {VAR: value} applied to every role."""
    per_role: dict[str, dict[str, str]] = {role: {} for role in ROLES}
    if not env_overrides:
        return per_role
    if all(k in ROLES for k in env_overrides):
        for role, env in env_overrides.items():
            per_role[role].update(env)
    else:
        for role in ROLES:
            per_role[role].update(env_overrides)
    return per_role


class Topology:
    def __init__(self, submission: Submission, deployment: Deployment, *, seed: int, token: str,
                 settings: dict[str, str], agent_proxy: dict[str, FaultProxy],
                 client_proxy: FaultProxy):
        self.submission = submission
        self.deployment = deployment
        self.seed = seed
        self.token = token
        self.settings = settings
        self.agent_proxy = agent_proxy
        self.client_proxy = client_proxy
        self._closed = False

    @classmethod
    def up(cls, submission: Submission, driver: Driver, *, seed: int, token: str,
           env_overrides: dict | None = None, start: bool = True,
           start_timeout: float = 10.0) -> "Topology":
        overrides = _split_overrides(env_overrides)
        settings = {**FAST_SETTINGS, **overrides["orchestrator"]}
        proxies: dict[str, FaultProxy] = {}
        deployment = None
        try:
            for i, role in enumerate(AGENTS):
                proxies[role] = FaultProxy(f"{role}", ("127.0.0.1", 0), seed=seed * 10 + i).start()
            client_proxy = FaultProxy("client", ("127.0.0.1", 0), seed=seed * 10 + 9).start()
            base_env: dict[str, dict[str, str]] = {}
            for role in ROLES:
                env = {"FD_TOKEN": token}
                if role == "orchestrator":
                    env.update(FAST_SETTINGS)
                    for agent in AGENTS:
                        host, port = proxies[agent].address
                        env[ADDR_VARS[agent]] = f"{host}:{port}"
                env.update(overrides[role])
                base_env[role] = env
            deployment = driver.deploy(submission, base_env=base_env)
            # Where the orchestrator reaches the grader's host: 127.0.0.1 for local
            # processes, the private network's gateway for containers (whose driver turns
            # `127.0.0.1:<proxy port>` into `<proxy_host>:<proxy port>`). Agent proxies
            # listen there too, never on a wildcard address.
            proxy_host = getattr(deployment, "proxy_host", "127.0.0.1") or "127.0.0.1"
            for agent in AGENTS:
                if proxy_host != "127.0.0.1":
                    proxies[agent].listen_also(proxy_host)
                ep = deployment.endpoint(agent)
                proxies[agent].set_upstream(ep.host, ep.port)
            ep = deployment.endpoint("orchestrator")
            client_proxy.set_upstream(ep.host, ep.port)
            topo = cls(submission, deployment, seed=seed, token=token, settings=settings,
                       agent_proxy=proxies, client_proxy=client_proxy)
            if start:
                topo.start_all(timeout=start_timeout)
            return topo
        except BaseException:
            for proxy in proxies.values():
                proxy.close()
            if "client_proxy" in locals():
                client_proxy.close()
            if deployment is not None:
                deployment.close()
            raise

    def start_all(self, timeout: float = 10.0, env: dict | None = None) -> None:
        """Agents first, then the orchestrator (whose readiness depends on them). `env`
        ({role: {VAR: value}} or a flat {VAR: value} for every role) is the start
        environment, which later restarts keep (e.g. TLS file paths placed after deploy)."""
        per_role = _split_overrides(env)
        for role in AGENTS:
            self.deployment.start(role, per_role[role] or None, timeout=timeout)
        self.deployment.start("orchestrator", per_role["orchestrator"] or None, timeout=timeout)
        for var, value in per_role["orchestrator"].items():
            if value is None:
                self.settings.pop(var, None)
            else:
                self.settings[var] = value

    @property
    def proxies(self) -> list[FaultProxy]:
        return [*self.agent_proxy.values(), self.client_proxy]

    def endpoint(self, role: str):
        return self.deployment.endpoint(role)

    def connect(self, direct: bool = False, *, timeout: float | None = None,
                ssl_context=None) -> Connection:
        """A client connection to the orchestrator, through the client proxy unless direct."""
        if direct:
            ep = self.deployment.endpoint("orchestrator")
            host, port = ep.host, ep.port
        else:
            host, port = self.client_proxy.address
        return Connection(host, port, timeout=timeout or self.default_timeout,
                          ssl_context=ssl_context)

    def connect_agent(self, role: str, *, direct: bool = True,
                      timeout: float | None = None) -> Connection:
        """A connection to an agent (directly by default; else through its proxy)."""
        if direct:
            ep = self.deployment.endpoint(role)
            host, port = ep.host, ep.port
        else:
            host, port = self.agent_proxy[role].address
        return Connection(host, port, timeout=timeout or self.default_timeout)

    @property
    def default_timeout(self) -> float:
        """Long enough for a whole task: the task deadline plus a margin."""
        return int(self.settings.get("FD_TASK_DEADLINE_MS", "10000")) / 1000 + 5.0

    def request(self, type: str, payload: dict | None, task_id: str | None = None, *,
                direct: bool = False, timeout: float | None = None, **kw: Any) -> dict:
        """One request on a fresh connection; `kw` goes to make_request (msg_id, v, ...)."""
        kw.setdefault("token", self.token)
        frame = make_request(type, payload, task_id=task_id, **kw)
        with self.connect(direct=direct, timeout=timeout) as conn:
            return conn.request(frame, timeout=timeout)

    def heal(self) -> None:
        """Clear every toxic, bring proxies up, resume paused services."""
        for proxy in self.proxies:
            proxy.clear()
            proxy.set_down(False)
        for role in ROLES:
            if self.deployment.running(role):
                self.deployment.resume(role)

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Poll the orchestrator's /readyz until 200 (bounded)."""
        from .client import http_get
        ep = self.deployment.endpoint("orchestrator")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if http_get(ep.host, ep.http_port, "/readyz", timeout=1.5)[0] == 200:
                    return True
            except Exception:   # noqa: BLE001 - not ready yet
                pass
            time.sleep(0.1)
        return False

    def close(self):
        if self._closed:
            return None
        self._closed = True
        for proxy in self.proxies:
            proxy.close()
        return self.deployment.close()

    def __enter__(self) -> "Topology":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
