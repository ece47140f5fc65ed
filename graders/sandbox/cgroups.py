"""A control group per deployment: a memory and a process bound for all its services.

Why: rlimits bound each process (2 GiB of address space), so a deployment that forks or
starts many services could still take the machine's memory; RLIMIT_NPROC bounds processes
per uid, which only root mode gives each deployment. Where the grader may create cgroups
(root, with the memory and pids controllers available), every service of a deployment
joins one group with `memory` and `pids` limits, and the kernel enforces them for all
its processes together. cgroup v2 is used when the unified hierarchy is mounted at
/sys/fs/cgroup with both controllers enabled for its children; else cgroup v1's `memory`
and `pids` hierarchies. Where neither is possible (an ordinary user, a container without
them), `create` returns None and the description says so: the rlimits still apply.

A process joins before it execs (`join_fd`s are written "0" between fork and exec), so no
child of it can start outside. A group is removed when its deployment closes; one left by
a grader that was SIGKILLed is empty (its processes died with the grader) and is removed
by the next deployment's `sweep` once it is older than a minute.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

__all__ = ["DeploymentCgroup", "create", "sweep", "PREFIX", "MEMORY_BYTES", "PIDS_MAX"]

ROOT = "/sys/fs/cgroup"
PREFIX = "faultdrill-"
MEMORY_BYTES = 2 * 1024 ** 3
PIDS_MAX = 1024
STALE_AFTER_S = 60.0


@dataclass
class DeploymentCgroup:
    version: int
    dirs: list[str] = field(default_factory=list)
    memory_bytes: int = MEMORY_BYTES
    pids_max: int = PIDS_MAX

    def procs_files(self) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in self.dirs]

    def open_join_fds(self) -> list[int]:
        """Descriptors the child writes "0" to (between fork and exec) to join."""
        return [os.open(p, os.O_WRONLY | os.O_CLOEXEC) for p in self.procs_files()]

    def members(self) -> list[int]:
        pids: list[int] = []
        for path in self.procs_files():
            try:
                with open(path) as f:
                    pids += [int(x) for x in f.read().split()]
            except OSError:
                pass
        return sorted(set(pids))

    def describe(self) -> dict:
        return {"cgroup": f"v{self.version}", "memory_bytes": self.memory_bytes,
                "pids_max": self.pids_max}

    def remove(self) -> list[str]:
        errors = []
        for d in self.dirs:
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError as exc:
                errors.append(f"cgroup {d}: {exc.strerror}")
        return errors


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _v2_ready() -> bool:
    try:
        with open(os.path.join(ROOT, "cgroup.subtree_control")) as f:
            enabled = f.read().split()
    except OSError:
        return False
    return "memory" in enabled and "pids" in enabled


def _v1_roots() -> list[str] | None:
    roots = [os.path.join(ROOT, "memory"), os.path.join(ROOT, "pids")]
    if all(os.path.isfile(os.path.join(r, "cgroup.procs")) for r in roots):
        return roots
    return None


def create(name: str, *, memory_bytes: int = MEMORY_BYTES, pids_max: int = PIDS_MAX) -> DeploymentCgroup | None:
    """A new group named PREFIX + name with both limits set, or None where not possible."""
    if os.geteuid() != 0:
        return None
    made: list[str] = []
    try:
        if _v2_ready():
            d = os.path.join(ROOT, PREFIX + name)
            os.mkdir(d, 0o755)
            made.append(d)
            _write(os.path.join(d, "memory.max"), str(memory_bytes))
            _write(os.path.join(d, "pids.max"), str(pids_max))
            return DeploymentCgroup(2, made, memory_bytes, pids_max)
        roots = _v1_roots()
        if roots is None:
            return None
        mem, pids = (os.path.join(r, PREFIX + name) for r in roots)
        os.mkdir(mem, 0o755)
        made.append(mem)
        os.mkdir(pids, 0o755)
        made.append(pids)
        _write(os.path.join(mem, "memory.limit_in_bytes"), str(memory_bytes))
        _write(os.path.join(pids, "pids.max"), str(pids_max))
        return DeploymentCgroup(1, made, memory_bytes, pids_max)
    except OSError:
        for d in reversed(made):
            try:
                os.rmdir(d)
            except OSError:
                pass
        return None


def sweep(now: float | None = None) -> list[str]:
    """Remove empty faultdrill groups older than STALE_AFTER_S (left by a killed grader);
    a populated group is never removed (rmdir refuses it). Returns what was removed."""
    now = time.time() if now is None else now
    removed = []
    for parent in (ROOT, os.path.join(ROOT, "memory"), os.path.join(ROOT, "pids")):
        try:
            names = [n for n in os.listdir(parent) if n.startswith(PREFIX)]
        except OSError:
            continue
        for n in names:
            d = os.path.join(parent, n)
            try:
                if now - os.stat(d).st_mtime < STALE_AFTER_S:
                    continue
                os.rmdir(d)
                removed.append(d)
            except OSError:
                pass
    return removed
