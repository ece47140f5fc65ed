"""faultdrill's own live faults, beyond proxy toxics, and `heal`.

Why one place: the control API, the CLI and a drill's seeded schedule all inject the same
faults, and `heal` must undo every one of them, whoever injected it. Faults are given as
plain dicts (`{"action": "service", "role": "analyzer", "op": "pause"}`), validated by
`check_fault` (pure, so an incident file is checked without a running system) and applied
by `Actions.apply`.

Background faults (overload, a flood of bad requests, leaked connections) are jobs: daemon
threads with a stop event and a time bound, stopped by `heal` and by `close`.
"""
from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
import socket
import threading
import time
from typing import Any

from ..client import ClientError, Connection, make_request
from ..faults import memory as memfaults
from ..faults.fake_agent import MODES as DRIFT_MODES
from ..faults.fake_agent import FakeAgent
from ..manifest import ROLES
from ..topology import AGENTS
from .toxics import ToxicError, parse_toxic
from .traffic import task_input

__all__ = ["Actions", "FaultError", "check_fault", "ACTIONS", "SERVICE_OPS", "FLOOD_KINDS"]

SERVICE_OPS = ("kill", "pause", "resume", "restart", "stop", "start")
FLOOD_KINDS = {"bad_token": "requests with a wrong token",
               "garbage": "lines that are not protocol frames (an HTTP health check on the TCP port)"}
#: Only these settings may be changed by a live reconfiguration (SPEC §2 names).
RECONFIGURABLE = frozenset({"FD_MEMORY_RETENTION", "FD_LOG_LEVEL", "FD_TOKEN", "FD_ATTEMPT_TIMEOUT_MS",
                            "FD_RETRY_MAX_ATTEMPTS", "FD_QUEUE_SIZE", "FD_WORKERS",
                            "FD_MAX_CONNECTIONS", "FD_IDLE_TIMEOUT_MS"})
MAX_JOB_SECONDS = 3600
MAX_CONCURRENCY = 64
MAX_LEAK = 512


class FaultError(ValueError):
    """A fault that cannot be applied: the API answers 400 with the message."""


def _need(obj: dict, key: str, kinds: tuple, what: str) -> Any:
    if key not in obj:
        raise FaultError(f"{what}: missing {key!r}")
    value = obj[key]
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        raise FaultError(f"{what}: {key!r} must be {' or '.join(k.__name__ for k in kinds)}")
    return value


def _bounded(obj: dict, key: str, default: float, lo: float, hi: float, what: str) -> float:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise FaultError(f"{what}: {key!r} must be a number within [{lo}, {hi}]")
    return value


def _role(obj: dict, what: str, roles=ROLES) -> str:
    role = _need(obj, "role", (str,), what)
    if role not in roles:
        raise FaultError(f"{what}: role must be one of {', '.join(roles)}, not {role!r}")
    return role


def _check_toxic(f: dict) -> None:
    hop = _need(f, "hop", (str,), "toxic")
    if hop not in ROLES:
        raise FaultError(f"toxic: hop must be one of {', '.join(ROLES)}")
    try:
        parse_toxic(_need(f, "toxic", (dict,), "toxic"))
    except ToxicError as exc:
        raise FaultError(f"toxic: {exc}") from None


def _check_proxy(f: dict) -> None:
    if _need(f, "hop", (str,), "proxy") not in ROLES:
        raise FaultError(f"proxy: hop must be one of {', '.join(ROLES)}")
    _need(f, "enabled", (bool,), "proxy")


def _check_cut(f: dict) -> None:
    if _need(f, "hop", (str,), "cut") not in ROLES:
        raise FaultError(f"cut: hop must be one of {', '.join(ROLES)}")


def _check_service(f: dict) -> None:
    _role(f, "service")
    if f.get("op") not in SERVICE_OPS:
        raise FaultError(f"service: op must be one of {', '.join(SERVICE_OPS)}")


def _check_reconfigure(f: dict) -> None:
    _role(f, "reconfigure")
    env = _need(f, "env", (dict,), "reconfigure")
    bad = sorted(k for k in env if k not in RECONFIGURABLE)
    if bad or not env or not all(isinstance(v, str) for v in env.values()):
        raise FaultError(f"reconfigure: env must map some of {sorted(RECONFIGURABLE)} to strings"
                         + (f" ({bad} cannot be changed live)" if bad else ""))


def _check_corrupt(f: dict) -> None:
    _role(f, "corrupt_memory")
    kind = f.get("kind", "truncated")
    if kind not in memfaults.CORRUPTIONS:
        raise FaultError(f"corrupt_memory: kind must be one of {', '.join(memfaults.CORRUPTIONS)}")
    _bounded(f, "count", 1, 1, 100, "corrupt_memory")


def _check_drift(f: dict) -> None:
    _role(f, "drift", AGENTS)
    mode = f.get("mode", "renamed_field")
    if mode not in DRIFT_MODES:
        raise FaultError(f"drift: mode must be one of {', '.join(DRIFT_MODES)}")
    if mode == "drift_schema" and f["role"] != "collector":
        raise FaultError("drift: mode drift_schema is a collector mode")


def _check_overload(f: dict) -> None:
    _bounded(f, "concurrency", 16, 1, MAX_CONCURRENCY, "overload")
    _bounded(f, "seconds", 600, 0.1, MAX_JOB_SECONDS, "overload")


def _check_flood(f: dict) -> None:
    if f.get("kind", "bad_token") not in FLOOD_KINDS:
        raise FaultError(f"flood: kind must be one of {', '.join(FLOOD_KINDS)}")
    _bounded(f, "rate", 10, 0.1, 500, "flood")
    _bounded(f, "seconds", 600, 0.1, MAX_JOB_SECONDS, "flood")


def _check_leak(f: dict) -> None:
    _bounded(f, "connections", 40, 1, MAX_LEAK, "leak")
    if f.get("hop", "orchestrator") not in ROLES:
        raise FaultError(f"leak: hop must be one of {', '.join(ROLES)}")
    _bounded(f, "seconds", 600, 0.1, MAX_JOB_SECONDS, "leak")


#: action -> (validator, one-line description)
ACTIONS = {
    "toxic": (_check_toxic, "add a toxic (Toxiproxy JSON) on a hop"),
    "proxy": (_check_proxy, "disable (connections refused) or enable a hop"),
    "cut": (_check_cut, "close every open connection on a hop at once (a flapping network element)"),
    "service": (_check_service, "kill / pause / resume / restart / stop / start a service"),
    "reconfigure": (_check_reconfigure, "restart a service with changed settings"),
    "corrupt_memory": (_check_corrupt, "damage stored records of a service, then restart it"),
    "drift": (_check_drift, "replace an agent by one that answers drifted or failing replies"),
    "overload": (_check_overload, "many concurrent clients submitting as fast as they can"),
    "flood": (_check_flood, "a stream of bad requests at the orchestrator"),
    "leak": (_check_leak, "open connections that are never used nor closed"),
}


def check_fault(fault: Any) -> dict:
    """Validate one fault dict (pure); returns it. Raises FaultError."""
    if not isinstance(fault, dict):
        raise FaultError("a fault must be a JSON object with an 'action'")
    action = fault.get("action")
    if action not in ACTIONS:
        raise FaultError(f"unknown action {action!r}; actions are {', '.join(ACTIONS)}")
    ACTIONS[action][0](fault)
    return fault


class _Job:
    """A background fault: `target(stop)` runs on a daemon thread until stop or `seconds`."""

    def __init__(self, name: str, seconds: float, target):
        self.name = name
        self.stop = threading.Event()
        self.deadline = time.monotonic() + seconds
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._target = target

    def count(self, key: str) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def running(self) -> bool:
        return not self.stop.is_set() and time.monotonic() < self.deadline

    def spawn(self, n: int = 1) -> "_Job":
        for i in range(n):
            t = threading.Thread(target=self._target, args=(self, i), daemon=True,
                                 name=f"fault-{self.name}-{i}")
            self._threads.append(t)
            t.start()
        return self

    def halt(self, timeout: float = 5.0) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)


class Actions:
    """Applies faults to a `LiveSystem` and heals them; every step is recorded in `log`."""

    def __init__(self, system, *, seed: int):
        self.system = system
        self.seed = seed
        self.rng = random.Random(f"faultdrill-live-actions:{seed}")
        self.drifted: dict[str, FakeAgent] = {}
        self.reconfigured: dict[str, dict[str, str]] = {}
        self.jobs: dict[str, _Job] = {}
        self.toxic_names: dict[str, dict[str, str]] = {}   # hop -> api name -> proxy tid
        self.log: list[dict] = []
        self._lock = threading.RLock()
        self._seq = 0
        # Every service start happens on this one long-lived thread. Why: a sandboxed
        # service dies with the thread that started it (bubblewrap's --die-with-parent is
        # PR_SET_PDEATHSIG, which follows the *thread*), and API requests and schedules
        # run on short-lived threads.
        self._procs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-processes")

    def _on_process_thread(self, fn, *args, timeout: float = 120.0):
        return self._procs.submit(fn, *args).result(timeout=timeout)

    def _note(self, what: str, **detail) -> dict:
        entry = {"t": time.time(), "what": what, **detail}
        with self._lock:
            self.log.append(entry)
        return entry

    # --- toxics (shared with the Toxiproxy-shaped API) ----------------------------------
    def add_toxic(self, hop: str, obj: dict) -> dict:
        spec = parse_toxic(obj)
        proxy = self.system.proxies[hop]
        with self._lock:
            names = self.toxic_names.setdefault(hop, {})
            if spec.name in names and names[spec.name] in proxy.toxics:
                raise KeyError(f"toxic {spec.name!r} already exists on {hop}")
            names[spec.name] = proxy.add(spec.toxic)
        self._note("toxic", hop=hop, toxic=spec.json())
        return spec.json()

    def toxics(self, hop: str) -> dict[str, Any]:
        """API name -> proxy toxic for the toxics on `hop` (added by any path)."""
        proxy = self.system.proxies[hop]
        live = proxy.toxics
        with self._lock:
            names = self.toxic_names.setdefault(hop, {})
            for name in [n for n, tid in names.items() if tid not in live]:
                del names[name]
            known = set(names.values())
            for tid in live:
                if tid not in known:
                    names[tid] = tid
            return {name: live[tid] for name, tid in names.items()}

    def remove_toxic(self, hop: str, name: str) -> bool:
        proxy = self.system.proxies[hop]
        with self._lock:
            tid = self.toxic_names.get(hop, {}).pop(name, None)
        if tid is None or tid not in proxy.toxics:
            return False
        proxy.remove(tid)
        self._note("remove_toxic", hop=hop, name=name)
        return True

    def reset_proxies(self) -> None:
        """Toxiproxy's reset: every proxy enabled, every toxic removed (nothing else)."""
        for proxy in self.system.proxies.values():
            proxy.clear()
            if proxy.down:
                proxy.set_down(False)
        with self._lock:
            self.toxic_names.clear()
        self._note("reset")

    def set_enabled(self, hop: str, enabled: bool) -> None:
        self.system.proxies[hop].set_down(not enabled)
        self._note("proxy", hop=hop, enabled=enabled)

    # --- faults ---------------------------------------------------------------------------
    def apply(self, fault: dict) -> dict:
        """Apply one validated fault; returns what was done (JSON-able)."""
        check_fault(fault)
        action = fault["action"]
        handler = getattr(self, f"_do_{action}")
        if action in ("service", "reconfigure", "corrupt_memory"):
            return self._on_process_thread(handler, fault)
        return handler(fault)

    def _do_toxic(self, f: dict) -> dict:
        return {"hop": f["hop"], "toxic": self.add_toxic(f["hop"], f["toxic"])}

    def _do_proxy(self, f: dict) -> dict:
        self.set_enabled(f["hop"], f["enabled"])
        return {"hop": f["hop"], "enabled": f["enabled"]}

    def _do_cut(self, f: dict) -> dict:
        proxy = self.system.proxies[f["hop"]]
        n = proxy.open_connections
        proxy.close_connections(timeout=2.0)
        self._note("cut", hop=f["hop"], connections=n)
        return {"hop": f["hop"], "closed": n}

    def _do_service(self, f: dict) -> dict:
        role, op = f["role"], f["op"]
        dep = self.system.deployment
        if op == "start":
            if not dep.running(role):
                dep.start(role, self.reconfigured.get(role) or None)
        elif op == "restart":
            dep.restart(role)
        elif op == "stop":
            dep.stop(role)
        else:
            getattr(dep, op)(role)
        self._note("service", role=role, op=op)
        return {"role": role, "op": op, "running": dep.running(role)}

    def _do_reconfigure(self, f: dict) -> dict:
        role, env = f["role"], dict(f["env"])
        dep = self.system.deployment
        dep.stop(role)
        with self._lock:
            self.reconfigured[role] = env
        dep.start(role, env)
        self._note("reconfigure", role=role,
                   settings=sorted(env) if "FD_TOKEN" in env else env)
        return {"role": role, "changed": sorted(env)}

    def _do_corrupt_memory(self, f: dict) -> dict:
        role, kind = f["role"], f.get("kind", "truncated")
        dep = self.system.deployment
        records = sorted(p for p in dep.memory_files(role)
                         if p.startswith("records/") and p.endswith(".json"))
        if f.get("task_id"):
            wanted = f"records/{f['task_id']}.json"
            if wanted not in records:
                raise FaultError(f"corrupt_memory: {role} holds no record {wanted}")
            chosen = [wanted]
        else:
            if not records:
                raise FaultError(f"corrupt_memory: {role} holds no records yet (send some tasks)")
            chosen = self.rng.sample(records, min(int(f.get("count", 1)), len(records)))
        for rel in chosen:
            data = dep.read_memory(role, rel)
            dep.write_memory(role, rel, memfaults.CORRUPTIONS[kind](data, self.rng))
        restarted = f.get("restart", True)
        if restarted:
            dep.restart(role)
        self._note("corrupt_memory", role=role, kind=kind, files=chosen, restarted=restarted)
        return {"role": role, "kind": kind, "files": chosen, "restarted": bool(restarted)}

    def _do_drift(self, f: dict) -> dict:
        role, mode = f["role"], f.get("mode", "renamed_field")
        self._undrift(role)
        fake = FakeAgent(role, mode, token=self.system.token)
        with self._lock:
            self.drifted[role] = fake
        proxy = self.system.hops[role]
        proxy.set_upstream(*fake.address)
        proxy.close_connections()
        self._note("drift", role=role, mode=mode)
        return {"role": role, "mode": mode, "behaviour": DRIFT_MODES[mode]}

    def _undrift(self, role: str) -> bool:
        with self._lock:
            fake = self.drifted.pop(role, None)
        if fake is None:
            return False
        ep = self.system.deployment.endpoint(role)
        proxy = self.system.hops[role]
        proxy.set_upstream(ep.host, ep.port)
        proxy.close_connections()
        fake.close()
        return True

    def _start_job(self, name: str, seconds: float, target, n: int, **detail) -> dict:
        with self._lock:
            self._seq += 1
            key = f"{name}-{self._seq}"
            job = _Job(key, seconds, target)
            self.jobs[key] = job
        job.spawn(n)
        self._note(name, job=key, **detail)
        return {"job": key, **detail}

    def _client_addr(self) -> tuple[str, int]:
        return tuple(self.system.hops["orchestrator"].address)

    def _do_overload(self, f: dict) -> dict:
        conc, seconds = int(f.get("concurrency", 16)), float(f.get("seconds", 600))
        addr, token, seed = self._client_addr(), self.system.token, self.seed

        def client(job: _Job, i: int) -> None:
            n = 0
            while job.running():
                n += 1
                frame = make_request("submit", {"task_type": "triage",
                                                "input": task_input(seed + 7919, i * 100000 + n)},
                                     token=token, task_id=f"{job.name}-{i}-{n}")
                try:
                    with Connection(*addr, timeout=5.0) as conn:
                        reply = conn.request(frame)
                    job.count("ok" if reply.get("type") == "submit_ok"
                              else str((reply.get("error") or {}).get("name")))
                except (ClientError, OSError):
                    job.count("transport")
                    job.stop.wait(0.05)
        return self._start_job("overload", seconds, client, conc, concurrency=conc)

    def _do_flood(self, f: dict) -> dict:
        kind, rate = f.get("kind", "bad_token"), float(f.get("rate", 10))
        seconds = float(f.get("seconds", 600))
        addr, token = self._client_addr(), self.system.token
        wrong = "x" * len(token)

        def flooder(job: _Job, _i: int) -> None:
            next_at = time.monotonic()
            while job.running():
                try:
                    with socket.create_connection(addr, timeout=2.0) as s:
                        if kind == "bad_token":
                            frame = make_request("status", {}, token=wrong, task_id="probe")
                            s.sendall(json.dumps(frame).encode() + b"\n")
                        else:
                            s.sendall(b"GET /health HTTP/1.1\r\nHost: orchestrator\r\n\r\n")
                        s.settimeout(2.0)
                        s.recv(65536)
                    job.count("sent")
                except OSError:
                    job.count("transport")
                next_at += 1.0 / rate
                job.stop.wait(max(0.0, next_at - time.monotonic()))
        return self._start_job("flood", seconds, flooder, 1, kind=kind, rate=rate)

    def _do_leak(self, f: dict) -> dict:
        n, seconds = int(f.get("connections", 40)), float(f.get("seconds", 600))
        addr = tuple(self.system.hops[f.get("hop", "orchestrator")].address)

        def leaker(job: _Job, _i: int) -> None:
            held: list[socket.socket] = []
            try:
                while job.running():
                    alive = []
                    for s in held:             # the server may close idle ones: reopen
                        try:
                            s.setblocking(False)
                            gone = s.recv(1) == b""
                        except BlockingIOError:
                            gone = False
                        except OSError:
                            gone = True
                        if gone:
                            s.close()
                        else:
                            alive.append(s)
                    held = alive
                    while len(held) < n and job.running():
                        try:
                            held.append(socket.create_connection(addr, timeout=1.0))
                            job.count("opened")
                        except OSError:
                            job.count("refused")
                            break
                    job.stop.wait(0.5)
            finally:
                for s in held:
                    s.close()
        return self._start_job("leak", seconds, leaker, 1, connections=n)

    # --- heal -----------------------------------------------------------------------------
    def heal(self, *, wait_ready: float = 10.0) -> dict:
        """Undo every fault: stop jobs, restore drifted agents and reconfigured services,
        clear toxics, enable hops, resume paused and start stopped services."""
        return self._on_process_thread(self._heal, wait_ready)

    def _heal(self, wait_ready: float) -> dict:
        done: list[str] = []
        with self._lock:
            jobs, self.jobs = dict(self.jobs), {}
        for key, job in jobs.items():
            job.halt()
            done.append(f"stopped {key}")
        for role in list(self.drifted):
            if self._undrift(role):
                done.append(f"restored the real {role}")
        for proxy_name, proxy in self.system.proxies.items():
            if proxy.toxics:
                done.append(f"removed {len(proxy.toxics)} toxic(s) on {proxy_name}")
            proxy.clear()
            if proxy.down:
                proxy.set_down(False)
                done.append(f"enabled hop {proxy_name}")
        with self._lock:
            self.toxic_names.clear()
            reconfigured, self.reconfigured = dict(self.reconfigured), {}
        dep = self.system.deployment
        for role in ROLES:
            if role in reconfigured:
                dep.stop(role)
                dep.start(role, {})
                done.append(f"restarted {role} with its original settings")
            elif not dep.running(role):
                dep.restart(role)
                done.append(f"started {role}")
            else:
                dep.resume(role)
        ready = self.system.topo.wait_ready(wait_ready)
        self._note("heal", done=done, ready=ready)
        return {"done": done, "ready": ready}

    def status(self) -> dict:
        dep = self.system.deployment
        with self._lock:
            jobs = {k: {"running": j.running() and j.alive(), "counts": dict(j.counts)}
                    for k, j in self.jobs.items()}
            drifted = {r: f.mode for r, f in self.drifted.items()}
            reconfigured = {r: sorted(e) for r, e in self.reconfigured.items()}
        return {"services": {r: {"running": dep.running(r)} for r in ROLES},
                "drifted": drifted, "reconfigured": reconfigured, "jobs": jobs}

    def close(self) -> None:
        """Stop every fault job and fake agent, then the process thread (call after the
        services were stopped: a sandboxed service does not outlive the thread)."""
        self.stop_faults()
        self._procs.shutdown(wait=True, cancel_futures=True)

    def stop_faults(self) -> None:
        with self._lock:
            jobs, self.jobs = list(self.jobs.values()), {}
            fakes, self.drifted = list(self.drifted.values()), {}
        for job in jobs:
            job.halt()
        for fake in fakes:
            fake.close()
