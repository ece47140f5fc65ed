"""The driver interface: how graders start, stop, damage and inspect a submission.

Why an abstract interface: checks are written once and run against local processes or
containers alike; everything a check may do to a service (signals, pause, memory damage,
log capture) goes through `Deployment`, so a driver is the only place that knows how.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from ..manifest import ROLES, Submission

__all__ = ["ROLES", "SPEC_ENV_VARS", "PASSTHROUGH_ENV", "Endpoint", "StartError",
           "CleanupReport", "Deployment", "Driver", "Wrapped", "WrapUnsupported"]

#: Every variable of SPEC §2: the only FD_* variables a grader may set.
SPEC_ENV_VARS = frozenset({
    "FD_ROLE", "FD_LISTEN_HOST", "FD_LISTEN_PORT", "FD_HTTP_PORT", "FD_TOKEN", "FD_MEMORY_DIR",
    "FD_MEMORY_RETENTION", "FD_COLLECTOR_ADDR", "FD_ANALYZER_ADDR", "FD_REPORTER_ADDR",
    "FD_ROUTES", "FD_ATTEMPT_TIMEOUT_MS", "FD_TASK_DEADLINE_MS", "FD_RETRY_MAX_ATTEMPTS",
    "FD_RETRY_BASE_MS", "FD_RETRY_CAP_MS", "FD_QUEUE_SIZE", "FD_WORKERS", "FD_MAX_CONNECTIONS",
    "FD_IDLE_TIMEOUT_MS", "FD_SHUTDOWN_GRACE_MS", "FD_LOG_LEVEL", "FD_TLS_CERT", "FD_TLS_KEY",
    "FD_TLS_CA", "FD_TLS_CLIENT_AUTH",
})
#: The non-SPEC variables that survive scrubbing (SPEC §2).
PASSTHROUGH_ENV = frozenset({"PATH", "HOME", "LANG", "TZ", "PYTHONUNBUFFERED"})


@dataclass(frozen=True)
class Endpoint:
    role: str
    host: str
    port: int
    http_port: int

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"


class StartError(Exception):
    """A service did not become started (SPEC §3) in time, or exited while starting."""

    def __init__(self, role: str, message: str, output_tail: list[str] | None = None,
                 exit_code: int | None = None):
        self.role = role
        self.message = message
        self.output_tail = list(output_tail or [])
        self.exit_code = exit_code
        tail = "\n".join(f"    {line}" for line in self.output_tail[-20:])
        super().__init__(f"{role}: {message}" + (f"\n  last output:\n{tail}" if tail else ""))


class WrapUnsupported(Exception):
    """This driver cannot start a service under a wrapper program (e.g. strace)."""


@dataclass(frozen=True)
class Wrapped:
    """What `Deployment.start_wrapped` tells the check: where the wrapper's output file
    is on the grader's side once the service has stopped, and the service's memory
    directory and working directory as the service itself sees them (paths in the
    wrapper's output are in the service's view)."""
    output: str
    memory_dir: str
    cwd: str


@dataclass
class CleanupReport:
    """What `Deployment.close()` found and did; `ok` is False if anything survived."""
    stopped: dict[str, int | None] = field(default_factory=dict)
    stray_pids: list[int] = field(default_factory=list)      # found after the services exited
    survivors: list[int] = field(default_factory=list)       # still alive after SIGKILL
    removed_dirs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: True when the driver proved every candidate process gone (a sandbox's PID
    #: namespace is empty, a container removed); None when it cannot prove it
    #: (unsandboxed processes: a daemon that escaped every scan is not seen).
    proven_gone: bool | None = None

    @property
    def ok(self) -> bool:
        return not self.survivors and not self.errors


class Deployment(ABC):
    """One submission's four services; ports and memory dirs are fixed at creation."""

    #: The address at which the services reach the grader's host (where fault proxies
    #: must listen): loopback for local processes, a network gateway for containers.
    proxy_host: str = "127.0.0.1"
    #: SPEC §2 variables this driver always sets itself, whatever a check asks for (the
    #: Docker driver decides where a container listens and stores): a check that varies
    #: one of them cannot observe the service's reaction under this driver.
    driver_owned_env: tuple[str, ...] = ()

    @abstractmethod
    def endpoint(self, role: str) -> Endpoint: ...

    @abstractmethod
    def start(self, role: str, env: dict[str, str] | None = None, *, wait: bool = True,
              timeout: float = 10.0) -> None: ...

    @abstractmethod
    def stop(self, role: str, *, grace: float = 5.0) -> int | None: ...

    @abstractmethod
    def signal_term(self, role: str) -> None: ...

    @abstractmethod
    def signal_int(self, role: str) -> None:
        """SIGINT to the service's main process, as signal_term sends SIGTERM (SPEC §17:
        SIGINT behaves like SIGTERM)."""

    @abstractmethod
    def wait(self, role: str, timeout: float) -> int | None: ...

    @abstractmethod
    def kill(self, role: str) -> None: ...

    @abstractmethod
    def pause(self, role: str) -> None: ...

    @abstractmethod
    def resume(self, role: str) -> None: ...

    @abstractmethod
    def restart(self, role: str, *, timeout: float = 10.0) -> None: ...

    @abstractmethod
    def running(self, role: str) -> bool: ...

    @abstractmethod
    def exit_code(self, role: str) -> int | None: ...

    @abstractmethod
    def memory_files(self, role: str) -> list[str]: ...

    @abstractmethod
    def read_memory(self, role: str, relpath: str) -> bytes: ...

    @abstractmethod
    def write_memory(self, role: str, relpath: str, data: bytes) -> None: ...

    @abstractmethod
    def make_unreadable(self, role: str, relpath: str) -> None: ...

    @abstractmethod
    def place_file(self, role: str, name: str, data: bytes, *, mode: int = 0o444) -> str:
        """Make `data` readable by `role`'s service as file `name` (a relative path) and
        return the path the service must be given (e.g. in FD_TLS_CERT). Why: the grader
        and a containerised service share no filesystem, so only the driver knows how a
        file reaches the service and under which name it sees it."""

    @abstractmethod
    def logs(self, role: str, stream: str = "stderr") -> list[str]: ...

    def start_wrapped(self, role: str, wrap: list[str], env: dict[str, str] | None = None, *,
                      timeout: float = 10.0) -> Wrapped:
        """Start `role` (like `start`, waiting until started) with the trusted program
        `wrap` (an argv prefix, e.g. strace and its options ending in `--`) as the
        service's parent, in the service's own sandbox; every "{output}" in `wrap` is
        replaced by a file path the wrapper may write. Only this one run is wrapped (a
        later `restart`/`start` is not). Why in the driver: only the driver knows how a
        program runs next to the service and how its output file gets back out."""
        raise WrapUnsupported(f"the {type(self).__name__} driver cannot run a service under a wrapper")

    @abstractmethod
    def close(self) -> CleanupReport: ...

    def __enter__(self) -> "Deployment":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Driver(ABC):
    name: str = "abstract"

    @abstractmethod
    def deploy(self, submission: Submission, *,
               base_env: dict[str, dict[str, str]]) -> Deployment: ...
