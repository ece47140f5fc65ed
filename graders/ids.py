"""Identifiers the grader sends to a submission: task ids, msg ids, tokens.

Why one module: a submission that could tell which check is running could behave well
only while it is watched. Ids used to carry the check (`durable-…`, `corrupt-a-…`), a hash
of the seed, or a counter, so a candidate could recognise a check from its requests.
Here every id is an HMAC of a per-grade random secret and a counter: ids of two grades
share nothing, and nothing in an id names a check, a run or the seed.

Determinism: the secret is random per grade (never derived from the printed seed), while
every verdict-relevant choice (inputs, fault schedules, timing of faults) comes from the
seed. A replay with the same seed therefore sends the same work and faults under other
names; a program whose behaviour depends on the exact name of a task id is not what the
seed replays (task ids are opaque in SPEC §5).

All ids match SPEC §5's patterns (task_id `^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`, msg_id
1-128 characters) and look alike: lowercase hex behind a one-letter kind.
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
import threading

__all__ = ["GradeIds", "new_secret", "random_msg_id"]

_ID_HEX = 24          # 96 bits: no collision within a grade, nothing to guess


def new_secret() -> bytes:
    """A fresh per-grade secret (32 random bytes from the OS)."""
    return secrets.token_bytes(32)


class GradeIds:
    """Every id one grade sends. Thread-safe (checks run requests from several threads)."""

    def __init__(self, secret: bytes | None = None):
        self._secret = secret if secret is not None else new_secret()
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def _mac(self, kind: str, n: int, nbytes: int = _ID_HEX // 2) -> str:
        return hmac.new(self._secret, f"{kind}:{n}".encode(), hashlib.sha256).hexdigest()[:2 * nbytes]

    def _next(self) -> int:
        with self._lock:
            return next(self._counter)

    def task_id(self) -> str:
        """A task id no other task of this grade (or any other grade) uses."""
        return "t" + self._mac("task", self._next())

    def msg_id(self) -> str:
        return "m" + self._mac("msg", self._next())

    def token(self) -> str:
        """The grade's shared token (SPEC §2 FD_TOKEN): 32 hex characters, unique per grade,
        so a leak into a log or a reply is unambiguous and redactable."""
        return self._mac("token", 0, 16)


def random_msg_id() -> str:
    """A msg_id for requests made outside a grade's ids (the CLI, tests): random, no counter."""
    return "m" + secrets.token_hex(_ID_HEX // 2)
