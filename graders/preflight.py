"""Preflight: what a grade needs from this machine, checked before any check runs.

Why: a grade that discovers half-way that `cryptography` is missing turns the TLS checks
into grader errors, and one on a machine without a Docker engine turns every check into
one; either reads like a grade when it is not one. Here every need is checked first, and
what is missing is ONE line naming the fix, with exit status 3 (incomplete: nothing was
graded), before any candidate code runs.

Checked: the Python modules the selected checks import, the Docker engine (for
`--driver docker`), the sandbox (for the process driver, unless `--unsafe-no-sandbox`;
via `graders.sandbox.probe()`), and that loopback ports can be bound. Each check is a
function returning problems; `run` collects them.
"""
from __future__ import annotations

import importlib.util
import socket
from dataclasses import dataclass

__all__ = ["Problem", "MODULE_NEEDS", "missing_modules", "docker_engine", "sandbox",
           "loopback_ports", "run", "one_line", "EXIT_INCOMPLETE"]

EXIT_INCOMPLETE = 3

#: module -> (pip distribution, the check ids needing it, or id prefixes ending in "."; None =
#: every grade). Prefixes, not interviewer-only ids: this module ships in the candidate bundle.
MODULE_NEEDS: dict[str, tuple[str, frozenset[str] | None]] = {
    "cryptography": ("cryptography", frozenset({"tls."})),
    "prometheus_client": ("prometheus-client", frozenset({"observability.metrics_format"})),
    "hypothesis": ("hypothesis", None),     # graders/faults/hostile.py, imported by the checks
}


@dataclass(frozen=True)
class Problem:
    what: str       # what is missing, in one clause
    fix: str        # what to do, in one clause


def missing_modules(check_ids=None, *, find_spec=importlib.util.find_spec) -> list[Problem]:
    """Modules the selected checks import that this Python cannot find."""
    wanted = None if check_ids is None else set(check_ids)
    missing = []
    for module, (dist, needed_by) in MODULE_NEEDS.items():
        if needed_by is not None and wanted is not None and not any(
                w == n or (n.endswith(".") and w.startswith(n)) for w in wanted for n in needed_by):
            continue
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(dist)
    if not missing:
        return []
    return [Problem(f"Python package(s) {', '.join(missing)} not installed (the grade imports them)",
                    "reinstall the kit with its dependencies: python3 -m pip install -e .")]


def docker_engine() -> list[Problem]:
    """For --driver docker: the SDK and an engine that answers a ping."""
    try:
        from graders.drivers.docker import engine_status
    except ImportError as exc:
        return [Problem(f"the Docker driver cannot be loaded ({exc})", "python3 -m pip install -e .")]
    ok, reason = engine_status()
    if ok:
        return []
    return [Problem(f"no Docker engine for --driver docker: {reason}",
                    "start an engine (docker/install-engine.sh installs Debian's) or use --driver process")]


def sandbox(*, unsafe: bool) -> list[Problem]:
    """For the process driver: the sandbox works here, unless the interviewer passed
    --unsafe-no-sandbox (then every report says the candidate ran unsandboxed)."""
    if unsafe:
        return []
    try:
        from graders import sandbox as sandbox_pkg
        from graders.sandbox.probe import probe
    except ImportError:
        return [Problem("the sandbox package (graders/sandbox) is not available in this kit",
                        "update the kit, or pass --unsafe-no-sandbox knowingly")]
    enabled = getattr(sandbox_pkg, "enabled_by_default", lambda: True)
    if not enabled():
        return []
    found = probe()
    if getattr(found, "ok", False):
        return []
    return [Problem(f"cannot sandbox the candidate's code here: {getattr(found, 'reason', found)}",
                    "use --driver docker, grade inside a throwaway VM, or pass --unsafe-no-sandbox knowingly")]


def loopback_ports() -> list[Problem]:
    """The grader's proxies and the services listen on 127.0.0.1: binding must work."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
    except OSError as exc:
        return [Problem(f"cannot listen on 127.0.0.1 ({exc})", "bring the loopback interface up (ip link set lo up)")]
    return []


def run(*, driver: str, check_ids=None, unsafe_no_sandbox: bool = False) -> list[Problem]:
    """Every problem found, in the order a person would fix them."""
    problems = missing_modules(check_ids)
    problems += loopback_ports()
    if driver == "docker":
        problems += docker_engine()
    elif driver == "process":
        problems += sandbox(unsafe=unsafe_no_sandbox)
    return problems


def one_line(command: str, problems: list[Problem]) -> str:
    """The one error line: `faultdrill grade: preflight failed: A (fix: B); C (fix: D)`."""
    return (f"faultdrill {command}: preflight failed, nothing was graded: "
            + "; ".join(f"{p.what} (fix: {p.fix})" for p in problems))
