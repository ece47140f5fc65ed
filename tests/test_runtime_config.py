"""runtime/config.py (SPEC §2, §10.1, §16): defaults, validation, exit status 2."""
import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from reference_impl.runtime.config import (ConfigError, ROLES, load_config,
                                           load_config_or_exit)

BASE = {"FD_TOKEN": "s3cret"}


def cfg(role="orchestrator", **env):
    return load_config(role, {**BASE, **env})


def error_for(role="orchestrator", **env) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(role, {**BASE, **env})
    return info.value


@pytest.mark.parametrize("role,port", [("orchestrator", 7000), ("collector", 7001),
                                       ("analyzer", 7002), ("reporter", 7003)])
def test_defaults_per_role(role, port):
    c = cfg(role)
    assert (c.role, c.listen_host, c.listen_port, c.http_port) == (role, "127.0.0.1", port, port + 100)
    assert c.token == "s3cret"
    assert c.memory_dir == Path("state") / role
    assert c.memory_retention == 1000
    assert c.collector_addr == ("127.0.0.1", 7001)
    assert c.analyzer_addr == ("127.0.0.1", 7002)
    assert c.reporter_addr == ("127.0.0.1", 7003)
    assert c.routes == {"triage": ("collect", "analyze", "report"), "parse": ("collect",),
                        "stats": ("collect", "analyze")}
    assert (c.attempt_timeout_ms, c.task_deadline_ms, c.retry_max_attempts) == (2000, 10000, 4)
    assert (c.retry_base_ms, c.retry_cap_ms, c.queue_size, c.workers) == (100, 2000, 64, 4)
    assert (c.max_connections, c.idle_timeout_ms, c.shutdown_grace_ms) == (128, 30000, 5000)
    assert c.log_level == "info"
    assert (c.tls_cert, c.tls_key, c.tls_ca, c.tls_client_auth) == (None, None, None, False)
    assert not c.tls_enabled


def test_every_variable_is_read():
    c = cfg("orchestrator", FD_ROLE="orchestrator", FD_LISTEN_HOST="0.0.0.0",
            FD_LISTEN_PORT="9000", FD_HTTP_PORT="9500", FD_MEMORY_DIR="/var/x",
            FD_MEMORY_RETENTION="5", FD_COLLECTOR_ADDR="c.example:1",
            FD_ANALYZER_ADDR="[::1]:2", FD_REPORTER_ADDR="10.0.0.3:65535",
            FD_ROUTES='{"only": ["collect", "analyze"]}', FD_ATTEMPT_TIMEOUT_MS="300",
            FD_TASK_DEADLINE_MS="4000", FD_RETRY_MAX_ATTEMPTS="1", FD_RETRY_BASE_MS="0",
            FD_RETRY_CAP_MS="50", FD_QUEUE_SIZE="0", FD_WORKERS="16",
            FD_MAX_CONNECTIONS="3", FD_IDLE_TIMEOUT_MS="250", FD_SHUTDOWN_GRACE_MS="0",
            FD_LOG_LEVEL="DEBUG")
    assert (c.listen_host, c.listen_port, c.http_port) == ("0.0.0.0", 9000, 9500)
    assert c.memory_dir == Path("/var/x") and c.memory_retention == 5
    assert c.agent_addrs == {"collector": ("c.example", 1), "analyzer": ("::1", 2),
                             "reporter": ("10.0.0.3", 65535)}
    assert c.routes == {"only": ("collect", "analyze")}
    assert (c.attempt_timeout_ms, c.task_deadline_ms, c.retry_max_attempts) == (300, 4000, 1)
    assert (c.retry_base_ms, c.retry_cap_ms, c.queue_size, c.workers) == (0, 50, 0, 16)
    assert (c.max_connections, c.idle_timeout_ms, c.shutdown_grace_ms) == (3, 250, 0)
    assert c.log_level == "debug"


def test_empty_means_unset():
    c = cfg(FD_WORKERS="", FD_LOG_LEVEL="", FD_ROUTES="", FD_LISTEN_HOST="", FD_TLS_CERT="")
    assert c.workers == 4 and c.log_level == "info" and c.listen_host == "127.0.0.1"
    assert "triage" in c.routes and c.tls_cert is None


def test_listen_port_zero_means_ephemeral_for_both():
    c = cfg(FD_LISTEN_PORT="0")
    assert (c.listen_port, c.http_port) == (0, 0)


def test_token_required_and_hidden():
    for env in ({}, {"FD_TOKEN": ""}):
        with pytest.raises(ConfigError) as info:
            load_config("collector", env)
        assert info.value.variable == "FD_TOKEN"
    c = cfg(FD_TOKEN="topsecret-value")
    assert "topsecret-value" not in repr(c)
    assert dataclasses.is_dataclass(c)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.workers = 3


INVALID = [
    ("FD_WORKERS", "abc"), ("FD_WORKERS", "0"), ("FD_WORKERS", "-1"), ("FD_WORKERS", "1.5"),
    ("FD_WORKERS", "4x"), ("FD_WORKERS", "99999999999999999999999"),
    ("FD_LISTEN_PORT", "65536"), ("FD_LISTEN_PORT", "http"), ("FD_HTTP_PORT", "70000"),
    ("FD_HTTP_PORT", "7000"), ("FD_MEMORY_RETENTION", "0"), ("FD_QUEUE_SIZE", "-5"),
    ("FD_ATTEMPT_TIMEOUT_MS", "0"), ("FD_TASK_DEADLINE_MS", "ten"),
    ("FD_RETRY_MAX_ATTEMPTS", "0"), ("FD_RETRY_BASE_MS", "-1"), ("FD_RETRY_CAP_MS", "x"),
    ("FD_MAX_CONNECTIONS", "0"), ("FD_IDLE_TIMEOUT_MS", "0"), ("FD_SHUTDOWN_GRACE_MS", "-1"),
    ("FD_LOG_LEVEL", "verbose"), ("FD_LOG_LEVEL", "warning"), ("FD_TLS_CLIENT_AUTH", "yes"),
    ("FD_TLS_CLIENT_AUTH", "2"), ("FD_LISTEN_HOST", "bad host!"), ("FD_LISTEN_HOST", "a..b"),
    ("FD_COLLECTOR_ADDR", "localhost"), ("FD_COLLECTOR_ADDR", "localhost:0"),
    ("FD_COLLECTOR_ADDR", "localhost:99999"), ("FD_ANALYZER_ADDR", ":7002"),
    ("FD_ANALYZER_ADDR", "::1:7002"), ("FD_REPORTER_ADDR", "[zz::1]:7003"),
    ("FD_REPORTER_ADDR", "h:p"), ("FD_ROLE", "collector"), ("FD_TLS_CERT", "/nonexistent.pem"),
    ("FD_TLS_CA", "/nonexistent-ca.pem"),
]


@pytest.mark.parametrize("variable,value", INVALID)
def test_invalid_values_name_the_variable(variable, value):
    err = error_for("orchestrator", **{variable: value})
    assert err.variable == variable
    assert str(err).startswith(variable + ":") and "\n" not in str(err)


@pytest.mark.parametrize("routes", [
    "not json", "[]", "{}", '{"t": []}', '{"t": "collect"}', '{"t": ["analyze"]}',
    '{"t": ["collect", "frobnicate"]}', '{"t": ["collect", "report"]}',
    '{"t": ["collect", "analyze", "analyze"]}', '{"t": ["analyze", "collect"]}',
    '{"t": ["collect", "report", "analyze"]}', '{"": ["collect"]}', "null", '{"t": [1]}'])
def test_invalid_routes(routes):
    assert error_for(FD_ROUTES=routes).variable == "FD_ROUTES"


def test_routes_valid_forms():
    c = cfg(FD_ROUTES='{"a": ["collect"], "b": ["collect", "analyze", "report"]}')
    assert c.routes == {"a": ("collect",), "b": ("collect", "analyze", "report")}


def test_orchestrator_only_variables_are_validated_on_agents_too():
    assert error_for("collector", FD_WORKERS="abc").variable == "FD_WORKERS"
    assert cfg("collector", FD_WORKERS="8").workers == 8


def test_role_argument_and_fd_role():
    assert load_config(None, {**BASE, "FD_ROLE": "analyzer"}).role == "analyzer"
    assert error_for(None).variable == "FD_ROLE"
    assert error_for("nobody").variable == "FD_ROLE"
    assert cfg("reporter", FD_ROLE="reporter").role == "reporter"


def test_http_default_overflow_is_reported():
    assert error_for(FD_LISTEN_PORT="65500").variable == "FD_HTTP_PORT"
    assert cfg(FD_LISTEN_PORT="65500", FD_HTTP_PORT="1000").http_port == 1000


def test_tls_files(tmp_path):
    cert, key, ca = (tmp_path / n for n in ("c.pem", "k.pem", "ca.pem"))
    for p in (cert, key, ca):
        p.write_text("-----BEGIN X-----\n")
    c = cfg(FD_TLS_CERT=str(cert), FD_TLS_KEY=str(key))
    assert c.tls_enabled and c.tls_cert == cert and c.tls_key == key
    assert error_for(FD_TLS_CERT=str(cert)).variable == "FD_TLS_KEY"
    assert error_for(FD_TLS_KEY=str(key)).variable == "FD_TLS_CERT"
    assert error_for(FD_TLS_CERT=str(tmp_path), FD_TLS_KEY=str(key)).variable == "FD_TLS_CERT"
    assert error_for(FD_TLS_CLIENT_AUTH="1", FD_TLS_CERT=str(cert),
                     FD_TLS_KEY=str(key)).variable == "FD_TLS_CA"
    assert error_for(FD_TLS_CLIENT_AUTH="1", FD_TLS_CA=str(ca)).variable == "FD_TLS_CERT"
    full = cfg(FD_TLS_CERT=str(cert), FD_TLS_KEY=str(key), FD_TLS_CA=str(ca),
               FD_TLS_CLIENT_AUTH="1")
    assert full.tls_client_auth and full.tls_ca == ca
    assert cfg(FD_TLS_CA=str(ca)).tls_ca == ca  # orchestrator verifying agents only


@settings(max_examples=200, derandomize=True)
@given(value=st.text(max_size=12))
def test_integer_parsing_never_crashes_and_is_strict(value):
    try:
        c = cfg(FD_WORKERS=value)
    except ConfigError as err:
        assert err.variable == "FD_WORKERS"
        return
    if value == "":
        assert c.workers == 4
    else:
        assert value.strip().isascii() and value.strip().isdigit()
        assert c.workers == int(value.strip()) and 1 <= c.workers <= 1024


@settings(max_examples=200, derandomize=True)
@given(value=st.text(max_size=30))
def test_address_parsing_never_crashes(value):
    try:
        c = cfg(FD_COLLECTOR_ADDR=value)
    except ConfigError as err:
        assert err.variable == "FD_COLLECTOR_ADDR"
        return
    host, port = c.collector_addr
    assert host and 1 <= port <= 65535


def test_load_config_or_exit_writes_one_json_line_and_exits_2():
    err = io.StringIO()
    with pytest.raises(SystemExit) as info:
        load_config_or_exit("orchestrator", {"FD_TOKEN": "tok-123", "FD_WORKERS": "abc"}, err)
    assert info.value.code == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["level"] == "error" and line["variable"] == "FD_WORKERS"
    assert "FD_WORKERS" in line["msg"] and "tok-123" not in lines[0]
    assert {"ts", "service", "task_id", "trace_id", "span_id"} <= set(line)


def test_missing_token_exits_2_in_a_real_process():
    code = ("import os,sys; from reference_impl.runtime.config import load_config_or_exit;"
            "load_config_or_exit('collector', os.environ)")
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=30, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})
    assert proc.returncode == 2
    assert "FD_TOKEN" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_all_roles_known():
    assert set(ROLES) == {"orchestrator", "collector", "analyzer", "reporter"}
