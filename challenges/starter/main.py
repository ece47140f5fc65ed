"""Entry point for all four services: `python3 main.py <role>` (see faultdrill.toml).

Reads the environment (SPEC §2), builds the role's request handler, serves the TCP
and HTTP ports until SIGTERM/SIGINT.
"""
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


def load_config(role, env):
    def fail(message):
        die(message, role)

    def get(name, default):
        value = env.get(name, "")
        return default if value == "" else value

    def number(name, default, low=0, high=10**9):
        value = get(name, None)
        if value is None:
            return default
        if not re.fullmatch(r"[0-9]{1,10}", value) or not low <= int(value) <= high:
            fail(f"{name}: expected an integer in {low}..{high}, got {value!r}")
        return int(value)

    def address(name, default):
        host, _, port = get(name, default).rpartition(":")
        if not host or not re.fullmatch(r"[0-9]{1,5}", port) or not 0 < int(port) < 65536:
            fail(f"{name}: expected host:port, got {get(name, default)!r}")
        return host, int(port)

    token = get("FD_TOKEN", None)
    if token is None:
        fail("FD_TOKEN is required")
    level = get("FD_LOG_LEVEL", "info")
    if level not in ("debug", "info", "warn", "error"):
        fail(f"FD_LOG_LEVEL: expected debug, info, warn or error, got {level!r}")
    try:
        routes = json.loads(get("FD_ROUTES", json.dumps(DEFAULT_ROUTES)))
    except ValueError:
        fail("FD_ROUTES: not valid JSON")
    # A pipeline is collect, then optionally analyze, then optionally report (§10.1).
    if not isinstance(routes, dict) or not routes or any(
            not isinstance(steps, list) or not steps or steps != ORDER[:len(steps)]
            for steps in routes.values()):
        fail("FD_ROUTES: each task type must map to collect[, analyze[, report]]")
    port = number("FD_LISTEN_PORT", ROLES[role], 1, 65535)
    # CHALLENGE(crash-restart, dropped-sockets, overload, tls-shutdown): these settings
    # are validated here but not used yet: memory, deadline, retries, queue, workers,
    # connection cap, shutdown grace, TLS. Each challenge says which ones it needs.
    return SimpleNamespace(
        role=role, token=token, log_level=level, routes=routes,
        host=get("FD_LISTEN_HOST", "127.0.0.1"), port=port,
        http_port=number("FD_HTTP_PORT", port + 100, 1, 65535),
        memory_dir=get("FD_MEMORY_DIR", f"./memory/{role}"),
        retention=number("FD_MEMORY_RETENTION", 1000, 1),
        collector_addr=address("FD_COLLECTOR_ADDR", "127.0.0.1:7001"),
        analyzer_addr=address("FD_ANALYZER_ADDR", "127.0.0.1:7002"),
        reporter_addr=address("FD_REPORTER_ADDR", "127.0.0.1:7003"),
        attempt_timeout_ms=number("FD_ATTEMPT_TIMEOUT_MS", 2000, 1),
        task_deadline_ms=number("FD_TASK_DEADLINE_MS", 10000, 1),
        retry_max_attempts=number("FD_RETRY_MAX_ATTEMPTS", 4, 1),
        retry_base_ms=number("FD_RETRY_BASE_MS", 100, 1),
        retry_cap_ms=number("FD_RETRY_CAP_MS", 2000, 1),
        queue_size=number("FD_QUEUE_SIZE", 64),
        workers=number("FD_WORKERS", 4, 1),
        max_connections=number("FD_MAX_CONNECTIONS", 128, 1),
        idle_timeout_ms=number("FD_IDLE_TIMEOUT_MS", 30000, 1),
        shutdown_grace_ms=number("FD_SHUTDOWN_GRACE_MS", 5000),
        tls_client_auth=number("FD_TLS_CLIENT_AUTH", 0, 0, 1),
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
