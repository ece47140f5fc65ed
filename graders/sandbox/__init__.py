"""The sandbox every candidate service runs in (bubblewrap + setpriv), and the grader's
own namespaces. docs/THREAT_MODEL.md says what it promises and what it does not.

- `policy`: a pure description of one service's sandbox and its bwrap argv;
- `layout`: the host facts it is built from (system dirs, base Python, where the kit is);
- `uids`: one unprivileged uid per deployment (root mode);
- `procs`: a sandbox's processes, found by PID namespace; killing it; proving it empty;
- `probe`: can the sandbox be set up here, in which mode, and if not why;
- `netns`: the grade's own network + mount namespace;
- `reaper`: the grader's own PID namespace that every sandbox is started in, so that all
  of them die with the grader however it dies.
"""
from __future__ import annotations

import os

from .probe import Probe, probe

__all__ = ["Probe", "probe", "enabled_by_default", "ENV_SWITCH", "SandboxUnavailable"]

#: The sandbox is on by default. FAULTDRILL_SANDBOX=0 turns the default off for library
#: callers (e.g. a benchmark's unsandboxed baseline); the CLI's --unsafe-no-sandbox is the
#: documented switch for people, and is what reports mark as UNSANDBOXED.
ENV_SWITCH = "FAULTDRILL_SANDBOX"


class SandboxUnavailable(RuntimeError):
    """The sandbox was required and cannot be set up here; the message says why."""


def enabled_by_default() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip() not in ("0", "no", "false")
