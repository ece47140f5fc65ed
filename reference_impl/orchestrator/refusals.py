"""Requests the orchestrator refused before any pipeline ran: counted by reason, recent ones kept.

Why a separate log: a refused request (bad token, schema violation, busy, idempotency
conflict, unsupported version, unknown task...) never becomes a task, so the task table
and its dashboard rows never show it; yet "why are my submits bounced?" is the first
question an operator asks. The metrics count outcomes, but without the message, the
msg_id or the peer that would let someone find the client.

What is kept, and why nothing secret can be in it: for every refusal the reason (error
name and code), the request type as a metric label would show it (a known type or
``other``), the peer address and the time. The msg_id, task_id and trace id only when the
request was authenticated (they come from the reply, which fills them only from readable,
authenticated fields, SPEC §7), and the error message only then too (an unauthenticated
peer's refusal is described by a fixed text): nothing an unauthenticated peer sent is
stored, so a wrong token cannot land here. Strings are capped, and the service's own
token is replaced by ``[REDACTED]`` wherever it would appear.

Bounded: counts are one integer per distinct error name (the error table is finite; any
other name is counted as ``other``), the recent list is a ring buffer of ``capacity``
entries. Thread-safe; recording is a dict update and a deque append under one lock.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable

from reference_impl.protocol.errors import ERRORS

RECENT_CAPACITY = 100
MAX_TEXT = 200
MAX_ID = 64
UNAUTHENTICATED_TEXT = "refused before authentication; nothing the peer sent is kept"


def _cap(value: object, limit: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


class RefusalLog:
    """Counts by reason and a ring buffer of the most recent refusals (newest last)."""

    def __init__(self, *, now_iso: Callable[[], str], capacity: int = RECENT_CAPACITY,
                 secrets: tuple[str, ...] = ()) -> None:
        self.now_iso = now_iso
        self.capacity = capacity
        self._secrets = tuple(s for s in secrets if s)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._total = 0
        self._recent: deque[dict] = deque(maxlen=capacity)

    def _clean(self, value: object, limit: int) -> str | None:
        text = _cap(value, 10 * limit)
        if text is None:
            return None
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[REDACTED]")
        return _cap(text, limit)

    def record(self, reply: dict, *, request_type: str | None, peer: str | None,
               authenticated: bool, trace_id: str | None = None) -> None:
        """Note one error ``reply`` (a whole envelope) sent without running any task."""
        error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
        raw_name = error.get("name")
        name = raw_name if isinstance(raw_name, str) and raw_name in ERRORS else "other"
        entry = {
            "at": self.now_iso(),
            "reason": name,
            "code": error.get("code") if isinstance(error.get("code"), int) else None,
            "type": request_type,
            "peer": _cap(peer, MAX_ID),
            "msg_id": self._clean(reply.get("in_reply_to"), MAX_ID) if authenticated else None,
            "task_id": self._clean(reply.get("task_id"), MAX_ID) if authenticated else None,
            "trace_id": trace_id if authenticated else None,
            "message": self._clean(error.get("message"), MAX_TEXT) if authenticated else UNAUTHENTICATED_TEXT,
        }
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1
            self._total += 1
            self._recent.append(entry)

    def snapshot(self, limit: int | None = None) -> dict:
        """``{"total", "counts": {reason: n}, "recent": [newest first]}`` (copies)."""
        with self._lock:
            recent = [dict(e) for e in reversed(self._recent)]
            counts = dict(sorted(self._counts.items(), key=lambda kv: (-kv[1], kv[0])))
            total = self._total
        if limit is not None:
            recent = recent[:max(0, limit)]
        return {"total": total, "counts": counts, "capacity": self.capacity, "recent": recent}
