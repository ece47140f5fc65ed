"""The sequential pipeline with per-attempt timeouts, a task deadline and retries (SPEC §10).

Sans-I/O in spirit: the network call, the clock, sleeping and randomness are injected,
so the retry/backoff/deadline rules are tested without sockets and the timing of a test
run can be replayed from its seed. The caller supplies ``call(step, payload, timeout_s)``
returning an ``Attempt``; this module decides what to do with it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable

from reference_impl.protocol.errors import ProtocolError
from reference_impl.orchestrator.backoff import backoff_delay_ms
from reference_impl.orchestrator.routing import STEP_AGENT, build_step_payload


@dataclass(frozen=True)
class Attempt:
    """What one attempt produced.

    ``kind`` is ``ok`` (``payload`` is the reply payload), ``error`` (the agent replied
    with the error object ``error``) or ``transport`` (no usable reply; ``error`` is the
    cause to report: code 1 ``timeout`` or 14 ``internal_error``).
    """

    kind: str
    payload: dict | None = None
    error: dict | None = None


@dataclass(frozen=True)
class Settings:
    attempt_timeout_ms: int = 2000
    max_attempts: int = 4
    base_ms: int = 100
    cap_ms: int = 2000


@dataclass
class Outcome:
    ok: bool
    result: dict | None = None
    error: dict | None = None
    steps: list[dict] = field(default_factory=list)


def transport_cause(kind: str, message: str, **details) -> dict:
    """The ``cause`` for a transport failure: ``timeout`` or ``internal_error`` (SPEC §6)."""
    return ProtocolError(kind, message, **details).error_object()


def _retry_after(error: dict | None) -> int | None:
    if not error:
        return None
    value = (error.get("details") or {}).get("retry_after_ms")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def run_pipeline(steps: list[str], task_input: dict, thresholds: dict, *,
                 call: Callable[[str, dict, float], Attempt],
                 validate_output: Callable[[str, dict], None],
                 settings: Settings, deadline: float, deadline_ms: int,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None,
                 now_iso: Callable[[], str] = lambda: "",
                 on_event: Callable[..., None] = lambda event, **fields: None,
                 step_records: list[dict] | None = None,
                 on_change: Callable[[], None] = lambda: None,
                 on_attempt: Callable[[dict], None] = lambda entry: None) -> Outcome:
    """Run ``steps`` in order; return the last step's output or the error that ended the task.

    ``deadline`` is on the ``clock`` scale. ``step_records`` (appended to as steps start)
    lets the caller show progress while the pipeline runs; ``on_change`` is called after
    each change so the caller can persist it. ``on_attempt`` receives one entry per
    finished attempt (``attempt_entry``): when it started, how long it took, how it
    ended. It is kept apart from the step records because those are the contract's
    (``status_ok``/``task_record`` schemas), while attempt timings are the dashboard's.
    """
    rng = rng or random.Random()
    records = step_records if step_records is not None else []
    previous: dict | None = None

    def timeout_error(step: str) -> dict:
        return ProtocolError("timeout", f"task deadline of {deadline_ms} ms passed during step {step}",
                             step=step, timeout_ms=deadline_ms).error_object()

    if deadline - clock() <= 0:
        # The deadline passed while the task was queued: no step is attempted, and
        # details.step is null (SPEC §10.3).
        err = ProtocolError("timeout", f"task deadline of {deadline_ms} ms passed before any step started",
                            step=None, timeout_ms=deadline_ms).error_object()
        return Outcome(False, error=err, steps=records)

    for step in steps:
        agent = STEP_AGENT[step]
        rec = {"step": step, "agent": agent, "status": "running", "attempts": 0,
               "started_at": now_iso(), "finished_at": None, "error": None}
        records.append(rec)
        on_change()

        def finish(status: str, error: dict | None) -> None:
            rec["status"] = status
            rec["error"] = error
            rec["finished_at"] = now_iso()
            on_change()

        payload = build_step_payload(step, task_input, previous, thresholds)
        attempts = 0
        while True:
            left = deadline - clock()
            if left <= 0:
                err = timeout_error(step)
                finish("failed", err)
                return Outcome(False, error=err, steps=records)
            attempts += 1
            rec["attempts"] = attempts
            on_change()
            on_event("step_attempt", step=step, attempt=attempts, agent=agent)
            timeout_s = min(settings.attempt_timeout_ms / 1000.0, left)
            attempt_started_at, attempt_t0 = now_iso(), clock()
            result = call(step, payload, timeout_s)
            attempt_ms = (clock() - attempt_t0) * 1000.0
            if result.kind == "ok":
                try:
                    validate_output(step, result.payload)
                except ProtocolError as exc:
                    cause = exc.error_object()
                    on_attempt(attempt_entry(step, agent, attempts, attempt_started_at, attempt_ms,
                                             "invalid_output", cause))
                    err = _upstream(step, agent, attempts, cause)
                    finish("failed", err)
                    return Outcome(False, error=err, steps=records)
                on_attempt(attempt_entry(step, agent, attempts, attempt_started_at, attempt_ms, "ok", None))
                previous = result.payload
                finish("succeeded", None)
                on_event("step_succeeded", step=step, attempts=attempts)
                break
            cause = result.error or transport_cause("internal_error", "no reply")
            on_attempt(attempt_entry(step, agent, attempts, attempt_started_at, attempt_ms,
                                     "transport" if result.kind == "transport" else "error", cause))
            retryable = result.kind == "transport" or bool(cause.get("retryable"))
            if not retryable:
                err = _upstream(step, agent, attempts, cause)
                finish("failed", err)
                return Outcome(False, error=err, steps=records)
            if deadline - clock() <= 0:
                err = timeout_error(step)
                finish("failed", err)
                return Outcome(False, error=err, steps=records)
            if attempts >= settings.max_attempts:
                err = _upstream(step, agent, attempts, cause)
                finish("failed", err)
                return Outcome(False, error=err, steps=records)
            delay_ms = backoff_delay_ms(attempts, settings.base_ms, settings.cap_ms, rng,
                                        _retry_after(cause))
            if clock() + delay_ms / 1000.0 >= deadline:
                # The next attempt could only start after the deadline: fail now, not later.
                err = timeout_error(step)
                finish("failed", err)
                return Outcome(False, error=err, steps=records)
            on_event("retry_scheduled", step=step, attempt=attempts, delay_ms=int(round(delay_ms)),
                     cause=cause.get("name"))
            sleep(delay_ms / 1000.0)
    return Outcome(True, result=previous, steps=records)



def attempt_entry(step: str, agent: str, attempt: int, started_at: str, duration_ms: float,
                  outcome: str, cause: dict | None) -> dict:
    """One attempt as the dashboard shows it: ``outcome`` is ``ok``, ``error`` (the agent
    answered with an error), ``transport`` (no usable reply: timeout, reset, closed) or
    ``invalid_output`` (a reply that broke the step's output schema); ``cause`` is the
    error's name, code and message (None when the attempt succeeded)."""
    return {"step": step, "agent": agent, "attempt": attempt, "started_at": started_at,
            "duration_ms": round(duration_ms, 1), "outcome": outcome,
            "cause": None if cause is None else {"name": cause.get("name"), "code": cause.get("code"),
                                                 "message": _capped(cause.get("message"))}}


def _capped(text: object, limit: int = 300) -> str | None:
    """An agent's message as the dashboard keeps it: agent-controlled, so bounded."""
    if not isinstance(text, str):
        return None
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _upstream(step: str, agent: str, attempts: int, cause: dict) -> dict:
    msg = cause.get("message") or cause.get("name") or "error"
    return ProtocolError("upstream_failed",
                         f"step {step} failed on {agent} after {attempts} attempt"
                         f"{'s' if attempts != 1 else ''}: {msg}",
                         step=step, agent=agent, attempts=attempts, cause=cause).error_object()
