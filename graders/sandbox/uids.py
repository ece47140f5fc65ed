"""One unprivileged uid/gid per deployment (root mode).

Why per deployment and from a high range: two deployments (two grades side by side, or
the shared deployment and a check's extra one) must not be able to signal, trace or read
each other; a uid no account uses owns nothing on the host (no files, no processes), so
the candidate can write only where the grader chowned a directory to it; RLIMIT_NPROC,
which the kernel counts per uid, then bounds exactly one deployment's processes and
threads. A uid is picked at random in [UID_BASE, UID_BASE + UID_SPAN) (so concurrent
graders on one host, which share no state, collide with probability ~ n^2 / 2^25) and
refused if any process runs with it or any account in /etc/passwd has it.
"""
from __future__ import annotations

import os
import random
import threading

__all__ = ["UID_BASE", "UID_SPAN", "pick_uid", "processes_of_uid", "uid_in_use"]

UID_BASE = 2_000_000_000
UID_SPAN = 1 << 24

_lock = threading.Lock()
_handed_out: set[int] = set()
# Which uid a deployment gets is not part of any replayable outcome; concurrent graders
# must not walk the same sequence, so this generator is seeded per process.
_rng = random.Random(f"faultdrill-uids:{os.getpid()}:{os.urandom(8).hex()}")


def _passwd_ids(path: str = "/etc/passwd") -> set[int]:
    ids: set[int] = set()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split(":")
                for field in parts[2:4]:
                    if field.isdigit():
                        ids.add(int(field))
    except OSError:
        pass
    return ids


def processes_of_uid(uid: int) -> list[int]:
    """Host pids whose real or effective uid is `uid` (zombies excluded)."""
    from graders.sandbox.procs import host_pids
    found = []
    for pid in host_pids():
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                status = f.read()
        except OSError:
            continue
        uids = state = None
        for line in status.split(b"\n"):
            if line.startswith(b"Uid:"):
                uids = [int(x) for x in line.split()[1:3]]
            elif line.startswith(b"State:"):
                state = line.split()[1:2]
        if uids and uid in uids and state not in ([b"Z"], [b"X"]):
            found.append(pid)
    return found


def uid_in_use(uid: int) -> bool:
    return uid in _passwd_ids() or bool(processes_of_uid(uid))


def pick_uid() -> int:
    """A fresh uid (also used as the gid) for one deployment."""
    with _lock:
        for _ in range(64):
            uid = UID_BASE + _rng.randrange(UID_SPAN)
            if uid in _handed_out or uid_in_use(uid):
                continue
            _handed_out.add(uid)
            return uid
    raise RuntimeError("could not find an unused uid for the sandbox")
