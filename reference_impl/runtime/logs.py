"""JSON-lines logger (SPEC §12): required fields, task/trace context, secret redaction.

Why it looks like this:

* Graders parse stderr line by line, so every line is one JSON object written with a
  single ``write`` (threads never interleave): a line of at most ``PIPE_BUF`` bytes goes
  straight to the stream's file descriptor with one ``os.write``, which the kernel keeps
  whole for pipes and files, so threads never queue on a Python lock held across a
  blocking write (that lock was a hot spot under load); longer lines, and streams without
  a descriptor, are written under a lock. The seven required
  fields (``ts``, ``level``, ``service``, ``msg``, ``task_id``, ``trace_id``, ``span_id``)
  are always present.
* Task and trace ids come from ``log_context`` (contextvars), so code deep inside a
  request does not have to thread them through every call, and threads or asyncio tasks
  each see their own context.
* The token must never appear in any line (§12 "Secrets"): every string - keys, values,
  nested containers, the ``repr`` of odd objects - has each secret replaced by
  ``[REDACTED]`` before serialisation, and the serialised line is checked once more.
* Logging must never take a service down: unserialisable values fall back to ``repr``,
  cycles and deep nesting are cut, and a broken stream is ignored.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import io
import math
import os
import select
import sys
import threading
import time
from typing import Any, Iterable, Iterator

from reference_impl.protocol.timestamps import rfc3339_ms

LEVELS = {"debug": 10, "info": 20, "warn": 30, "error": 40}
REDACTED = "[REDACTED]"
MAX_DEPTH = 16
REQUIRED = ("ts", "level", "service", "msg", "task_id", "trace_id", "span_id")
_PROTECTED = ("ts", "level", "service", "msg")  # never overridable by extra fields
_FIXED_KEYS = frozenset(REQUIRED + ("event",))  # top-level names never rewritten
_UNSET: Any = object()

_context: contextvars.ContextVar[dict] = contextvars.ContextVar("faultdrill_log_context",
                                                                default={})


def format_ts(epoch: float | None = None) -> str:
    """RFC 3339 UTC with milliseconds: ``2026-11-29T14:50:31.123Z``."""
    return rfc3339_ms(time.time() if epoch is None else epoch)


def normalize_level(level: str) -> str:
    """``debug``/``info``/``warn``/``error`` (``warning`` accepted as ``warn``)."""
    name = str(level).strip().lower()
    if name == "warning":
        name = "warn"
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LEVELS)}")
    return name


@contextlib.contextmanager
def log_context(task_id: Any = _UNSET, trace_id: Any = _UNSET, span_id: Any = _UNSET,
                **extra: Any) -> Iterator[dict]:
    """Set ``task_id``/``trace_id``/``span_id`` (and any extra fields) for lines logged
    inside the ``with`` block. Only the given keys change; passing None clears one.
    Nested blocks layer; leaving a block restores the outer context exactly."""
    current = dict(_context.get())
    for key, value in (("task_id", task_id), ("trace_id", trace_id), ("span_id", span_id)):
        if value is not _UNSET:
            current[key] = value
    current.update(extra)
    token = _context.set(current)
    try:
        yield current
    finally:
        _context.reset(token)


def current_context() -> dict:
    """A copy of the fields ``log_context`` has set here."""
    return dict(_context.get())


class Logger:
    """Writes SPEC §12 lines for ``service`` to ``stream`` at ``level`` and above."""

    def __init__(self, service: str, level: str = "info", stream=None,
                 secrets: Iterable[str] = ()):
        self.service = str(service)
        self.level = normalize_level(level)
        self.stream = stream if stream is not None else sys.stderr
        self._secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()
        self._fd = self._raw_fd(self.stream)
        self.set_secrets(secrets)

    context = staticmethod(log_context)

    def set_secrets(self, secrets: Iterable[str]) -> None:
        """Strings never to be written (longest first, so overlapping ones redact fully)."""
        unique = {s for s in secrets if isinstance(s, str) and s}
        self._secrets = tuple(sorted(unique, key=len, reverse=True))
        # Each secret as it may appear in a serialised line: plain and JSON-escaped
        # (computed once here, not per line).
        forms: list[str] = []
        for secret in self._secrets:
            escaped = json.dumps(secret, ensure_ascii=True)[1:-1]
            forms.extend(dict.fromkeys((secret, escaped)))
        self._secret_forms = tuple(forms)

    def set_level(self, level: str) -> None:
        self.level = normalize_level(level)

    def enabled(self, level: str) -> bool:
        return LEVELS[normalize_level(level)] >= LEVELS[self.level]

    def debug(self, msg: Any, event: str | None = None, **fields: Any) -> None:
        self.log("debug", msg, event, **fields)

    def info(self, msg: Any, event: str | None = None, **fields: Any) -> None:
        self.log("info", msg, event, **fields)

    def warn(self, msg: Any, event: str | None = None, **fields: Any) -> None:
        self.log("warn", msg, event, **fields)

    warning = warn

    def error(self, msg: Any, event: str | None = None, **fields: Any) -> None:
        self.log("error", msg, event, **fields)

    def log(self, level: str, msg: Any, /, event: str | None = None, **fields: Any) -> None:
        """Write one line if ``level`` passes the filter. Never raises."""
        try:
            level = normalize_level(level)
            if LEVELS[level] < LEVELS[self.level]:
                return
            line = self.format_line(level, msg, event, fields)
        except Exception as exc:  # last resort: still say *something*, still one line
            line = self._fallback_line(level, exc)
        self._write(line)

    def format_line(self, level: str, msg: Any, event: str | None, fields: dict) -> str:
        """The serialised line (without newline) for these inputs; redacted."""
        ctx = _context.get()
        record: dict[str, Any] = {
            "ts": format_ts(), "level": level, "service": self.service,
            "msg": msg if isinstance(msg, str) else _safe_repr(msg),
            "task_id": ctx.get("task_id"), "trace_id": ctx.get("trace_id"),
            "span_id": ctx.get("span_id")}
        for key, value in ctx.items():
            if key not in record:
                record[key] = value
        if event is not None:
            record["event"] = event
        for key, value in fields.items():
            if key in _PROTECTED:
                key = f"field_{key}"
            record[key] = value
        for key in ("task_id", "trace_id", "span_id"):
            value = record[key]
            if value is not None and not isinstance(value, str):
                record[key] = str(value)
        clean = self._clean(record, 0, set())
        text = json.dumps(clean, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
        redacted = self._redact_text(text)
        if redacted != text:
            # A secret survived the structural pass (e.g. a secret that is a substring of
            # a field name). Text replacement may break the JSON; if so, say less.
            try:
                parsed = json.loads(redacted)
                if not all(key in parsed for key in REQUIRED):
                    raise ValueError("a required field name was redacted")
            except ValueError:
                redacted = self._minimal_line(level)
        return redacted

    # -------------------------------------------------------------- internals

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def _redact_text(self, text: str) -> str:
        """Belt and braces on the serialised line (plain and JSON-escaped forms)."""
        for form in self._secret_forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def _clean(self, value: Any, depth: int, seen: set) -> Any:
        """A JSON-safe, redacted copy of ``value``."""
        kind = type(value)
        if kind is str:  # the common case first (exact type: subclasses take the long way)
            return self._redact(value)
        if value is None or kind is bool:
            return value
        if isinstance(value, str):
            return self._redact(str(value))
        if isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                return repr(value)
            text = repr(value)
            return value if self._redact(text) == text else REDACTED
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self._redact(bytes(value).decode("utf-8", "backslashreplace"))
        if depth >= MAX_DEPTH:
            return "[too deep]"
        if isinstance(value, (dict, list, tuple, set, frozenset)):
            if id(value) in seen:
                return "[cycle]"
            seen = seen | {id(value)}
            if isinstance(value, dict):
                out = {}
                for k, v in value.items():
                    k = k if isinstance(k, str) else _safe_repr(k)
                    if not (depth == 0 and k in _FIXED_KEYS):
                        k = self._redact(k)
                    out[k] = self._clean(v, depth + 1, seen)
                return out
            return [self._clean(v, depth + 1, seen) for v in value]
        return self._redact(_safe_repr(value))

    def _minimal_line(self, level: str) -> str:
        record = {"ts": format_ts(), "level": level, "service": self._redact(self.service),
                  "msg": REDACTED, "task_id": None, "trace_id": None, "span_id": None}
        return json.dumps(record, ensure_ascii=True, separators=(",", ":"))

    def _fallback_line(self, level: Any, exc: Exception) -> str:
        try:
            lvl = normalize_level(level)
        except Exception:
            lvl = "error"
        record = {"ts": format_ts(), "level": lvl, "service": self.service,
                  "msg": "log line could not be formatted",
                  "task_id": None, "trace_id": None, "span_id": None,
                  "event": "log_format_error", "error": type(exc).__name__}
        return self._redact_text(json.dumps(record, ensure_ascii=True))

    @staticmethod
    def _raw_fd(stream) -> int | None:
        """The stream's descriptor when lines may be written to it directly, else None."""
        try:
            fd = stream.fileno()
            stream.flush()
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return None
        return fd if isinstance(fd, int) and fd >= 0 else None

    def _write(self, line: str) -> None:
        data = line + "\n"
        fd = self._fd
        if fd is not None:
            raw = data.encode("utf-8", "backslashreplace")
            if len(raw) <= select.PIPE_BUF:
                try:
                    written = os.write(fd, raw)
                    while written < len(raw):  # only a regular file can write short
                        written += os.write(fd, raw[written:])
                    return
                except BlockingIOError:
                    pass  # a non-blocking stderr that is full: take the stream path
                except OSError:
                    return  # a closed or broken stderr must not take the service down
        with self._lock:
            try:
                self.stream.write(data)
                self.stream.flush()
            except Exception:
                pass  # a closed or broken stderr must not take the service down


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"
