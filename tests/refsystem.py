"""Start the reference system from its manifest for tests: four subprocesses on loopback.

Why a fixture module and not a conftest: several test files use it and the project has
no shared conftest; importing this file keeps each test file self-contained.

Everything is bounded: starting waits at most ``START_TIMEOUT_S`` per service, stopping
waits for a bounded time and then SIGKILLs, every socket has a timeout. Each service's
stderr (its JSON log) goes to a file under the test's temp dir so tests can read the
logs even after the process died. Ports are taken from the OS (bind to port 0) just
before starting.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "reference_impl"
ROLES = ("collector", "analyzer", "reporter", "orchestrator")
AGENTS = ("collector", "analyzer", "reporter")
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 8.0
HOST = "127.0.0.1"

#: Small timeouts so failure scenarios finish quickly.
FAST_ENV = {
    "FD_ATTEMPT_TIMEOUT_MS": "500",
    "FD_TASK_DEADLINE_MS": "4000",
    "FD_RETRY_MAX_ATTEMPTS": "4",
    "FD_RETRY_BASE_MS": "100",
    "FD_RETRY_CAP_MS": "800",
    "FD_SHUTDOWN_GRACE_MS": "3000",
}


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def manifest_command(role: str) -> list[str]:
    manifest = tomllib.loads((ROOT / "faultdrill.toml").read_text())
    argv = manifest["services"][role]["command"]
    return [sys.executable if a == "{python}" else a.replace("{root}", str(ROOT)) for a in argv]


class Client:
    """A framed-JSON client with a timeout on every operation."""

    def __init__(self, port: int, timeout: float = 10.0, host: str = HOST) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, obj: dict) -> None:
        self.send_raw(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    def recv(self) -> dict | None:
        """Next reply, or None when the server closed the connection."""
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def request(self, obj: dict) -> dict | None:
        self.send(obj)
        return self.recv()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


class RefSystem:
    """The four reference services for one test; use as a context manager."""

    def __init__(self, tmp: Path, *, token: str = "tok-Zq8-refsystem-secret", env: dict | None = None,
                 role_env: dict[str, dict] | None = None) -> None:
        self.tmp = Path(tmp)
        self.token = token
        self.env = dict(env or {})
        self.role_env = {k: dict(v) for k, v in (role_env or {}).items()}
        p = free_ports(8)
        self.ports = {r: p[i] for i, r in enumerate(ROLES)}
        self.http_ports = {r: p[4 + i] for i, r in enumerate(ROLES)}
        self.procs: dict[str, subprocess.Popen] = {}
        self.log_files: dict[str, list[Path]] = {r: [] for r in ROLES}

    # -- processes ----------------------------------------------------------------------

    def env_for(self, role: str) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.tmp), "LANG": "C.UTF-8",
               "TZ": "UTC", "PYTHONUNBUFFERED": "1",
               "FD_ROLE": role, "FD_LISTEN_HOST": HOST, "FD_LISTEN_PORT": str(self.ports[role]),
               "FD_HTTP_PORT": str(self.http_ports[role]), "FD_TOKEN": self.token,
               "FD_MEMORY_DIR": str(self.memory_dir(role))}
        if role == "orchestrator":
            for agent in AGENTS:
                env[f"FD_{agent.upper()}_ADDR"] = f"{HOST}:{self.ports[agent]}"
        env.update(self.env)
        env.update(self.role_env.get(role, {}))
        return env

    def memory_dir(self, role: str) -> Path:
        return self.tmp / "memory" / role

    def start(self, *roles: str, wait: bool = True) -> None:
        for role in roles or ROLES:
            running = self.procs.get(role)
            if running is not None and running.poll() is None:
                # Starting it again would orphan the running process (close() only knows
                # the newest one per role) and leave it behind after the test.
                raise RuntimeError(f"{role} is already running (pid {running.pid}); stop it first")
            log = self.tmp / f"{role}.{len(self.log_files[role])}.log"
            self.log_files[role].append(log)
            with open(log, "wb") as err:
                self.procs[role] = subprocess.Popen(manifest_command(role), cwd=ROOT, env=self.env_for(role),
                                                    stdout=subprocess.DEVNULL, stderr=err,
                                                    stdin=subprocess.DEVNULL)
        if wait:
            for role in roles or ROLES:
                self.wait_started(role)

    def wait_started(self, role: str, timeout: float = START_TIMEOUT_S) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            proc = self.procs[role]
            if proc.poll() is not None:
                raise RuntimeError(f"{role} exited with {proc.returncode}: {self.stderr_text(role)[-2000:]}")
            try:
                with socket.create_connection((HOST, self.ports[role]), timeout=0.5):
                    pass
                if http_get(self.http_ports[role], "/livez", timeout=1.0)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{role} did not start within {timeout} s: {self.stderr_text(role)[-2000:]}")

    def send_signal(self, role: str, sig: int) -> None:
        self.procs[role].send_signal(sig)

    def stop(self, role: str, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
        proc = self.procs[role]
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        return proc.returncode

    def kill(self, role: str) -> None:
        self.stop(role, signal.SIGKILL)

    def close(self) -> None:
        for role, proc in self.procs.items():
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGCONT)
                except OSError:
                    pass
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def __enter__(self) -> "RefSystem":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- logs -----------------------------------------------------------------------------

    def stderr_text(self, role: str) -> str:
        return "".join(p.read_text(errors="replace") for p in self.log_files[role] if p.exists())

    def logs(self, role: str) -> list[dict]:
        out = []
        for line in self.stderr_text(role).splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def events(self, role: str, event: str, **match) -> list[dict]:
        return [r for r in self.logs(role) if r.get("event") == event
                and all(r.get(k) == v for k, v in match.items())]

    def wait_for_event(self, role: str, event: str, timeout: float = 5.0, **match) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = self.events(role, event, **match)
            if found:
                return found[0]
            time.sleep(0.05)
        raise TimeoutError(f"no {event} {match} in {role} logs within {timeout} s")

    # -- protocol helpers ---------------------------------------------------------------------

    def client(self, role: str = "orchestrator", timeout: float = 10.0) -> Client:
        return Client(self.ports[role], timeout=timeout)

    def envelope(self, type_: str, payload: dict, *, task_id: str | None = None, msg_id: str = "m-1",
                 **extra) -> dict:
        env = {"v": 1, "type": type_, "msg_id": msg_id, "token": self.token, "payload": payload}
        if task_id is not None:
            env["task_id"] = task_id
        env.update(extra)
        return env

    def submit(self, task_id: str, task_input: dict, *, wait: bool = True, task_type: str = "triage",
               timeout: float = 15.0, **extra) -> dict:
        payload = {"task_type": task_type, "input": task_input}
        if not wait:
            payload["wait"] = False
        with self.client(timeout=timeout) as c:
            return c.request(self.envelope("submit", payload, task_id=task_id, msg_id=f"s-{task_id}", **extra))

    def status(self, task_id: str) -> dict:
        with self.client() as c:
            return c.request(self.envelope("status", {}, task_id=task_id, msg_id=f"st-{task_id}"))

    def wait_status(self, task_id: str, statuses: tuple[str, ...], timeout: float = 10.0) -> dict:
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            last = self.status(task_id)
            if last.get("type") == "status_ok" and last["payload"]["status"] in statuses:
                return last
            time.sleep(0.05)
        raise TimeoutError(f"task {task_id} not in {statuses} within {timeout} s: {last}")

    def metrics(self, role: str) -> str:
        return http_get(self.http_ports[role], "/metrics")[2].decode()


def metric_value(text: str, name: str, **labels) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        got = {}
        for part in label_text.rstrip("}").split(","):
            if "=" in part:
                k, _, v = part.partition("=")
                got[k.strip()] = v.strip().strip('"')
        if all(got.get(k) == str(v) for k, v in labels.items()):
            total += float(value)
    return total


class Blackhole:
    """A TCP server that accepts connections and never answers (reads and discards)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self._conns.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for c in self._conns:
            c.close()
        self.sock.close()

    def __enter__(self) -> "Blackhole":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ScriptedAgent(Blackhole):
    """A fake agent: each request frame is answered with ``respond(request) -> reply dict``.

    Used to play an agent that drifted (wrong version, wrong reply shape); it records
    every request it received in ``requests``.
    """

    def __init__(self, respond) -> None:
        self.respond = respond
        self.requests: list[dict] = []
        super().__init__()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        buf = b""
        try:
            while not self._stop.is_set():
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    request = json.loads(line)
                    self.requests.append(request)
                    conn.sendall(json.dumps(self.respond(request)).encode() + b"\n")
        except (OSError, ValueError):
            return
