"""Entry point used by the manifest: ``python3 main.py <role>`` (cwd = the submission root).

This is the composition root: it reads the configuration (an invalid one exits with
status 2 and one line on stderr naming the variable), wires logger, metrics, memory,
the role's service, the protocol server and the HTTP side port, then hands the process
to ``lifecycle.run`` which serves until SIGTERM/SIGINT and drains. Run as a script, the
parent directory is put on ``sys.path`` so that ``reference_impl`` imports work without
installing anything.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __package__ in (None, ""):
    _HERE = Path(__file__).resolve().parent
    if _HERE.name == "reference_impl":
        sys.path.insert(0, str(_HERE.parent))
    else:
        # A copy under another folder name (a hiring round's copy, a candidate's fork):
        # this folder is loaded as the package ``reference_impl`` itself, so the copy
        # never depends on its name or on anything outside it.
        import importlib.util
        _spec = importlib.util.spec_from_file_location(
            "reference_impl", _HERE / "__init__.py", submodule_search_locations=[str(_HERE)])
        _package = importlib.util.module_from_spec(_spec)
        sys.modules["reference_impl"] = _package
        _spec.loader.exec_module(_package)

from reference_impl.agents.service import ROLE_STEP, AgentService  # noqa: E402
from reference_impl.memory.store import RecordStore, utc_timestamp  # noqa: E402
from reference_impl.orchestrator.client import POOL_IDLE_S, AgentClient  # noqa: E402
from reference_impl.orchestrator.pipeline import Settings  # noqa: E402
from reference_impl.orchestrator.service import OrchestratorService  # noqa: E402
from reference_impl.protocol.schema import find_violation  # noqa: E402
from reference_impl.runtime import lifecycle, tls  # noqa: E402
from reference_impl.runtime.config import load_config_or_exit  # noqa: E402
from reference_impl.runtime.http import SidePort  # noqa: E402
from reference_impl.runtime.logs import Logger  # noqa: E402
from reference_impl.runtime.metrics import Registry  # noqa: E402
from reference_impl.runtime.server import ProtocolServer  # noqa: E402


def agent_record_ok(record: dict) -> bool:
    return find_violation(record, "agent_record") is None


def task_record_ok(record: dict) -> bool:
    # The store stamps ``stored_at`` on every record; the task-log schema does not list it.
    return find_violation({k: v for k, v in record.items() if k != "stored_at"}, "task_record") is None


def build(config, *, stderr=None) -> tuple[lifecycle.Node, Logger]:
    """Everything one service process consists of, not yet started."""
    log = Logger(config.role, level=config.log_level, stream=stderr or sys.stderr, secrets=(config.token,))
    registry = Registry()
    holder: dict = {}

    def on_corrupt(path, reason, quarantined_to):
        holder["service"].on_corrupt(path, reason, quarantined_to)

    def on_error(where: str, exc: BaseException) -> None:
        log.debug(f"{where}: {type(exc).__name__}: {exc}", event="io_error")

    is_orch = config.role == "orchestrator"
    store = RecordStore(config.memory_dir, config.memory_retention,
                        validate_record=task_record_ok if is_orch else agent_record_ok,
                        on_corrupt=on_corrupt)
    if is_orch:
        client_ctx = None
        if config.tls_ca is not None:
            client_ctx = tls.client_context(str(config.tls_ca),
                                            str(config.tls_cert) if config.tls_cert else None,
                                            str(config.tls_key) if config.tls_key else None,
                                            config.tls_client_auth)
        # Agents close connections idle for FD_IDLE_TIMEOUT_MS (all services share the
        # setting), so a pooled connection is dropped well before that: half of it.
        pool_idle_s = min(POOL_IDLE_S, config.idle_timeout_ms / 2000)
        clients = {role: AgentClient(role, addr, config.token, ssl_context=client_ctx,
                                     pool_idle_s=pool_idle_s)
                   for role, addr in config.agent_addrs.items()}
        service = OrchestratorService(
            token=config.token, logger=log, registry=registry, store=store,
            routes={k: list(v) for k, v in config.routes.items()}, clients=clients,
            settings=Settings(attempt_timeout_ms=config.attempt_timeout_ms,
                              max_attempts=config.retry_max_attempts,
                              base_ms=config.retry_base_ms, cap_ms=config.retry_cap_ms),
            deadline_ms=config.task_deadline_ms, queue_size=config.queue_size,
            workers=config.workers, now_iso=utc_timestamp)
    else:
        service = AgentService(config.role, token=config.token, logger=log, registry=registry, store=store)
    holder["service"] = service

    server_ctx = None
    if config.tls_enabled:
        server_ctx = tls.server_context(str(config.tls_cert), str(config.tls_key),
                                        str(config.tls_ca) if config.tls_ca else None,
                                        config.tls_client_auth)
    server = ProtocolServer(config.listen_host, config.listen_port, service.handle,
                            max_connections=config.max_connections,
                            idle_timeout_ms=config.idle_timeout_ms, ssl_context=server_ctx,
                            on_error=on_error, max_frame_bytes=service.max_frame_bytes)
    service.install_common_metrics(store, lambda: server.open_connections)
    routes, prefix_routes = service.http_routes() if is_orch else ({}, {})
    side = SidePort(config.listen_host, config.http_port, readiness=service.readiness,
                    metrics=registry.render, routes=routes, prefix_routes=prefix_routes,
                    on_error=on_error)

    def on_start() -> None:
        store.load()
        service.sync_pruned()
        if is_orch:
            service.start_workers()

    def drain_extra(timeout_s: float) -> bool:
        return service.wait_tasks(timeout_s) if is_orch else True

    def on_close() -> None:
        if is_orch:
            service.stop_workers(0.3)  # daemon threads; idle workers are woken at once

    def release_waiters() -> None:
        if is_orch:
            service.release_waiters(config.shutdown_grace_ms)

    node = lifecycle.Node(service, server, side, on_start=on_start, drain_extra=drain_extra, on_close=on_close,
                          release_waiters=release_waiters)
    return node, log


def main(argv: list[str] | None = None, environ=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    role = argv[0] if argv else None
    if role is not None and role not in ("orchestrator", *ROLE_STEP):
        print(f"usage: main.py orchestrator|collector|analyzer|reporter (got {role!r})", file=sys.stderr)
        return 2
    config = load_config_or_exit(role, environ)
    node, log = build(config)
    try:
        log.info(f"starting {config.role} on {config.listen_host}:{config.listen_port} "
                 f"(http {config.http_port})", event="starting")
        return lifecycle.run(node, config.shutdown_grace_ms, log)
    except OSError as exc:
        log.error(f"cannot start: {exc}", event="start_failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
