"""ProcessDriver: each service of a submission as a local process group.

Why process groups and a scrubbed environment: a submission is untrusted code. Each
service runs in its own session (so signals reach everything it spawned and nothing of
ours), sees only the SPEC §2 variables (so it cannot depend on the grader's environment or
read its secrets), runs under resource limits, and has its output captured with a size cap
by reader threads (so a flood cannot exhaust the grader). `close()` verifies that nothing
survives, including children that stayed in the group and daemons that double-forked out
of it (found by the unique FD_MEMORY_DIR in their environment).

Signals follow `docker stop` semantics: SIGTERM goes to the service's main process only
(a wrapper script must `exec` its server), SIGKILL / SIGSTOP / SIGCONT go to the whole
group. Exit codes are Python's: negative N means "killed by signal N".
"""
from __future__ import annotations

import collections
import os
import random
import resource
import shutil
import signal
import socket
import sys
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from ..client import http_get
from ..manifest import ROLES, Submission
from .base import (PASSTHROUGH_ENV, SPEC_ENV_VARS, CleanupReport, Deployment, Driver, Endpoint,
                   StartError)

__all__ = ["ProcessDriver", "ProcessDeployment", "allocate_ports", "release_ports", "OUTPUT_CAP_BYTES"]

OUTPUT_CAP_BYTES = 2 * 1024 * 1024     # per stream per run
MAX_LINE_BYTES = 64 * 1024             # longer lines are cut
CPU_LIMIT_S = 900
ADDRESS_SPACE_BYTES = 2 * 1024 ** 3
OPEN_FILES = 1024
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

_port_lock = threading.Lock()
_recent_ports: list[int] = []

#: Lowest port handed out; the range [PORT_FLOOR, ephemeral low - 1] is used when the
#: kernel's ephemeral range leaves room for it.
PORT_FLOOR = 20000
EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
_MIN_RANGE = 1024
# Which free port a service gets is not part of any replayable outcome, and concurrent
# graders must not walk the same sequence, so this generator is seeded per process.
_port_rng = random.Random(f"faultdrill-ports:{os.getpid()}:{time.time_ns()}")


def ephemeral_range(path: str = EPHEMERAL_RANGE_FILE) -> tuple[int, int] | None:
    """The kernel's ephemeral port range (low, high), None when unknown (not Linux)."""
    try:
        low, high = (int(x) for x in Path(path).read_text().split()[:2])
    except (OSError, ValueError):
        return None
    return (low, high) if 0 < low <= high <= 65535 else None


def port_range(path: str = EPHEMERAL_RANGE_FILE) -> tuple[int, int] | None:
    """Where to pick service ports: [PORT_FLOOR, ephemeral low - 1], or None when that
    range is unknown or too small (then the OS picks, port 0)."""
    eph = ephemeral_range(path)
    if eph is None or eph[0] - 1 - PORT_FLOOR < _MIN_RANGE:
        return None
    return PORT_FLOOR, eph[0] - 1


def _bindable(host: str, port: int) -> bool:
    """True when nothing on this host holds `port` (no SO_REUSEADDR: a port in use or
    still in TIME_WAIT is refused, which is the conservative answer)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# Ports this process has handed out, each held by a claim other grader processes see (an
# abstract Unix socket named after the port): bounded, oldest released first, and released
# by a deployment's close.
_port_claims: "collections.OrderedDict[int, socket.socket]" = collections.OrderedDict()
MAX_PORT_CLAIMS = 256


def _claim(port: int) -> bool:
    """Claim `port` among all processes on this host (Linux abstract socket namespace).

    Why: two graders running side by side (the defect matrix grades three at once, CI
    may run several jobs) pick ports independently; one can pick a port the other has
    just picked and not yet bound, and a service then fails to start with "Address
    already in use" - a verdict that depends on the neighbour, not on the program. The
    claim lives as long as this process holds the socket (no file to clean up) and
    vanishes with the process. Where abstract sockets do not exist, every port counts
    as claimed here (the old behaviour)."""
    if port in _port_claims:
        return False
    if not sys.platform.startswith("linux") or not hasattr(socket, "AF_UNIX"):
        return True
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(f"\0faultdrill-port-{port}")
    except OSError:
        s.close()
        return False
    _port_claims[port] = s
    while len(_port_claims) > MAX_PORT_CLAIMS:
        _port, old = _port_claims.popitem(last=False)
        old.close()
    return True


def release_ports(ports) -> None:
    """Give back the claims of `ports` (a deployment that is closed no longer needs them)."""
    with _port_lock:
        for port in ports:
            claim = _port_claims.pop(port, None)
            if claim is not None:
                claim.close()


def allocate_ports(n: int, host: str = "127.0.0.1", *,
                   range_file: str = EPHEMERAL_RANGE_FILE) -> list[int]:
    """n distinct free TCP ports, not handed out recently by this process, and claimed
    against other grader processes on this host (`_claim`) until released.

    Why not bind port 0: the OS then picks from the ephemeral range, which is also where
    every outgoing connection (grader clients, proxies, the services' own calls) takes
    its local port, so one of them can grab the port between this check and the service
    binding it ("Address already in use" at start). Ports below the ephemeral range are
    never taken implicitly. Port 0 remains the fallback when that range is unknown or
    exhausted."""
    with _port_lock:
        ports: list[int] = []
        rng = port_range(range_file)
        if rng is not None:
            low, high = rng
            tries = 0
            while len(ports) < n and tries < 50 * n + 100:
                tries += 1
                port = _port_rng.randint(low, high)
                if port in ports or port in _recent_ports or not _bindable(host, port) \
                        or not _claim(port):
                    continue
                ports.append(port)
        socks = []
        try:
            while len(ports) < n:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind((host, 0))
                socks.append(s)
                port = s.getsockname()[1]
                if port not in _recent_ports and port not in ports and _claim(port):
                    ports.append(port)
                if len(socks) > n + 200:
                    raise RuntimeError("could not allocate free ports")
        finally:
            for s in socks:
                s.close()
        _recent_ports.extend(ports)
        del _recent_ports[:-4096]
        return ports


def _clamp(limit: int, kind: int) -> tuple[int, int]:
    _soft, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    return limit, (limit if hard == resource.RLIM_INFINITY else hard)


def _make_preexec():
    limits = [(resource.RLIMIT_CPU, _clamp(CPU_LIMIT_S, resource.RLIMIT_CPU)),
              (resource.RLIMIT_AS, _clamp(ADDRESS_SPACE_BYTES, resource.RLIMIT_AS)),
              (resource.RLIMIT_NOFILE, _clamp(OPEN_FILES, resource.RLIMIT_NOFILE))]

    def preexec() -> None:   # runs in the child between fork and exec: no allocation-heavy work
        for kind, (soft, hard) in limits:
            try:
                resource.setrlimit(kind, (soft, hard))
            except (ValueError, OSError):
                pass
    return preexec


class _Capture:
    """Drains one pipe into lines, keeping at most `cap` bytes; the rest is counted."""

    def __init__(self, pipe, cap: int, sink: list[str], lock: threading.Lock):
        self.pipe, self.cap, self.sink, self.lock = pipe, cap, sink, lock
        self.kept = 0
        self.dropped = 0
        self.thread = threading.Thread(target=self._run, daemon=True, name="fd-capture")
        self.thread.start()

    def _emit(self, raw: bytes) -> None:
        if self.kept + len(raw) > self.cap:
            if self.kept <= self.cap:
                with self.lock:
                    self.sink.append(f"[faultdrill: output over {self.cap} bytes, rest dropped]")
                self.kept = self.cap + 1
            self.dropped += len(raw)
            return
        self.kept += len(raw)
        with self.lock:
            self.sink.append(raw.rstrip(b"\r").decode("utf-8", "replace"))

    def _run(self) -> None:
        pending = b""
        fd = self.pipe.fileno()
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._emit(line[:MAX_LINE_BYTES])
                if len(pending) > MAX_LINE_BYTES:
                    self._emit(pending[:MAX_LINE_BYTES])
                    pending = b""
        except (OSError, ValueError):
            pass
        if pending:
            self._emit(pending)

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)


class _Service:
    def __init__(self, role: str, endpoint: Endpoint, memdir: Path):
        self.role, self.endpoint, self.memdir = role, endpoint, memdir
        self.proc: subprocess.Popen | None = None
        self.last_env: dict[str, str | None] | None = None
        self.captures: list[_Capture] = []
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.run_start: dict[str, int] = {"stdout": 0, "stderr": 0}
        self.out_lock = threading.Lock()
        self.lock = threading.RLock()
        self.pgids: set[int] = set()
        self.paused = False
        self.strays: list[int] = []      # processes found alive after their service exited


def _proc_table() -> list[tuple[int, str, int]] | None:
    """(pid, state, pgrp) of every process, from /proc; None where /proc is unavailable."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    table = []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) >= 3:
            table.append((int(name), fields[0].decode(), int(fields[2])))
    return table


def _has_env_marker(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return marker in f.read().split(b"\0")
    except OSError:
        return False


class ProcessDeployment(Deployment):
    def __init__(self, submission: Submission, base_env: dict[str, dict[str, str]], *,
                 host: str = "127.0.0.1", output_cap: int = OUTPUT_CAP_BYTES,
                 ports: dict[str, tuple[int, int]] | None = None):
        self.submission = submission
        self.host = host
        self.output_cap = output_cap
        self.base_env = {role: dict(base_env.get(role, {})) for role in ROLES}
        for role, env in self.base_env.items():
            self._check_env_keys(env, f"base_env[{role!r}]")
        self.tmp = Path(tempfile.mkdtemp(prefix=f"faultdrill-{os.getpid()}-"))
        self.home = self.tmp / "home"
        self.home.mkdir()
        # Fixed ports (for `faultdrill up`, where people type them) or fresh free ones.
        free = allocate_ports(2 * len(ROLES), host) if not ports else []
        self._claimed_ports = list(free)
        self.services: dict[str, _Service] = {}
        for i, role in enumerate(ROLES):
            memdir = self.tmp / "memory" / role
            memdir.mkdir(parents=True)
            tcp, http = ports[role] if ports else (free[2 * i], free[2 * i + 1])
            ep = Endpoint(role, host, tcp, http)
            self.services[role] = _Service(role, ep, memdir)
        self._closed = False

    # --- helpers ---
    def _svc(self, role: str) -> _Service:
        try:
            return self.services[role]
        except KeyError:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}") from None

    @staticmethod
    def _check_env_keys(env: dict, where: str) -> None:
        bad = sorted(k for k in env if k not in SPEC_ENV_VARS and k not in PASSTHROUGH_ENV)
        if bad:
            raise ValueError(f"{where}: {bad} are not SPEC §2 variables; a grader sets nothing else")

    def _build_env(self, svc: _Service, extra: dict[str, str | None]) -> dict[str, str]:
        env: dict[str, str | None] = {
            "PATH": os.environ.get("PATH") or DEFAULT_PATH, "HOME": str(self.home),
            "LANG": "C.UTF-8", "TZ": "UTC", "PYTHONUNBUFFERED": "1",
            "FD_ROLE": svc.role, "FD_LISTEN_HOST": svc.endpoint.host,
            "FD_LISTEN_PORT": str(svc.endpoint.port), "FD_HTTP_PORT": str(svc.endpoint.http_port),
            "FD_MEMORY_DIR": str(svc.memdir),
        }
        env.update(self.base_env[svc.role])
        env.update(extra)
        return {k: v for k, v in env.items() if v is not None}

    def _marker(self, svc: _Service) -> bytes:
        return b"FD_MEMORY_DIR=" + str(svc.memdir).encode()

    def _tail(self, svc: _Service, n: int = 30) -> list[str]:
        with svc.out_lock:
            err = svc.lines["stderr"][svc.run_start["stderr"]:]
            out = svc.lines["stdout"][svc.run_start["stdout"]:]
        return [f"stderr| {line}" for line in err[-n:]] + [f"stdout| {line}" for line in out[-n // 3:]]

    def _signal_group(self, svc: _Service, sig: int) -> None:
        for pgid in list(svc.pgids):
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def _group_members(self, svc: _Service, *, include_escaped: bool) -> list[int]:
        table = _proc_table()
        me = os.getpid()
        if table is None:   # no /proc: probe the groups themselves
            alive = []
            for pgid in svc.pgids:
                try:
                    os.killpg(pgid, 0)
                    alive.append(pgid)
                except (ProcessLookupError, PermissionError):
                    pass
            return alive
        marker = self._marker(svc)
        found = []
        for pid, state, pgrp in table:
            if pid == me or state in ("Z", "X"):
                continue
            if pgrp in svc.pgids or (include_escaped and _has_env_marker(pid, marker)):
                found.append(pid)
        return found

    def _reap_leftovers(self, svc: _Service, timeout: float = 3.0) -> tuple[list[int], list[int]]:
        """SIGKILL every remaining process of the service; (found, still alive after)."""
        found = self._group_members(svc, include_escaped=True)
        if not found:
            return [], []
        svc.strays.extend(p for p in found if p not in svc.strays)
        self._signal_group(svc, signal.SIGKILL)
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + timeout
        alive = found
        while time.monotonic() < deadline:
            alive = [p for p in self._group_members(svc, include_escaped=True) if p in found]
            if not alive:
                break
            time.sleep(0.05)
        return found, alive

    # --- Deployment API ---
    def endpoint(self, role: str) -> Endpoint:
        return self._svc(role).endpoint

    def start(self, role: str, env: dict[str, str] | None = None, *, wait: bool = True,
              timeout: float = 10.0) -> None:
        svc = self._svc(role)
        extra = dict(env or {})
        self._check_env_keys(extra, "start env")
        with svc.lock:
            if svc.proc is not None and svc.proc.poll() is None:
                raise RuntimeError(f"{role} is already running (pid {svc.proc.pid})")
            if svc.proc is not None:
                self._finish_run(svc)
            full_env = self._build_env(svc, extra)
            with svc.out_lock:
                for stream in ("stdout", "stderr"):
                    svc.run_start[stream] = len(svc.lines[stream])
            argv = self.submission.command(role)
            try:
                proc = subprocess.Popen(
                    argv, cwd=str(self.submission.root), env=full_env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                    preexec_fn=_make_preexec(), close_fds=True)
            except OSError as exc:
                raise StartError(role, f"could not execute {argv!r}: {exc}") from None
            svc.proc = proc
            svc.last_env = extra
            svc.paused = False
            svc.pgids.add(proc.pid)
            svc.captures = [_Capture(proc.stdout, self.output_cap, svc.lines["stdout"], svc.out_lock),
                            _Capture(proc.stderr, self.output_cap, svc.lines["stderr"], svc.out_lock)]
        if wait:
            self._wait_started(svc, timeout)

    def _wait_started(self, svc: _Service, timeout: float) -> None:
        ep, proc = svc.endpoint, svc.proc
        deadline = time.monotonic() + timeout
        tcp_ok, http_desc = False, "was not reached"
        while True:
            rc = proc.poll()
            if rc is not None:
                time.sleep(0.1)   # let the reader threads collect the last words
                self._finish_run(svc)
                raise StartError(svc.role, f"exited with status {rc} before it was started "
                                 f"(TCP {ep.addr}, HTTP /livez on port {ep.http_port})",
                                 self._tail(svc), exit_code=rc)
            try:
                with socket.create_connection((ep.host, ep.port), timeout=0.3):
                    tcp_ok = True
            except OSError:
                tcp_ok = False
            if tcp_ok:
                try:
                    status, _, _ = http_get(ep.host, ep.http_port, "/livez", timeout=0.5)
                    http_desc = f"answered {status}"
                    if status == 200:
                        return
                except (OSError, Exception) as exc:   # noqa: BLE001 - any failure means "not yet"
                    http_desc = f"failed ({type(exc).__name__}: {exc})"
            if time.monotonic() >= deadline:
                tail = self._tail(svc)
                self.kill(svc.role)
                self._finish_run(svc)
                what = (f"TCP port {ep.addr} accepts connections but GET /livez on port "
                        f"{ep.http_port} {http_desc}" if tcp_ok else
                        f"TCP port {ep.addr} is not accepting connections")
                raise StartError(svc.role, f"not started within {timeout:.1f} s: {what}; "
                                 "the process was killed", tail)
            time.sleep(0.05)

    def _finish_run(self, svc: _Service) -> None:
        """After the main process exited: kill what it left in its group, drain readers."""
        _found, alive = self._reap_leftovers(svc, timeout=2.0)
        if not alive and svc.proc is not None and svc.proc.poll() is not None:
            svc.pgids.clear()   # the group is gone: never signal a recycled process group id
        for cap in svc.captures:
            cap.join(2.0)

    def signal_term(self, role: str) -> None:
        svc = self._svc(role)
        if svc.proc is not None and svc.proc.poll() is None:
            try:
                svc.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            if svc.paused:
                self.resume(role)

    def wait(self, role: str, timeout: float) -> int | None:
        svc = self._svc(role)
        if svc.proc is None:
            return None
        try:
            return svc.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, role: str, *, grace: float = 5.0) -> int | None:
        svc = self._svc(role)
        with svc.lock:
            if svc.proc is None:
                return None
            if svc.proc.poll() is None:
                self.signal_term(role)
                if self.wait(role, grace) is None:
                    self._signal_group(svc, signal.SIGKILL)
                    self.wait(role, 5.0)
            self._finish_run(svc)
            svc.paused = False
            return svc.proc.poll()

    def kill(self, role: str) -> None:
        svc = self._svc(role)
        self._signal_group(svc, signal.SIGKILL)
        svc.paused = False
        if svc.proc is not None:
            self.wait(role, 5.0)

    def pause(self, role: str) -> None:
        svc = self._svc(role)
        self._signal_group(svc, signal.SIGSTOP)
        svc.paused = True

    def resume(self, role: str) -> None:
        svc = self._svc(role)
        self._signal_group(svc, signal.SIGCONT)
        svc.paused = False

    def restart(self, role: str, *, timeout: float = 10.0) -> None:
        svc = self._svc(role)
        self.stop(role)
        self.start(role, svc.last_env, timeout=timeout)

    def running(self, role: str) -> bool:
        proc = self._svc(role).proc
        return proc is not None and proc.poll() is None

    def exit_code(self, role: str) -> int | None:
        proc = self._svc(role).proc
        return None if proc is None else proc.poll()

    def pid(self, role: str) -> int | None:
        proc = self._svc(role).proc
        return None if proc is None else proc.pid

    # --- memory ---
    def memory_dir(self, role: str) -> Path:
        return self._svc(role).memdir

    def _mem_path(self, role: str, relpath: str) -> Path:
        base = self._svc(role).memdir
        path = (base / relpath).resolve()
        if path != base and base not in path.parents:
            raise ValueError(f"{relpath!r} is outside the memory directory of {role}")
        return path

    def memory_files(self, role: str) -> list[str]:
        base = self._svc(role).memdir
        out = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                out.append(str((Path(dirpath) / name).relative_to(base)))
        return sorted(out)

    def read_memory(self, role: str, relpath: str) -> bytes:
        return self._mem_path(role, relpath).read_bytes()

    def write_memory(self, role: str, relpath: str, data: bytes) -> None:
        path = self._mem_path(role, relpath)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def make_unreadable(self, role: str, relpath: str) -> None:
        path = self._mem_path(role, relpath)
        if path.is_dir():
            return
        if path.exists() or path.is_symlink():
            path.unlink()
        path.mkdir(parents=True)
        (path / "unreadable").write_bytes(b"faultdrill: this record was replaced by a directory\n")

    def place_file(self, role: str, name: str, data: bytes, *, mode: int = 0o444) -> str:
        """Write a file for `role` (e.g. a TLS certificate) under the deployment's own
        temporary directory and return its absolute path, as the service will see it."""
        svc = self._svc(role)
        base = (self.tmp / "files" / svc.role).resolve()
        path = (base / name).resolve()
        if base not in path.parents:
            raise ValueError(f"{name!r} is outside the files directory of {role}")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.chmod(0o600)
        path.write_bytes(data)
        path.chmod(mode)
        return str(path)

    # --- output ---
    def logs(self, role: str, stream: str = "stderr", *, current_run: bool = False) -> list[str]:
        if stream not in ("stdout", "stderr"):
            raise ValueError("stream must be 'stdout' or 'stderr'")
        svc = self._svc(role)
        with svc.out_lock:
            start = svc.run_start[stream] if current_run else 0
            return list(svc.lines[stream][start:])

    # --- teardown ---
    def close(self) -> CleanupReport:
        report = CleanupReport()
        if self._closed:
            return report
        self._closed = True
        for role, svc in self.services.items():
            if svc.proc is None:
                continue
            try:
                if svc.proc.poll() is None:
                    self.signal_term(role)
                    if self.wait(role, 1.0) is None:
                        self._signal_group(svc, signal.SIGKILL)
                        self.wait(role, 5.0)
                report.stopped[role] = svc.proc.poll()
                _found, alive = self._reap_leftovers(svc)
                report.stray_pids += svc.strays
                report.survivors += alive
                for cap in svc.captures:
                    cap.join(2.0)
                for pipe in (svc.proc.stdout, svc.proc.stderr):
                    if pipe is not None:
                        pipe.close()
            except Exception as exc:   # noqa: BLE001 - report, keep cleaning the others
                report.errors.append(f"{role}: {type(exc).__name__}: {exc}")
        release_ports(self._claimed_ports)
        for dirpath, dirs, _files in os.walk(self.tmp):
            for d in dirs:
                try:
                    os.chmod(os.path.join(dirpath, d), 0o700)
                except OSError:
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.tmp.exists():
            report.errors.append(f"could not remove {self.tmp}")
        else:
            report.removed_dirs.append(str(self.tmp))
        return report


class ProcessDriver(Driver):
    name = "process"

    def __init__(self, *, host: str = "127.0.0.1", output_cap: int = OUTPUT_CAP_BYTES,
                 ports: dict[str, tuple[int, int]] | None = None):
        self.host = host
        self.output_cap = output_cap
        self.ports = ports

    def deploy(self, submission: Submission, *,
               base_env: dict[str, dict[str, str]]) -> ProcessDeployment:
        return ProcessDeployment(submission, base_env, host=self.host, output_cap=self.output_cap,
                                 ports=self.ports)
