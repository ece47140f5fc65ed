"""Corrupt memory contents (SPEC §11.4) for checks that damage a service's records.

Why a catalogue: every way a record file can be corrupt — truncated by a crash, garbage,
the wrong JSON shape, empty, over the 16 MiB limit, unreadable, or naming another task —
must be met the same way (quarantine, log, count, keep serving), so checks iterate over
one list instead of inventing damage ad hoc.  Functions return bytes; `unreadable` acts
through the deployment because "cannot be read" is not a content.
"""
from __future__ import annotations

import json
import random
from typing import Callable

from graders.decode import decode_object

__all__ = ["truncated", "garbage", "wrong_shape", "empty", "oversized", "unreadable",
           "mismatched_task_id", "not_utf8", "CORRUPTIONS", "MAX_RECORD_BYTES"]

MAX_RECORD_BYTES = 16 * 1024 * 1024


def truncated(data: bytes) -> bytes:
    """A crash mid-write without atomic rename: the first half of a valid record."""
    if len(data) < 2:
        return b"{"
    return data[: len(data) // 2]


def garbage(rng: random.Random, n: int = 256) -> bytes:
    """n random bytes (never valid JSON: starts with 0xFF)."""
    return b"\xff" + bytes(rng.randrange(256) for _ in range(max(0, n - 1)))


def wrong_shape() -> bytes:
    """Valid UTF-8 JSON that is not a record object."""
    return b'[{"format": 1, "task_id": "t-1"}, "not a record"]'


def empty() -> bytes:
    return b""


def not_utf8() -> bytes:
    return b'{"format": 1, "task_id": "caf\xe9"}'


def oversized(mb: int = 17) -> bytes:
    """Syntactically valid JSON object over the 16 MiB record limit."""
    size = max(mb * 1024 * 1024, MAX_RECORD_BYTES + 1)
    head, tail = b'{"format": 1, "pad": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def mismatched_task_id(data: bytes, other_task_id: str = "someone-else") -> bytes:
    """A well-formed record whose task_id does not match its file name. `data` is the
    candidate's own record, read through the bounded decoder (a record that is not a JSON
    object is the candidate's failure, CandidateDataError, not a grader crash)."""
    record = decode_object(data, what="memory record", max_bytes=MAX_RECORD_BYTES)
    record["task_id"] = other_task_id
    return json.dumps(record).encode()


def unreadable(deployment, role: str, relpath: str) -> None:
    """Make the record unreadable (root can read mode 000 files: the driver replaces the
    path by a directory)."""
    deployment.make_unreadable(role, relpath)


#: name -> function(original_bytes, rng) -> corrupt bytes, for content damage.
CORRUPTIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "truncated": lambda data, rng: truncated(data),
    "garbage": lambda data, rng: garbage(rng, 512),
    "wrong_shape": lambda data, rng: wrong_shape(),
    "empty": lambda data, rng: empty(),
    "not_utf8": lambda data, rng: not_utf8(),
    "mismatched_task_id": lambda data, rng: mismatched_task_id(data),
}
