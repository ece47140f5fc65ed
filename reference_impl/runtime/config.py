"""Environment -> Config (SPEC §2): every setting, its default and its validation.

Why a separate module: the SPEC makes the environment the *only* configuration and makes
an invalid value a start-up failure (exit status 2, one line on stderr naming the
variable). Doing all parsing here, once, before anything binds a port, means no other
module ever sees a half-valid setting. ``load_config`` is pure (it takes the environment
as a mapping); ``load_config_or_exit`` is the process edge.

Empty values count as unset (§2). Every variable is validated for every role, even
one the role does not use (``FD_WORKERS`` on an agent): §2 says an invalid value makes
"the service" exit 2, and a typo is better caught wherever it is.
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from reference_impl.memory.store import utc_timestamp
from reference_impl.orchestrator.routing import RoutesError, parse_routes

ROLES = ("orchestrator", "collector", "analyzer", "reporter")
AGENT_ROLES = ("collector", "analyzer", "reporter")
DEFAULT_PORTS = {"orchestrator": 7000, "collector": 7001, "analyzer": 7002, "reporter": 7003}
LOG_LEVELS = ("debug", "info", "warn", "error")
DAY_MS = 86_400_000

_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")
_INT_RE = re.compile(r"[0-9]+")
#: Spaces and tabs around a value are ignored (SPEC §2); nothing else is trimmed.
_BLANKS = " \t"


class ConfigError(ValueError):
    """An invalid setting; ``str()`` is the one-line message naming the variable."""

    def __init__(self, variable: str, message: str):
        super().__init__(f"{variable}: {message}")
        self.variable = variable
        self.message = message


@dataclass(frozen=True)
class Config:
    """All SPEC §2 settings for one service. The token is kept out of ``repr``."""

    role: str
    listen_host: str
    listen_port: int
    http_port: int
    token: str = field(repr=False)
    memory_dir: Path
    memory_retention: int
    collector_addr: tuple[str, int]
    analyzer_addr: tuple[str, int]
    reporter_addr: tuple[str, int]
    routes: dict[str, tuple[str, ...]]
    attempt_timeout_ms: int
    task_deadline_ms: int
    retry_max_attempts: int
    retry_base_ms: int
    retry_cap_ms: int
    queue_size: int
    workers: int
    max_connections: int
    idle_timeout_ms: int
    shutdown_grace_ms: int
    log_level: str
    tls_cert: Path | None
    tls_key: Path | None
    tls_ca: Path | None
    tls_client_auth: bool

    @property
    def tls_enabled(self) -> bool:
        """True when the TCP protocol port speaks TLS (§16)."""
        return self.tls_cert is not None and self.tls_key is not None

    @property
    def agent_addrs(self) -> dict[str, tuple[str, int]]:
        """Agent role -> (host, port), for the orchestrator."""
        return {"collector": self.collector_addr, "analyzer": self.analyzer_addr,
                "reporter": self.reporter_addr}


def _show(value: str) -> str:
    """A value quoted for an error message, shortened so the line stays one line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Env:
    """Reads variables from a mapping, treating empty strings as unset."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ

    def raw(self, name: str) -> str | None:
        """The value without surrounding spaces and tabs; None when unset or empty."""
        value = self.environ.get(name)
        if value is None:
            return None
        value = value.strip(_BLANKS)
        return value or None

    def integer(self, name: str, default: int, lo: int, hi: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        text = value
        if not _INT_RE.fullmatch(text):
            raise ConfigError(name, f"expected an integer in {lo}..{hi}, got {_show(value)}")
        digits = text.lstrip("0") or "0"
        if len(digits) > 18:  # far beyond every range; int() of 4300+ digits would refuse
            raise ConfigError(name, f"expected an integer in {lo}..{hi}, got {_show(value)}")
        number = int(digits)
        if not lo <= number <= hi:
            raise ConfigError(name, f"expected an integer in {lo}..{hi}, got {number}")
        return number

    def file(self, name: str) -> Path | None:
        value = self.raw(name)
        if value is None:
            return None
        path = Path(value)
        if not path.is_file():
            raise ConfigError(name, f"file {_show(value)} does not exist or is not a file")
        return path


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME_RE.fullmatch(host))


def parse_addr(name: str, value: str) -> tuple[str, int]:
    """``host:port`` (IPv6 as ``[addr]:port``) -> (host, port); ConfigError naming ``name``."""
    text = value.strip(_BLANKS)
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})", text) or \
        re.fullmatch(r"([^:\[\]\s]+):([0-9]{1,5})", text)
    if not m:
        raise ConfigError(name, f"expected host:port, got {_show(value)}")
    host, port = m.group(1), int(m.group(2))
    if text.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(name, f"invalid IPv6 address in {_show(value)}") from None
    elif not _valid_host(host):
        raise ConfigError(name, f"invalid host in {_show(value)}")
    if not 1 <= port <= 65535:
        raise ConfigError(name, f"port must be in 1..65535, got {port}")
    return host, port


def load_config(role: str | None, environ: Mapping[str, str]) -> Config:
    """Build the Config for ``role`` from ``environ``; raise ConfigError on any bad value.

    ``role`` is the role the process was started as (argv); ``FD_ROLE`` must agree with
    it when both are given, and supplies it when ``role`` is None.
    """
    env = _Env(environ)
    env_role = env.raw("FD_ROLE")
    if role is None:
        role = env_role
    if role not in ROLES:
        shown = _show(role) if isinstance(role, str) else "unset"
        raise ConfigError("FD_ROLE", f"expected one of {', '.join(ROLES)}, got {shown}")
    if env_role is not None and env_role != role:
        raise ConfigError("FD_ROLE", f"is {_show(env_role)} but the service was started as {role}")

    token = environ.get("FD_TOKEN")
    if not token:
        raise ConfigError("FD_TOKEN", "is required (the shared auth token); refusing to start")
    if any(c in token for c in "\r\n\x00"):
        raise ConfigError("FD_TOKEN", "must not contain newlines or NUL characters")

    listen_host = env.raw("FD_LISTEN_HOST") or "127.0.0.1"
    if not _valid_host(listen_host):
        raise ConfigError("FD_LISTEN_HOST", f"invalid address {_show(listen_host)}")
    # Port 0 (let the OS choose) is accepted for tests; the HTTP default then is 0 too.
    listen_port = env.integer("FD_LISTEN_PORT", DEFAULT_PORTS[role], 0, 65535)
    http_default = listen_port + 100 if listen_port else 0
    if http_default > 65535 and env.raw("FD_HTTP_PORT") is None:
        raise ConfigError("FD_HTTP_PORT", f"default (listen port + 100 = {http_default}) is "
                          "not a valid port; set FD_HTTP_PORT")
    http_port = env.integer("FD_HTTP_PORT", http_default, 0, 65535)
    if listen_port and http_port == listen_port:
        raise ConfigError("FD_HTTP_PORT", f"must differ from FD_LISTEN_PORT ({listen_port})")

    memory_dir = Path(env.raw("FD_MEMORY_DIR") or str(Path("state") / role))
    retention = env.integer("FD_MEMORY_RETENTION", 1000, 1, 10_000_000)

    addrs = {"collector": ("127.0.0.1", 7001), "analyzer": ("127.0.0.1", 7002),
             "reporter": ("127.0.0.1", 7003)}
    for agent in AGENT_ROLES:
        name = f"FD_{agent.upper()}_ADDR"
        value = env.raw(name)
        if value is not None:
            addrs[agent] = parse_addr(name, value)
    try:
        routes = {k: tuple(v) for k, v in parse_routes(env.raw("FD_ROUTES")).items()}
    except RoutesError as exc:
        raise ConfigError("FD_ROUTES", str(exc).replace("\n", " ")) from None
    orch = {
        "attempt_timeout_ms": env.integer("FD_ATTEMPT_TIMEOUT_MS", 2000, 1, DAY_MS),
        "task_deadline_ms": env.integer("FD_TASK_DEADLINE_MS", 10000, 1, DAY_MS),
        "retry_max_attempts": env.integer("FD_RETRY_MAX_ATTEMPTS", 4, 1, 100),
        "retry_base_ms": env.integer("FD_RETRY_BASE_MS", 100, 0, DAY_MS),
        "retry_cap_ms": env.integer("FD_RETRY_CAP_MS", 2000, 0, DAY_MS),
        "queue_size": env.integer("FD_QUEUE_SIZE", 64, 0, 1_000_000),
        "workers": env.integer("FD_WORKERS", 4, 1, 1024),
    }

    max_connections = env.integer("FD_MAX_CONNECTIONS", 128, 1, 100_000)
    idle_timeout_ms = env.integer("FD_IDLE_TIMEOUT_MS", 30000, 1, DAY_MS)
    shutdown_grace_ms = env.integer("FD_SHUTDOWN_GRACE_MS", 5000, 0, DAY_MS)

    level_raw = env.raw("FD_LOG_LEVEL")
    log_level = "info" if level_raw is None else level_raw.lower()
    if log_level not in LOG_LEVELS:
        raise ConfigError("FD_LOG_LEVEL", f"expected one of {', '.join(LOG_LEVELS)}, "
                          f"got {_show(level_raw or '')}")

    tls_cert = env.file("FD_TLS_CERT")
    tls_key = env.file("FD_TLS_KEY")
    tls_ca = env.file("FD_TLS_CA")
    if (tls_cert is None) != (tls_key is None):
        missing = "FD_TLS_KEY" if tls_key is None else "FD_TLS_CERT"
        raise ConfigError(missing, "FD_TLS_CERT and FD_TLS_KEY must be set together")
    auth_raw = env.raw("FD_TLS_CLIENT_AUTH")
    auth_text = "0" if auth_raw is None else auth_raw
    if auth_text not in ("0", "1"):
        raise ConfigError("FD_TLS_CLIENT_AUTH", f"expected 0 or 1, got {_show(auth_raw or '')}")
    tls_client_auth = auth_text == "1"
    if tls_client_auth:
        if tls_ca is None:
            raise ConfigError("FD_TLS_CA", "is required when FD_TLS_CLIENT_AUTH=1")
        if tls_cert is None:
            raise ConfigError("FD_TLS_CERT", "is required when FD_TLS_CLIENT_AUTH=1")

    return Config(
        role=role, listen_host=listen_host, listen_port=listen_port, http_port=http_port,
        token=token, memory_dir=memory_dir, memory_retention=retention,
        collector_addr=addrs["collector"], analyzer_addr=addrs["analyzer"],
        reporter_addr=addrs["reporter"], routes=routes,
        max_connections=max_connections, idle_timeout_ms=idle_timeout_ms,
        shutdown_grace_ms=shutdown_grace_ms, log_level=log_level,
        tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca, tls_client_auth=tls_client_auth,
        **orch)


def load_config_or_exit(role: str | None, environ: Mapping[str, str], stderr=None) -> Config:
    """The process edge: on ConfigError print one line naming the variable, exit 2.

    The line is a JSON log line (SPEC §12 fields, ``event`` ``config_invalid``, the
    ``variable``), so that stderr stays parseable as JSON lines while still being the
    single human-readable line §2 asks for.
    """
    try:
        return load_config(role, environ)
    except ConfigError as exc:
        stream = stderr if stderr is not None else sys.stderr
        shown_role = role or environ.get("FD_ROLE") or "unknown"
        line = json.dumps({
            "ts": utc_timestamp(), "level": "error", "service": str(shown_role)[:64],
            "msg": f"invalid configuration: {exc}", "task_id": None, "trace_id": None,
            "span_id": None, "event": "config_invalid", "variable": exc.variable})
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass
        raise SystemExit(2) from None
