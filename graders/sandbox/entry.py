"""What `faultdrill grade` / `check` do about the sandbox before anything else.

Why one function for both commands: the order matters and must not drift between them.
1. With `--unsafe-no-sandbox`, nothing.
2. Otherwise the sandbox must work here (`probe`; for `--driver docker`, the network
   isolation of graders/drivers/docker_network.py); if it cannot, the command refuses with
   one line and exit 3 (incomplete: nothing was graded), saying what to do instead.
3. Then, when the command is the process's own entry point, it re-execs itself (same pid)
   into the grade's own network + mount namespace (`netns`), and sets that up once. For
   the Docker driver the namespace it was started in (the engine's) is kept open across
   the re-exec, so that each deployment's bridge can be joined to the grade's namespace.
"""
from __future__ import annotations

import os
import sys

from . import enabled_by_default, netns
from .probe import probe

__all__ = ["prepare_command", "ADVICE", "EXIT_INCOMPLETE"]

EXIT_INCOMPLETE = 3
ADVICE = ("use --driver docker, or grade inside a throwaway VM, or pass --unsafe-no-sandbox "
          "knowingly (docs/THREAT_MODEL.md)")
DOCKER_ADVICE = ("grade as root on the engine's own machine with iproute2 installed, or use the "
                 "process driver, or pass --unsafe-no-sandbox knowingly (docs/DOCKER.md)")
_set_up: dict | None = None


def _is_entry(command: str) -> bool:
    """True when this process was started as `faultdrill <command> ...` (console script
    or `python -m graders.cli`), so re-exec'ing sys.argv re-runs exactly this command;
    False when a library caller (a test, the demo) runs the command in-process."""
    argv0 = sys.argv[0] if sys.argv else ""
    return (os.path.basename(argv0) == "faultdrill" or argv0.endswith(os.path.join("graders", "cli.py"))) \
        and sys.argv[1:2] == [command]


def sandbox_wanted(args) -> bool:
    return (getattr(args, "driver", "process") in ("process", "docker")
            and not getattr(args, "unsafe_no_sandbox", False) and enabled_by_default())


def prepare_command(args, command: str) -> int | None:
    """None to go on, or the exit status to return at once (see the module docstring)."""
    global _set_up
    driver = getattr(args, "driver", "process")
    if driver not in ("process", "docker") or getattr(args, "unsafe_no_sandbox", False):
        return None
    if not enabled_by_default():
        return None
    if driver == "docker":
        from graders.drivers.docker_network import export_engine_namespace, isolation_unavailable
        why = isolation_unavailable()
        if why:
            print(f"faultdrill {command}: cannot isolate the Docker containers' network here: "
                  f"{why}; {DOCKER_ADVICE}", file=sys.stderr)
            return EXIT_INCOMPLETE
    else:
        found = probe()
        if not found.ok:
            print(f"faultdrill {command}: cannot sandbox the candidate's code here: {found.reason}; "
                  f"{ADVICE}", file=sys.stderr)
            return EXIT_INCOMPLETE
    if _is_entry(command) and not netns.inside():
        if driver == "docker":
            export_engine_namespace()           # inherited across the re-exec
        try:
            netns.enter(sys.argv[1:])          # returns only when it could not exec
        except netns.NamespaceUnavailable as exc:
            print(f"faultdrill {command}: cannot give the grade its own network namespace here: "
                  f"{exc}; {DOCKER_ADVICE if driver == 'docker' else ADVICE}", file=sys.stderr)
            return EXIT_INCOMPLETE
    if driver == "docker" and netns.inside():
        from graders.drivers.docker_network import engine_namespace
        # Take the descriptor now (no child of the grader inherits it); without it the
        # deployments could not be isolated, and a grade must never silently be less so.
        if engine_namespace() is None:
            print(f"faultdrill {command}: cannot isolate the Docker containers' network here: "
                  "the engine's network namespace was not carried into the grade's; "
                  f"{DOCKER_ADVICE}", file=sys.stderr)
            return EXIT_INCOMPLETE
    if netns.inside() and _set_up is None:
        try:
            _set_up = netns.setup_inside()
        except OSError as exc:
            print(f"faultdrill {command}: cannot set up the grade's network namespace: {exc}",
                  file=sys.stderr)
            return EXIT_INCOMPLETE
    return None


def grade_namespace() -> dict | None:
    """What `netns.setup_inside` set up for this process (None: the host's namespaces)."""
    return _set_up
