"""The error table of SPEC §6 and the objects built from it.

Why a table and not ad-hoc dicts: code, name, definite and retryable MUST be exactly as
the SPEC says, and callers decide whether to retry from them, so they live in one place.
`ProtocolError` carries an error from wherever it is detected to the one place that
turns it into a reply; it refuses to be built without the details the SPEC requires, so a
reply missing a required key is a programming error caught at the raise site.
"""

from __future__ import annotations

from typing import NamedTuple


class ErrorSpec(NamedTuple):
    code: int
    name: str
    definite: bool
    retryable: bool


ERRORS: dict[str, ErrorSpec] = {
    spec.name: spec
    for spec in (
        ErrorSpec(1, "timeout", False, True),
        ErrorSpec(10, "not_supported", True, False),
        ErrorSpec(11, "busy", True, True),
        ErrorSpec(12, "malformed_frame", True, False),
        ErrorSpec(13, "frame_too_large", True, False),
        ErrorSpec(14, "internal_error", False, True),
        ErrorSpec(20, "unauthorized", True, False),
        ErrorSpec(21, "schema_violation", True, False),
        ErrorSpec(22, "unsupported_version", True, False),
        ErrorSpec(30, "idempotency_conflict", True, False),
        ErrorSpec(31, "in_progress", True, True),
        ErrorSpec(40, "upstream_failed", True, True),
        ErrorSpec(41, "not_found", True, False),
    )
}

ERRORS_BY_CODE: dict[int, ErrorSpec] = {spec.code: spec for spec in ERRORS.values()}

# The `details` keys SPEC §6 makes REQUIRED for each error name.
REQUIRED_DETAILS: dict[str, tuple[str, ...]] = {
    "timeout": ("step", "timeout_ms"),
    "not_supported": ("type",),
    "busy": ("retry_after_ms",),
    "malformed_frame": ("reason",),
    "frame_too_large": ("limit_bytes",),
    "internal_error": (),
    "unauthorized": (),
    "schema_violation": ("path", "expected"),
    "unsupported_version": ("supported",),
    "idempotency_conflict": ("task_id",),
    "in_progress": ("task_id", "retry_after_ms"),
    "upstream_failed": ("step", "agent", "attempts", "cause"),
    "not_found": ("task_id",),
}

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)


class ProtocolError(Exception):
    """An error that becomes an `error` reply. `ProtocolError(name, message, **details)`."""

    def __init__(self, name: str, message: str, **details):
        if name not in ERRORS:
            raise ValueError(f"unknown error name {name!r}")
        missing = [k for k in REQUIRED_DETAILS[name] if k not in details]
        if missing:
            raise ValueError(f"{name} error requires details {missing}")
        if name == "unauthorized" and "unauthorized" not in message:
            # SPEC §6: the message MUST contain the word.
            message = "unauthorized: " + message
        super().__init__(message)
        self.spec = ERRORS[name]
        self.name = name
        self.message = message
        self.details = details

    @property
    def code(self) -> int:
        return self.spec.code

    @property
    def retryable(self) -> bool:
        return self.spec.retryable

    @property
    def definite(self) -> bool:
        return self.spec.definite

    def error_object(self) -> dict:
        """The `error` member of a reply: code, name, definite, retryable, message, details."""
        return make_error_object(self.name, self.message, **self.details)

    def __repr__(self) -> str:
        return f"ProtocolError({self.name!r}, {self.message!r}, **{self.details!r})"


def make_error_object(name: str, message: str, **details) -> dict:
    """Build an error object straight from the table (no exception needed)."""
    spec = ERRORS[name]
    return {
        "code": spec.code,
        "name": spec.name,
        "definite": spec.definite,
        "retryable": spec.retryable,
        "message": message,
        "details": dict(details),
    }


def error_reply(error_object: dict, in_reply_to: str | None = None, task_id: str | None = None) -> dict:
    """A whole `error` reply envelope around an error object."""
    return {
        "v": PROTOCOL_VERSION,
        "type": "error",
        "in_reply_to": in_reply_to,
        "task_id": task_id,
        "error": error_object,
    }
