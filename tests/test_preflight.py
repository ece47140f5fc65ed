"""graders/preflight.py: what a grade needs, checked before any check runs (issue 12 §2).
A missing need is ONE error line and exit 3 (incomplete), with nothing started."""
from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from graders import cli, preflight

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "reference_impl"


def _no(module_names):
    real = preflight.importlib.util.find_spec

    def find_spec(name):
        return None if name in module_names else real(name)
    return find_spec


def test_everything_present_here():
    assert preflight.missing_modules() == []
    assert preflight.loopback_ports() == []


def test_missing_modules_named_with_the_fix():
    problems = preflight.missing_modules(find_spec=_no({"cryptography", "prometheus_client"}))
    assert len(problems) == 1
    assert "cryptography" in problems[0].what and "prometheus-client" in problems[0].what
    assert "pip install -e ." in problems[0].fix


def test_a_module_is_needed_only_by_the_checks_that_import_it():
    find = _no({"cryptography"})
    assert preflight.missing_modules(["pipeline.routes"], find_spec=find) == []
    assert preflight.missing_modules(["pipeline.routes", "tls.mutual"], find_spec=find)
    assert preflight.missing_modules(None, find_spec=find), "a full grade needs everything"
    assert preflight.missing_modules(["pipeline.routes"], find_spec=_no({"hypothesis"}))


def test_docker_engine_problem(monkeypatch):
    import graders.drivers.docker as docker_driver
    monkeypatch.setattr(docker_driver, "engine_status", lambda: (False, "no engine at unix:///x"))
    problems = preflight.run(driver="docker", unsafe_no_sandbox=True)
    assert [p.what for p in problems] == ["no Docker engine for --driver docker: no engine at unix:///x"]
    assert "--driver process" in problems[0].fix


def test_sandbox_problem_and_the_unsafe_flag(monkeypatch):
    import importlib
    import graders.sandbox as sandbox_pkg
    probe_mod = importlib.import_module("graders.sandbox.probe")   # the package re-exports probe()
    monkeypatch.setattr(sandbox_pkg, "enabled_by_default", lambda: True)
    monkeypatch.setattr(probe_mod, "probe", lambda: probe_mod.Probe(False, "none", "bwrap is missing"))
    problems = preflight.run(driver="process")
    assert len(problems) == 1 and "bwrap is missing" in problems[0].what
    assert "--unsafe-no-sandbox" in problems[0].fix
    assert preflight.run(driver="process", unsafe_no_sandbox=True) == []


def test_loopback_problem(monkeypatch):
    class Broken(socket.socket):
        def bind(self, addr):
            raise OSError(99, "Cannot assign requested address")
    monkeypatch.setattr(preflight.socket, "socket", Broken)
    problems = preflight.loopback_ports()
    assert problems and "127.0.0.1" in problems[0].what


def test_one_line():
    line = preflight.one_line("grade", [preflight.Problem("A is missing", "install A"),
                                        preflight.Problem("B is down", "start B")])
    assert "\n" not in line
    assert line == ("faultdrill grade: preflight failed, nothing was graded: A is missing (fix: install A); "
                    "B is down (fix: start B)")


@pytest.mark.parametrize("command", ["grade", "check"])
def test_a_failed_preflight_exits_3_with_one_line_before_anything_runs(monkeypatch, tmp_path, capsys, command):
    started = []
    import graders.harness as harness
    monkeypatch.setattr(harness, "run_checks", lambda *a, **k: started.append(1))
    monkeypatch.setattr(preflight, "missing_modules",
                        lambda ids=None, **k: [preflight.Problem("Python package(s) cryptography not installed",
                                                                 "python3 -m pip install -e .")])
    argv = [command, str(REFERENCE), "--unsafe-no-sandbox"] + (["--out", str(tmp_path / "o")] if command == "grade" else [])
    t0 = time.monotonic()
    assert cli.main(argv) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "preflight failed" in err[0] and "cryptography" in err[0]
    assert "Traceback" not in "\n".join(err)
    assert not started and not (tmp_path / "o").exists()
    assert time.monotonic() - t0 < 10


def test_no_docker_engine_is_exit_3_not_38_grader_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    assert cli.main(["grade", str(REFERENCE), "--driver", "docker", "--out", str(tmp_path / "o")]) == 3
    err = capsys.readouterr().err
    assert "no Docker engine" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["grade", "check"])
def test_checks_that_cannot_even_be_imported_are_a_preflight_failure(monkeypatch, tmp_path, capsys, command):
    """A fresh machine without hypothesis: the check modules do not import. One line,
    exit 3, no traceback."""
    import graders.commands.grade as grade_cmd

    def broken():
        raise ModuleNotFoundError("No module named 'hypothesis'", name="hypothesis")
    monkeypatch.setattr(grade_cmd, "all_checks", broken)
    monkeypatch.setattr(preflight, "missing_modules",
                        lambda ids=None, **k: [preflight.Problem("Python package(s) hypothesis not installed",
                                                                 "python3 -m pip install -e .")])
    assert cli.main([command, str(REFERENCE), "--unsafe-no-sandbox"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hypothesis" in err[0] and "Traceback" not in err[0]
