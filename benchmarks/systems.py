"""Start the systems the benchmarks measure: the reference (process driver) and the relay.

Why here: every section needs "the reference, direct (no fault proxies), with these
settings" or "the transport ceiling with the same hop count", started with bounded waits
and always torn down. The reference is started from its own manifest through
`graders.drivers.process.ProcessDriver`, exactly as a grader would (so durable memory is
on: each service writes its records under a temp FD_MEMORY_DIR on the real disk).
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from graders.drivers.process import ProcessDriver, ProcessDeployment, allocate_ports, release_ports
from graders.manifest import load_manifest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "reference_impl"
RELAY = Path(__file__).resolve().parent / "relay.py"
AGENTS = ("collector", "analyzer", "reporter")
ADDR_VARS = {"collector": "FD_COLLECTOR_ADDR", "analyzer": "FD_ANALYZER_ADDR",
             "reporter": "FD_REPORTER_ADDR"}
HOST = "127.0.0.1"

__all__ = ["RunningReference", "reference", "relay", "rss_kb", "wait_port"]


@dataclass
class RunningReference:
    deployment: ProcessDeployment
    token: str

    @property
    def addr(self) -> tuple[str, int]:
        ep = self.deployment.endpoint("orchestrator")
        return ep.host, ep.port

    def agent_addr(self, role: str) -> tuple[str, int]:
        ep = self.deployment.endpoint(role)
        return ep.host, ep.port

    def pid(self, role: str = "orchestrator") -> int | None:
        return self.deployment.pid(role)


@contextlib.contextmanager
def reference(token: str, env: dict[str, str] | None = None, *, root: Path = REFERENCE,
              start_timeout: float = 15.0):
    """The four services of a submission (default: the reference), agents addressed
    directly, `env` applied to every role. Closed (and checked for leftovers) on exit."""
    submission = load_manifest(root)
    base = {"FD_TOKEN": token, **(env or {})}
    deployment = ProcessDriver().deploy(submission, base_env={r: dict(base) for r in
                                                              ("orchestrator", *AGENTS)})
    try:
        for role in AGENTS:
            deployment.start(role, timeout=start_timeout)
        addrs = {ADDR_VARS[r]: deployment.endpoint(r).addr for r in AGENTS}
        deployment.start("orchestrator", addrs, timeout=start_timeout)
        yield RunningReference(deployment, token)
    finally:
        report = deployment.close()
        if not report.ok:
            print(f"benchmarks: cleanup problem: {report}", file=sys.stderr)


def wait_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{host}:{port} not accepting connections after {timeout} s")
            time.sleep(0.05)


@contextlib.contextmanager
def relay(*, fresh: bool = False, durable: bool = False, recycle: bool = False,
          timeout: float = 10.0):
    """The transport-ceiling relay: three agent processes and one orchestrator process.
    `durable`: each writes SPEC §11's records under its own temporary directory on the
    same disk as the reference's memory (removed on exit). Yields the (host, port)
    clients connect to."""
    ports = allocate_ports(4, HOST)
    procs: list[subprocess.Popen] = []
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1"}
    stack = contextlib.ExitStack()

    def durable_args(role: str) -> list[str]:
        if not durable:
            return []
        return ["--durable", stack.enter_context(tempfile.TemporaryDirectory(prefix=f"fd-relay-{role}-")),
                *(["--recycle"] if recycle else [])]
    try:
        for port, step in zip(ports[:3], ("collect", "analyze", "report")):
            procs.append(subprocess.Popen([sys.executable, str(RELAY), "agent", HOST, str(port), step,
                                           *durable_args(step)],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          env=env, start_new_session=True))
        agents = ",".join(f"{HOST}:{p}" for p in ports[:3])
        argv = [sys.executable, str(RELAY), "orch", HOST, str(ports[3]), agents, *durable_args("orch")]
        if fresh:
            argv.append("--fresh")
        procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      env=env, start_new_session=True))
        for port in ports:
            wait_port(HOST, port, timeout)
        yield HOST, ports[3]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                print(f"benchmarks: relay pid {p.pid} did not exit", file=sys.stderr)
        stack.close()
        release_ports(ports)


def rss_kb(pid: int | None) -> int | None:
    """Resident set size of a process in KiB (from /proc), None if unavailable."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process in seconds (from /proc), None if unavailable."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
