"""ProcessDriver: each service of a submission as a local, sandboxed process.

Why a sandbox: a submission is untrusted code (docs/THREAT_MODEL.md). By default every
service runs inside its own bubblewrap sandbox (`graders.sandbox.policy`): its own PID
namespace, an unprivileged uid of the deployment's own with no capabilities and
no_new_privs, an allowlist file-system view (system and submission read-only, its memory
and home dirs writable, a private /tmp, the kit invisible) and resource limits. Each
service also sees only the SPEC §2 variables (so it cannot depend on the grader's
environment or read its secrets), and has its output captured with a size cap by reader
threads (so a flood cannot exhaust the grader).

`close()` proves that nothing survives: the sandbox's namespace init has been reaped and
no process of that PID namespace remains (a process cannot leave its PID namespace,
whatever it does with sessions, groups or its environment); in root mode a second proof is
that no process runs with the deployment's uid.

Signals follow `docker stop` semantics: SIGTERM goes to the service's main process only
(a wrapper script must `exec` its server), SIGKILL ends the whole sandbox (its namespace
init), SIGSTOP / SIGCONT go to every process of the sandbox. Exit codes are Python's:
negative N means "killed by signal N".

Unsandboxed (`sandbox=False`, the CLI's --unsafe-no-sandbox): each service is its own
process group, signals go to the group, leftovers are found by group and by the unique
FD_MEMORY_DIR in their environment; nothing stops a candidate that tries to escape.
"""
from __future__ import annotations

import collections
import json
import os
import queue
import select
import random
import resource
import shutil
import signal
import socket
import stat
import sys
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from .. import safefs
from .. import sandbox as sandboxing
from ..client import http_get
from ..manifest import ROLES, Submission
from ..sandbox import cgroups, layout, procs, reaper, seccomp, uids
from ..sandbox.policy import Limits, SandboxSpec, bwrap_argv, describe
from .base import (PASSTHROUGH_ENV, SPEC_ENV_VARS, CleanupReport, Deployment, Driver, Endpoint,
                   StartError, Wrapped)

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


def _make_preexec(limits_spec: Limits | None = None, join_fds: list[int] = ()):
    limits = [(resource.RLIMIT_CPU, _clamp(CPU_LIMIT_S, resource.RLIMIT_CPU)),
              (resource.RLIMIT_AS, _clamp(ADDRESS_SPACE_BYTES, resource.RLIMIT_AS)),
              (resource.RLIMIT_NOFILE, _clamp(OPEN_FILES, resource.RLIMIT_NOFILE))]
    if limits_spec is not None:
        limits = [(resource.RLIMIT_CPU, _clamp(limits_spec.cpu_seconds, resource.RLIMIT_CPU)),
                  (resource.RLIMIT_AS, _clamp(limits_spec.address_space_bytes, resource.RLIMIT_AS)),
                  (resource.RLIMIT_NOFILE, _clamp(limits_spec.open_files, resource.RLIMIT_NOFILE)),
                  (resource.RLIMIT_FSIZE, _clamp(limits_spec.file_size_bytes, resource.RLIMIT_FSIZE))]
        if limits_spec.processes is not None:
            # Counted per uid: the deployment's own uid, so this bounds the deployment.
            limits.append((resource.RLIMIT_NPROC, _clamp(limits_spec.processes, resource.RLIMIT_NPROC)))

    def preexec() -> None:   # runs in the child between fork and exec: no allocation-heavy work
        for fd in join_fds:    # the deployment's cgroup, before anything can fork outside it
            os.write(fd, b"0")
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
        self.next_wrap: list[str] | None = None   # argv prefix for the next start only
        # Sandboxed runs: bwrap's namespace init (host pid), its PID namespace inode, and
        # the service's main process (the init's only child; host pid).
        self.init_pid: int | None = None
        self.ns_inode: int | None = None
        self.main_pid: int | None = None
        # Namespaces not yet proven empty, each held open (procs.NamespaceHandle).
        self.namespaces: list[procs.NamespaceHandle] = []


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


#: How long a sandbox may take to report its namespace (bwrap --info-fd).
SANDBOX_INFO_TIMEOUT_S = 10.0
SPAWN_TIMEOUT_S = 60.0


def seccomp_pipe() -> int | None:
    """A pipe's read end holding the seccomp filter for bwrap's --seccomp (None where the
    filter does not exist for this architecture)."""
    if not seccomp.supported():
        return None
    r, w = os.pipe()
    try:
        os.write(w, seccomp.program())   # a few hundred bytes: far below a pipe's buffer
    finally:
        os.close(w)
    return r


class _Spawner:
    """Runs every sandbox's Popen on one long-lived thread of this process, inside the
    grader's own PID namespace (`graders.sandbox.reaper`).

    Why one thread: bwrap's --die-with-parent is PR_SET_PDEATHSIG, which fires when the
    *thread* that forked bwrap exits, not the process. Checks run on short-lived threads,
    so a service started by a check would be SIGKILLed the moment that check returned.
    The spawner thread lives as long as the grader (a daemon thread: it ends with the
    interpreter, and then every sandbox dies, which is the point).

    Why a PID namespace as well: a parent-death signal is set by bwrap milliseconds after
    the fork, so a grader killed in that window would leave the sandbox running. The
    spawner thread's first act is `reaper.enter()`; from then on every bwrap it forks is
    in a namespace whose init (the reaper) exits with the grader, and the kernel then
    kills them all. Where that is refused, spawning goes on without it and `describe`
    says so."""

    def __init__(self):
        self._lock = threading.Lock()
        self._jobs: "queue.SimpleQueue" = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.reaper = None
        self.without_reaper: str | None = None     # why there is none (None: not tried yet)
        self._try_reaper = True

    def _loop(self) -> None:
        if self._try_reaper:
            self._try_reaper = False
            try:
                self.reaper, self.without_reaper = reaper.enter()
            except reaper.Unusable as exc:
                # This thread's next child would become the namespace's init: retire it;
                # `run` starts a plain one (whose children are in the grader's namespace).
                self.without_reaper = str(exc)
                return
        while True:
            fn, box, done = self._jobs.get()
            try:
                if self.reaper is not None and not self.reaper.alive:
                    raise OSError("the grader's sandbox namespace is gone (its reaper exited)")
                box["value"] = fn()
            except BaseException as exc:   # handed back to the caller
                box["exc"] = exc
            done.set()

    def run(self, fn):
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, daemon=True, name="fd-sandbox-spawner")
                self._thread.start()
        if threading.current_thread() is self._thread:
            return fn()
        box: dict = {}
        done = threading.Event()
        self._jobs.put((fn, box, done))
        deadline = time.monotonic() + SPAWN_TIMEOUT_S
        while not done.wait(0.5):
            with self._lock:
                if self._thread is not None and not self._thread.is_alive():
                    # retired before taking the job (see _loop): start a plain spawner
                    self._thread = threading.Thread(target=self._loop, daemon=True, name="fd-sandbox-spawner")
                    self._thread.start()
            if time.monotonic() >= deadline:
                raise OSError(f"starting the sandbox did not finish within {SPAWN_TIMEOUT_S:.0f} s")
        if "exc" in box:
            raise box["exc"]
        return box["value"]

    def describe(self) -> str:
        if self.reaper is not None:
            return self.reaper.describe()
        if self.without_reaper is None:
            return ("every sandbox in the grader's own PID namespace, killed with the grader "
                    "(set up with the first service)")
        return f"sandboxes in the grader's PID namespace: {self.without_reaper}"


_spawner = _Spawner()


def _exit_status(raw: int | None, sandboxed: bool) -> int | None:
    """A sandboxed service's status as Python reports a direct child's: bwrap exits
    128+N when the service (or the sandbox) was killed by signal N."""
    if raw is None or not sandboxed:
        return raw
    if 128 < raw < 128 + 65:
        return -(raw - 128)
    return raw


def sandbox_spec(submission: Submission, *, mode: str, uid: int, gid: int,
                 writable=(), readonly=(), limits: Limits | None = None) -> SandboxSpec:
    """The sandbox of one service of `submission` on this host (see graders.sandbox)."""
    system = layout.system_binds()
    prefix = layout.python_prefix()
    trees = [b.dest for b in system if b.kind == "ro-bind"] + ([prefix] if prefix else [])
    root = str(submission.root)
    inside_submission = [k for k in layout.kit_paths()
                         if k != root and k.startswith(root.rstrip("/") + "/")]
    return SandboxSpec(mode=mode, uid=uid, gid=gid, submission=root, system=system,
                       python_prefix=prefix, masks=layout.hidden_masks(trees),
                       submission_masks=tuple(inside_submission), writable=tuple(writable),
                       readonly=tuple(readonly), limits=limits or Limits())


#: Submission roots already looked at: does any entry deny "others" read access?
_closed_submissions: dict[str, bool] = {}


def _has_closed_entries(root: Path) -> bool:
    """True when some directory of `root` is not readable+searchable, or some file not
    readable, by others (so an unprivileged uid could not run the submission)."""
    for dirpath, _dirs, files in os.walk(root):
        for name in [dirpath, *(os.path.join(dirpath, f) for f in files)]:
            try:
                st = os.lstat(name)
            except OSError:
                continue
            need = 0o005 if stat.S_ISDIR(st.st_mode) else 0o004
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & need != need:
                return True
    return False


class ProcessDeployment(Deployment):
    def __init__(self, submission: Submission, base_env: dict[str, dict[str, str]], *,
                 host: str = "127.0.0.1", output_cap: int = OUTPUT_CAP_BYTES,
                 ports: dict[str, tuple[int, int]] | None = None, sandbox: bool = False):
        self.submission = submission
        self.host = host
        self.output_cap = output_cap
        self.base_env = {role: dict(base_env.get(role, {})) for role in ROLES}
        for role, env in self.base_env.items():
            self._check_env_keys(env, f"base_env[{role!r}]")
        self.sandboxed = bool(sandbox)
        self.mode = "none"
        self.uid = self.gid = None
        if self.sandboxed:
            found = sandboxing.probe()
            if not found.ok:
                raise sandboxing.SandboxUnavailable(found.reason)
            self.mode = found.mode
            if self.mode == "root":
                self.uid = self.gid = uids.pick_uid()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"faultdrill-{os.getpid()}-"))
        self.home = self.tmp / "home"
        self.home.mkdir()
        self._own(self.home)
        # Fixed ports (for `faultdrill up`, where people type them) or fresh free ones.
        free = allocate_ports(2 * len(ROLES), host) if not ports else []
        self._claimed_ports = list(free)
        self.services: dict[str, _Service] = {}
        for i, role in enumerate(ROLES):
            memdir = self.tmp / "memory" / role
            memdir.mkdir(parents=True)
            self._own(memdir)
            (self.tmp / "files" / role).mkdir(parents=True)
            tcp, http = ports[role] if ports else (free[2 * i], free[2 * i + 1])
            ep = Endpoint(role, host, tcp, http)
            self.services[role] = _Service(role, ep, memdir)
        self._closed = False
        self.cgroup: cgroups.DeploymentCgroup | None = None
        self.last_report: CleanupReport | None = None
        self.spec: SandboxSpec | None = None
        if self.sandboxed:
            self.spec = sandbox_spec(
                submission, mode=self.mode, uid=self.uid if self.uid is not None else os.getuid(),
                gid=self.gid if self.gid is not None else os.getgid(),
                writable=[str(self.home)], readonly=[],
                limits=Limits() if self.mode == "root" else Limits(processes=None))
            from dataclasses import replace
            self.spec = replace(self.spec, submission_src=self._readable_submission())
            if self.mode == "root":
                cgroups.sweep()
                self.cgroup = cgroups.create(f"{os.getpid()}-{self.uid}")

    def _readable_submission(self) -> str | None:
        """A copy of the submission the deployment's uid can read, when the original
        cannot be read by others (e.g. unpacked with umask 077): the sandbox binds it at
        the original path, so `{root}` and relative paths are unchanged. None when the
        original is readable as it is (the common case: nothing is copied)."""
        if self.uid is None:
            return None
        root = self.submission.root
        closed = _closed_submissions.get(str(root))
        if closed is None:
            closed = _closed_submissions[str(root)] = _has_closed_entries(root)
        if not closed:
            return None
        view = self.tmp / "submission-view"
        shutil.copytree(root, view, symlinks=True)
        for dirpath, dirs, files in os.walk(view):
            os.chmod(dirpath, 0o755)
            for f in files:
                path = os.path.join(dirpath, f)
                if not os.path.islink(path):
                    os.chmod(path, 0o755 if os.stat(path).st_mode & 0o100 else 0o644)
        return str(view)

    def sandbox_description(self) -> dict:
        """What the grade metadata says about how the services ran."""
        if self.spec is None:
            return describe(None, mode="none", reason="--unsafe-no-sandbox: the candidate ran "
                            "as the grader's user, with the grader's files, processes and network")
        out = describe(self.spec)
        out["limits"] = dict(out["limits"], **(self.cgroup.describe() if self.cgroup else {"cgroup": None}))
        return out

    def _own(self, path: Path) -> None:
        """Hand a directory the service writes to the deployment's uid (root mode)."""
        if self.uid is not None:
            os.chown(path, self.uid, self.gid)

    def _service_spec(self, svc: "_Service") -> SandboxSpec:
        from dataclasses import replace
        files = str(self.tmp / "files" / svc.role)
        wrap_dir = (str(self.tmp / "wrap" / svc.role),) if svc.next_wrap else ()
        return replace(self.spec, writable=(*self.spec.writable, str(svc.memdir), *wrap_dir),
                       readonly=(files,))

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

    def _main_pid(self, svc: _Service, timeout: float = 0.0) -> int | None:
        """The service's main process (host pid): the sandbox init's child, checked to be
        in the sandbox's namespace (never a recycled pid)."""
        if svc.main_pid is not None:
            if procs.pid_ns_inode(svc.main_pid) == svc.ns_inode:
                return svc.main_pid
            return None
        if svc.init_pid is None:
            return None
        deadline = time.monotonic() + timeout
        while True:
            kids = [k for k in procs.children_of(svc.init_pid)
                    if procs.pid_ns_inode(k) == svc.ns_inode]
            if kids:
                svc.main_pid = kids[0]
                return svc.main_pid
            if time.monotonic() >= deadline or svc.proc is None or svc.proc.poll() is not None:
                return None
            time.sleep(0.005)

    def _signal_group(self, svc: _Service, sig: int) -> None:
        if self.sandboxed:
            if svc.ns_inode is None or svc.init_pid is None:
                # No namespace report (bwrap failed or stalled): our direct child, the
                # outer bwrap, is still ours to kill; its init dies with it (--die-with-parent).
                if sig == signal.SIGKILL and svc.proc is not None and svc.proc.poll() is None:
                    svc.proc.kill()
                return
            if sig == signal.SIGKILL:
                procs.kill_namespace(svc.init_pid, svc.ns_inode)
            else:   # SIGSTOP / SIGCONT: every candidate process, not the sandbox's reaper
                procs.signal_members(svc.ns_inode, sig, exclude=(svc.init_pid,))
            return
        for pgid in list(svc.pgids):
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def _group_members(self, svc: _Service, *, include_escaped: bool) -> list[int]:
        if self.sandboxed:
            found: list[int] = []
            for ns in svc.namespaces:
                if ns.held:
                    found += procs.members(ns.inode)
            return found
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
        if not self.sandboxed:
            svc.strays.extend(p for p in found if p not in svc.strays)
        if self.sandboxed:
            for ns in svc.namespaces:
                if ns.held:
                    procs.kill_namespace(ns.init_pid, ns.inode)
        else:
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
            if svc.next_wrap:   # start_wrapped: a trusted wrapper as the service's parent
                argv = list(svc.next_wrap) + list(argv)
            info_r = info_w = filter_fd = None
            if self.sandboxed:
                info_r, info_w = os.pipe()
                filter_fd = seccomp_pipe()
                run_argv = bwrap_argv(self._service_spec(svc), argv, info_fd=info_w,
                                      seccomp_fd=filter_fd)
            else:
                run_argv = argv
            passed = tuple(fd for fd in (info_w, filter_fd) if fd is not None)
            join_fds = self.cgroup.open_join_fds() if self.cgroup is not None else []

            def spawn() -> subprocess.Popen:
                return subprocess.Popen(
                    run_argv, cwd=str(self.submission.root), env=full_env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                    preexec_fn=_make_preexec(self.spec.limits if self.spec else None, join_fds),
                    close_fds=True, pass_fds=passed)
            try:
                # Sandboxed: from the spawner thread (see _Spawner), never a check's thread.
                proc = _spawner.run(spawn) if self.sandboxed else spawn()
            except (OSError, subprocess.SubprocessError) as exc:
                for fd in join_fds:
                    os.close(fd)
                for fd in (info_r, info_w, filter_fd):
                    if fd is not None:
                        os.close(fd)
                raise StartError(role, f"could not execute {argv!r}: {exc}") from None
            for fd in (*join_fds, *([filter_fd] if filter_fd is not None else [])):
                os.close(fd)
            svc.init_pid = svc.ns_inode = svc.main_pid = None
            if info_w is not None:
                os.close(info_w)
                self._read_info(svc, info_r, proc)
            svc.proc = proc
            svc.last_env = extra
            svc.paused = False
            svc.pgids.add(proc.pid)
            svc.captures = [_Capture(proc.stdout, self.output_cap, svc.lines["stdout"], svc.out_lock),
                            _Capture(proc.stderr, self.output_cap, svc.lines["stderr"], svc.out_lock)]
        if wait:
            self._wait_started(svc, timeout)

    def _read_info(self, svc: _Service, fd: int, proc: subprocess.Popen) -> None:
        """bwrap's --info-fd report: the namespace init's host pid and the PID namespace.
        EOF without a report means bwrap failed (its stderr says why; the start then
        fails as an early exit)."""
        data = b""
        deadline = time.monotonic() + SANDBOX_INFO_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    break
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                data += chunk
                try:
                    info = json.loads(data)
                except ValueError:
                    continue
                # bwrap names its init in its own PID namespace (the reaper's): find it here
                svc.init_pid = procs.child_as_seen_here(proc.pid, int(info["child-pid"]))
                svc.ns_inode = int(info["pid-namespace"])
                if svc.init_pid is None:
                    svc.ns_inode = None
                    return
                svc.namespaces.append(procs.NamespaceHandle(svc.init_pid, svc.ns_inode))
                return
        finally:
            os.close(fd)

    def start_wrapped(self, role: str, wrap: list[str], env: dict[str, str] | None = None, *,
                      timeout: float = 10.0) -> Wrapped:
        svc = self._svc(role)
        out_dir = self.tmp / "wrap" / role
        out_dir.mkdir(parents=True, exist_ok=True)
        self._own(out_dir)
        output = out_dir / f"output-{len(list(out_dir.iterdir()))}"
        with svc.lock:
            svc.next_wrap = [str(output) if part == "{output}" else part for part in wrap]
            try:
                self.start(role, env, timeout=timeout)
            finally:
                svc.next_wrap = None
        return Wrapped(output=str(output), memory_dir=str(svc.memdir), cwd=str(self.submission.root))

    def _wait_started(self, svc: _Service, timeout: float) -> None:
        ep, proc = svc.endpoint, svc.proc
        deadline = time.monotonic() + timeout
        tcp_ok, http_desc = False, "was not reached"
        while True:
            rc = _exit_status(proc.poll(), self.sandboxed)
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
        if self.sandboxed and not alive and svc.proc is not None and svc.proc.poll() is not None:
            for ns in svc.namespaces:   # proven empty: let the kernel free the number
                ns.release()
            svc.namespaces = []
        if not alive and svc.proc is not None and svc.proc.poll() is not None:
            svc.pgids.clear()   # the group is gone: never signal a recycled process group id
        for cap in svc.captures:
            cap.join(2.0)

    def signal_term(self, role: str) -> None:
        self._signal_main(role, signal.SIGTERM)

    def signal_int(self, role: str) -> None:
        self._signal_main(role, signal.SIGINT)

    def _signal_main(self, role: str, signum: int) -> None:
        svc = self._svc(role)
        if svc.proc is not None and svc.proc.poll() is None:
            try:
                if self.sandboxed:
                    main = self._main_pid(svc, timeout=2.0)
                    if main is not None:
                        procs.send(main, svc.ns_inode, signum)
                else:
                    svc.proc.send_signal(signum)
            except ProcessLookupError:
                pass
            if svc.paused:
                self.resume(role)

    def wait(self, role: str, timeout: float) -> int | None:
        svc = self._svc(role)
        if svc.proc is None:
            return None
        try:
            return _exit_status(svc.proc.wait(timeout=timeout), self.sandboxed)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, role: str, *, grace: float = 5.0) -> int | None:
        svc = self._svc(role)
        with svc.lock:
            if svc.proc is None:
                return None
            if svc.proc.poll() is None:
                before = self._others(svc)
                self.signal_term(role)
                if self._wait_noting_strays(svc, grace, before) is None:
                    self._signal_group(svc, signal.SIGKILL)
                    self.wait(role, 5.0)
            self._finish_run(svc)
            svc.paused = False
            return _exit_status(svc.proc.poll(), self.sandboxed)

    def _others(self, svc: _Service) -> list[int]:
        """The sandbox's processes other than its init and the main process, provided
        the main process was still running after they were listed."""
        main = self._main_pid(svc) if self.sandboxed and svc.ns_inode is not None else None
        if main is None:
            return []
        sample = procs.members(svc.ns_inode, exclude=(svc.init_pid, main))
        return sample if procs.running_in(main, svc.ns_inode) else []

    def _wait_noting_strays(self, svc: _Service, timeout: float, before: list[int] = ()) -> int | None:
        """Wait for the service after SIGTERM. Sandboxed, the kernel kills whatever the
        service leaves in its namespace the moment it exits, so leftovers can only be seen
        while it drains: processes other than the main one that were still alive at the
        last look before it exited are recorded as strays (a note, never a score)."""
        if not self.sandboxed or svc.ns_inode is None:
            return self.wait(svc.role, timeout)
        deadline = time.monotonic() + timeout
        others: list[int] = list(before)    # the last look (the one before SIGTERM at first)
        while True:
            rc = svc.proc.poll()
            if rc is not None:
                svc.strays.extend(p for p in others if p not in svc.strays)
                return _exit_status(rc, True)
            if svc.main_pid is not None:
                main = svc.main_pid
                sample = procs.members(svc.ns_inode, exclude=(svc.init_pid, main))
                if procs.running_in(main, svc.ns_inode):
                    others = sample
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

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
        return None if proc is None else _exit_status(proc.poll(), self.sandboxed)

    def pid(self, role: str) -> int | None:
        """The host pid of the service's main process (inside a sandbox: the process
        the manifest's command became, not bwrap)."""
        svc = self._svc(role)
        if svc.proc is None:
            return None
        if self.sandboxed:
            return self._main_pid(svc, timeout=2.0)
        return svc.proc.pid

    # --- memory ---
    def memory_dir(self, role: str) -> Path:
        return self._svc(role).memdir

    def _mem_path(self, role: str, relpath: str) -> Path:
        base = self._svc(role).memdir
        path = (base / relpath).resolve()
        if path != base and base not in path.parents:
            # An OSError (and a ValueError): a link the candidate planted reads as an
            # unreadable file, the candidate's failure, never a grader error.
            raise safefs.UnsafePath(f"{relpath!r} is outside the memory directory of {role}")
        return path

    def memory_files(self, role: str) -> list[str]:
        base = self._svc(role).memdir
        out = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                out.append(str((Path(dirpath) / name).relative_to(base)))
        return sorted(out)

    # The memory directory is the candidate's: every access below it goes through
    # graders.safefs (no link is ever followed), and what the grader creates there is
    # handed to the deployment's uid, so the service can replace or quarantine it.
    def read_memory(self, role: str, relpath: str) -> bytes:
        self._mem_path(role, relpath)
        return safefs.read_beneath(self._svc(role).memdir, relpath)

    def _give(self, base: Path, relpath: str) -> None:
        if self.uid is None:
            return
        parts = [p for p in Path(relpath).parts if p not in ("", ".")]
        for i in range(1, len(parts) + 1):
            fd = safefs.open_beneath(base, "/".join(parts[:i]), os.O_RDONLY | os.O_NONBLOCK)
            try:
                os.fchown(fd, self.uid, self.gid)
            finally:
                os.close(fd)

    def write_memory(self, role: str, relpath: str, data: bytes) -> None:
        self._mem_path(role, relpath)
        base = self._svc(role).memdir
        safefs.write_beneath(base, relpath, data)
        self._give(base, relpath)

    def make_unreadable(self, role: str, relpath: str) -> None:
        self._mem_path(role, relpath)
        base = self._svc(role).memdir
        parts = [p for p in Path(relpath).parts if p not in ("", ".")]
        parent = "/".join(parts[:-1])
        dfd = (safefs.open_beneath(base, parent, os.O_RDONLY | os.O_DIRECTORY, make_parents=True)
               if parent else os.open(base, os.O_RDONLY | os.O_DIRECTORY))
        try:
            try:
                os.unlink(parts[-1], dir_fd=dfd)          # a link is removed as a link
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                return                                    # already a directory
            os.mkdir(parts[-1], 0o755, dir_fd=dfd)
        finally:
            os.close(dfd)
        safefs.write_beneath(base, f"{relpath}/unreadable",
                             b"faultdrill: this record was replaced by a directory\n")
        self._give(base, f"{relpath}/unreadable")

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
        if self.uid is not None:      # a grader-only directory: no candidate link here
            os.chown(path, self.uid, self.gid)
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
                    before = self._others(svc)
                    self.signal_term(role)
                    if self._wait_noting_strays(svc, 1.0, before) is None:
                        self._signal_group(svc, signal.SIGKILL)
                        self.wait(role, 5.0)
                report.stopped[role] = _exit_status(svc.proc.poll(), self.sandboxed)
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
        if self.sandboxed:
            self._prove_gone(report)
        release_ports(self._claimed_ports)
        # Candidate-touched tree: removed without following a link or chmod-ing by name.
        report.errors += safefs.remove_tree(self.tmp)
        if self.tmp.exists():
            report.errors.append(f"could not remove {self.tmp}")
        else:
            report.removed_dirs.append(str(self.tmp))
        self.last_report = report
        return report


    def _prove_gone(self, report: CleanupReport) -> None:
        """Every sandbox's outer bwrap has been reaped (so its namespace init is gone) and
        no process of any of its PID namespaces remains; in root mode also no process
        runs with the deployment's uid. Anything else is a survivor."""
        for role, svc in self.services.items():
            if svc.proc is not None and svc.proc.poll() is None:
                report.survivors.append(svc.proc.pid)
                report.errors.append(f"{role}: the sandbox of {role} did not exit")
            for ns in svc.namespaces:
                left = procs.wait_gone(ns.inode, 2.0) if ns.held else []
                if left:
                    report.survivors += left
                    report.errors.append(f"{role}: processes {left} of its sandbox survived")
                else:
                    ns.release()
        if self.uid is not None:
            left = uids.processes_of_uid(self.uid)
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if left:
                time.sleep(0.2)
                still = uids.processes_of_uid(self.uid)
                report.stray_pids += [p for p in left if p not in report.stray_pids]
                if still:
                    report.survivors += still
                    report.errors.append(f"processes {still} of uid {self.uid} survived")
        if self.cgroup is not None:
            left = [p for p in self.cgroup.members()]
            if left:
                report.survivors += [p for p in left if p not in report.survivors]
                report.errors.append(f"processes {left} are still in the deployment's cgroup")
            else:
                report.errors += self.cgroup.remove()
        report.proven_gone = not report.survivors and all(
            svc.proc is None or svc.proc.poll() is not None for svc in self.services.values())


class ProcessDriver(Driver):
    name = "process"

    def __init__(self, *, host: str = "127.0.0.1", output_cap: int = OUTPUT_CAP_BYTES,
                 ports: dict[str, tuple[int, int]] | None = None, sandbox: bool | None = None):
        """`sandbox`: True requires the sandbox (SandboxUnavailable when it cannot be set
        up), False runs unsandboxed, None follows graders.sandbox.enabled_by_default()."""
        self.host = host
        self.output_cap = output_cap
        self.ports = ports
        self.sandbox = sandboxing.enabled_by_default() if sandbox is None else bool(sandbox)
        self._deployments: list[ProcessDeployment] = []

    def close(self) -> CleanupReport:
        """Close every deployment still open (a check that forgot one must not leave a
        sandbox running) and sum up what every close found: the grade writes its
        reports only when `proven_gone` is not False and there are no survivors."""
        total = CleanupReport()
        proofs = []
        for dep in self._deployments:
            if not dep._closed:
                dep.close()
            report = dep.last_report
            if report is None:
                continue
            total.stray_pids += report.stray_pids
            total.survivors += report.survivors
            total.errors += report.errors
            proofs.append(report.proven_gone)
        if self.sandbox:
            total.proven_gone = not total.survivors and all(p is not False for p in proofs)
        return total

    def survivors(self) -> list[int]:
        """Candidate processes that outlived their deployment's close (should be none)."""
        out: list[int] = []
        for dep in self._deployments:
            if dep.last_report is not None:
                out += dep.last_report.survivors
        return out

    def sandbox_description(self) -> dict:
        if not self.sandbox:
            return describe(None, mode="none", reason="--unsafe-no-sandbox: the candidate ran "
                            "as the grader's user, with the grader's files, processes and network")
        found = sandboxing.probe()
        if not found.ok:
            return describe(None, mode="none", reason=found.reason)
        from graders.sandbox.entry import grade_namespace
        ns = grade_namespace()
        network = ({"network": "the grade's own network namespace (loopback only); temporary "
                               "files on a private tmpfs"} if ns else
                   {"network": "the grader's network namespace (this run did not enter one of "
                               "its own: it was started in-process, not as `faultdrill grade`)"})
        return describe(sandbox_spec(_DescribeOnly, mode=found.mode, uid=0 if found.mode != "root" else uids.UID_BASE,
                                     gid=0, limits=Limits() if found.mode == "root" else Limits(processes=None))) | (
            {"uid": f"one of {uids.UID_BASE}..{uids.UID_BASE + uids.UID_SPAN - 1}, per deployment"}
            if found.mode == "root" else {}) | network | {"lifetime": _spawner.describe()}

    def deploy(self, submission: Submission, *,
               base_env: dict[str, dict[str, str]]) -> ProcessDeployment:
        dep = ProcessDeployment(submission, base_env, host=self.host, output_cap=self.output_cap,
                                ports=self.ports, sandbox=self.sandbox)
        self._deployments.append(dep)
        return dep


class _DescribeOnly:
    """A stand-in submission for describing the sandbox before any is deployed."""
    root = Path("/submission")
