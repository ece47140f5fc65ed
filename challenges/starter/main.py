"""Entry point for all four services: `python3 main.py <role>` (see faultdrill.toml).

Reads the environment (SPEC §2), builds the role's request handler, serves the TCP
and HTTP ports until SIGTERM/SIGINT.
"""
import ipaddress
import json
import os
import re
import signal
import sys
import threading
from types import SimpleNamespace

from orchestrator import Orchestrator
from service import Log, handle_frame, run_forever, serve_http, serve_tcp
from steps import STEPS
from wire import Fail, hello_payload, ok_reply

ROLES = {"orchestrator": 7000, "collector": 7001, "analyzer": 7002, "reporter": 7003}
STEP_OF = {"collector": "collect", "analyzer": "analyze", "reporter": "report"}
ORDER = ["collect", "analyze", "report"]
DEFAULT_ROUTES = {"triage": ["collect", "analyze", "report"], "parse": ["collect"],
                  "stats": ["collect", "analyze"]}


def die(message, role=None):
    """Configuration errors: one line on stderr naming the variable, exit status 2."""
    Log(role or "unknown")("error", message, event="config_error")
    sys.exit(2)


DAY_MS = 86_400_000
HOST = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                  r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")


def valid_host(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(HOST.fullmatch(host))


def load_config(role, env):
    """Every SPEC §2 variable, validated against its table of valid values (exit 2)."""
    def fail(message):
        die(message, role)

    def get(name, default):
        value = env.get(name, "").strip(" \t")  # spaces/tabs around a value are ignored
        return default if value == "" else value

    def number(name, default, low, high):
        value = get(name, None)
        if value is None:
            return default
        digits = value.lstrip("0") or "0"
        if not re.fullmatch(r"[0-9]+", value) or len(digits) > 18 or not low <= int(digits) <= high:
            fail(f"{name}: expected an integer in {low}..{high}, got {value!r}")
        return int(digits)

    def address(name, default):
        text = get(name, default)
        m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})", text) or \
            re.fullmatch(r"([^:\[\]\s]+):([0-9]{1,5})", text)
        if not m or not valid_host(m.group(1)) or not 0 < int(m.group(2)) < 65536:
            fail(f"{name}: expected host:port, got {text!r}")
        return m.group(1), int(m.group(2))

    def path(name):
        value = get(name, None)
        if value is not None and not os.path.isfile(value):
            fail(f"{name}: {value!r} is not an existing file")
        return value

    if get("FD_ROLE", role) != role:
        fail(f"FD_ROLE: is {get('FD_ROLE', '')!r} but the service runs as {role}")
    token = env.get("FD_TOKEN") or None  # used exactly as given
    if token is None:
        fail("FD_TOKEN is required")
    if any(c in token for c in "\r\n\x00"):
        fail("FD_TOKEN: must not contain CR, LF or NUL")
    level = get("FD_LOG_LEVEL", "info").lower()
    if level not in ("debug", "info", "warn", "error"):
        fail(f"FD_LOG_LEVEL: expected debug, info, warn or error, got {level!r}")
    host = get("FD_LISTEN_HOST", "127.0.0.1")
    if not valid_host(host):
        fail(f"FD_LISTEN_HOST: not an address or host name: {host!r}")
    try:
        routes = json.loads(get("FD_ROUTES", json.dumps(DEFAULT_ROUTES)))
    except ValueError:
        fail("FD_ROUTES: not valid JSON")
    # A pipeline is collect, then optionally analyze, then optionally report (§10.1).
    if not isinstance(routes, dict) or not routes or any(
            not isinstance(steps, list) or not steps or steps != ORDER[:len(steps)]
            for steps in routes.values()):
        fail("FD_ROUTES: each task type must map to collect[, analyze[, report]]")
    port = number("FD_LISTEN_PORT", ROLES[role], 0, 65535)
    if port and port + 100 > 65535 and get("FD_HTTP_PORT", None) is None:
        fail("FD_HTTP_PORT: the default (listen port + 100) is not a port; set it")
    http_port = number("FD_HTTP_PORT", port + 100 if port else 0, 0, 65535)
    if port and http_port == port:
        fail("FD_HTTP_PORT: must differ from FD_LISTEN_PORT")
    tls_cert, tls_key, tls_ca = path("FD_TLS_CERT"), path("FD_TLS_KEY"), path("FD_TLS_CA")
    if (tls_cert is None) != (tls_key is None):
        fail("FD_TLS_CERT/FD_TLS_KEY: set both or neither")
    client_auth = get("FD_TLS_CLIENT_AUTH", "0")
    if client_auth not in ("0", "1") or (client_auth == "1" and (tls_ca is None or tls_cert is None)):
        fail(f"FD_TLS_CLIENT_AUTH: expected 0 or 1 (1 needs FD_TLS_CA and FD_TLS_CERT), got {client_auth!r}")
    # CHALLENGE(crash-restart, dropped-sockets, overload, tls-shutdown): these settings
    # are validated here but not used yet: memory, deadline, retries, queue, workers,
    # connection cap, shutdown grace, TLS. Each challenge says which ones it needs.
    return SimpleNamespace(
        role=role, token=token, log_level=level, routes=routes,
        host=host, port=port, http_port=http_port,
        memory_dir=get("FD_MEMORY_DIR", f"./memory/{role}"),
        retention=number("FD_MEMORY_RETENTION", 1000, 1, 10_000_000),
        collector_addr=address("FD_COLLECTOR_ADDR", "127.0.0.1:7001"),
        analyzer_addr=address("FD_ANALYZER_ADDR", "127.0.0.1:7002"),
        reporter_addr=address("FD_REPORTER_ADDR", "127.0.0.1:7003"),
        attempt_timeout_ms=number("FD_ATTEMPT_TIMEOUT_MS", 2000, 1, DAY_MS),
        task_deadline_ms=number("FD_TASK_DEADLINE_MS", 10000, 1, DAY_MS),
        retry_max_attempts=number("FD_RETRY_MAX_ATTEMPTS", 4, 1, 100),
        retry_base_ms=number("FD_RETRY_BASE_MS", 100, 0, DAY_MS),
        retry_cap_ms=number("FD_RETRY_CAP_MS", 2000, 0, DAY_MS),
        queue_size=number("FD_QUEUE_SIZE", 64, 0, 1_000_000),
        workers=number("FD_WORKERS", 4, 1, 1024),
        max_connections=number("FD_MAX_CONNECTIONS", 128, 1, 100_000),
        idle_timeout_ms=number("FD_IDLE_TIMEOUT_MS", 30000, 1, DAY_MS),
        shutdown_grace_ms=number("FD_SHUTDOWN_GRACE_MS", 5000, 0, DAY_MS),
        tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca, tls_client_auth=client_auth == "1",
    )


def agent_handler(role, log):
    """An agent serves `hello` and its one step (§5.1)."""
    step = STEP_OF[role]

    def handle(request):
        if request["type"] == "hello":
            return ok_reply(request, hello_payload(request, role, [step]))
        # CHALLENGE(idempotency, crash-restart): key the work by (task_id, step) in durable
        # memory (§10.4, §11): the same input again -> the stored output with replay: true
        # and no second execution; a different input -> idempotency_conflict.
        try:
            output = STEPS[step](request["payload"])
        except Fail:
            raise
        except (KeyError, TypeError, AttributeError) as exc:
            # CHALLENGE(schema-drift): bad input should be a schema_violation with a path,
            # found before executing -- not an internal error found while executing.
            raise Fail("internal_error", f"{step} failed on bad input: {exc!r}") from None
        log("debug", f"{step} executed", task_id=request["task_id"])
        return ok_reply(request, output, replay=False)

    return handle


def main(argv, env):
    role = argv[1] if len(argv) > 1 else env.get("FD_ROLE", "")
    if role not in ROLES:
        die(f"FD_ROLE: expected one of {sorted(ROLES)}, got {role!r}")
    cfg = load_config(role, env)
    log = Log(role, cfg.log_level)
    if role == "orchestrator":
        orchestrator = Orchestrator(cfg, log)
        handle, served = orchestrator.handle, {"hello", "submit", "status", "list"}
        ready = orchestrator.readiness
    else:
        handle, served = agent_handler(role, log), {"hello", STEP_OF[role]}
        # CHALLENGE(corrupt-memory): ready means "memory loaded and writable" (§13).
        ready = lambda: (200, {"status": "ready"})  # noqa: E731

    def on_frame(line):
        return handle_frame(line, role, cfg, log, served, handle)

    # CHALLENGE(observability): /metrics in Prometheus text format (§13.1); on the
    # orchestrator also the dashboard `/`, /api/tasks and /api/alerts (§13).
    routes = {"/livez": lambda: (200, {"status": "ok"}), "/readyz": ready}
    try:
        servers = [serve_tcp(cfg, log, on_frame), serve_http(cfg, routes)]
    except OSError as exc:
        log("error", f"cannot listen on {cfg.host}:{cfg.port}/{cfg.http_port}: {exc}")
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    run_forever(servers, stop, log)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv, os.environ))
