"""Request envelopes: the checks of SPEC §7 steps 2-5 and 7, in that order, and replies.

Why the order matters: authentication comes before anything else is looked at, so an
unauthenticated frame learns nothing (not even whether its version or fields are right)
and nothing about it is echoed except `in_reply_to`. Version is checked before the rest
of the envelope so a v2 client gets `unsupported_version` rather than a confusing
schema error about a renamed field.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from .errors import PROTOCOL_VERSION, SUPPORTED_VERSIONS, ProtocolError, error_reply
from .schema import find_violation, json_type, validate
from .trace import TraceContext, parse_traceparent

# Message types that concern a task and so require `task_id` (SPEC §5.1).
TASK_TYPES = frozenset({"submit", "status", "collect", "analyze", "report"})
# Payload schema for each request type (SPEC §5.1).
PAYLOAD_SCHEMAS = {
    "hello": "hello",
    "submit": "submit",
    "status": "status",
    "list": "list",
    "collect": "collect_input",
    "analyze": "analyze_input",
    "report": "report_input",
}
# Replies whose `_ok` carries `replay` (SPEC §5).
REPLAY_TYPES = frozenset({"submit", "collect", "analyze", "report"})

_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass
class Request:
    v: int
    type: str
    msg_id: str
    task_id: str | None
    token_ok: bool
    traceparent: str | None
    payload: dict
    raw: dict = field(repr=False)

    @property
    def trace_context(self) -> TraceContext | None:
        return parse_traceparent(self.traceparent)


def readable_msg_id(obj: Any, token: str | None = None) -> str | None:
    """The frame's msg_id if it is a well-formed one (string of 1-128 chars) that does not
    contain the token (a reply never contains the token, SPEC §5), else None."""
    msg_id = obj.get("msg_id") if isinstance(obj, dict) else None
    if token and isinstance(msg_id, str) and token in msg_id:
        return None
    return msg_id if isinstance(msg_id, str) and 1 <= len(msg_id) <= 128 else None


def readable_task_id(obj: Any, token: str | None = None) -> str | None:
    task_id = obj.get("task_id") if isinstance(obj, dict) else None
    if token and isinstance(task_id, str) and token in task_id:
        return None
    return task_id if isinstance(task_id, str) and _TASK_ID.fullmatch(task_id) else None


def token_matches(presented: Any, token: str) -> bool:
    """Constant-time comparison on bytes; any non-string is simply wrong."""
    if not isinstance(presented, str):
        return False
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogatepass"), token.encode("utf-8", "surrogatepass")
    )


def parse_request(obj: dict, *, token: str, served_types: Collection[str]) -> Request:
    """SPEC §7 steps 2-5 on a decoded frame; raises ProtocolError with the first failure."""
    # 2. Authentication.
    if not token_matches(obj.get("token"), token):
        raise ProtocolError("unauthorized", "unauthorized: missing or invalid token")
    # 3. Version.
    if "v" not in obj:
        raise ProtocolError("schema_violation", "$.v: expected integer, got missing",
                            path="$.v", expected="required", got="missing")
    v = obj["v"]
    if json_type(v) != "integer":
        got = json_type(v)
        raise ProtocolError("schema_violation", f"$.v: expected integer, got {got}",
                            path="$.v", expected="integer", got=got)
    v = int(v)
    if v not in SUPPORTED_VERSIONS:
        supported = list(SUPPORTED_VERSIONS)
        raise ProtocolError("unsupported_version",
                            f"protocol version {v} is not supported; supported: {supported}",
                            supported=supported)
    # 4. Envelope fields.
    validate(obj, "envelope_request")
    for name in ("msg_id", "task_id"):
        # An echoed field holding the token would put the token in the reply (SPEC §5).
        value = obj.get(name)
        if isinstance(value, str) and token in value:
            raise ProtocolError("schema_violation", f"$.{name}: must not contain the token",
                                path=f"$.{name}", expected="a value not containing the token")
    msg_type = obj["type"]
    if msg_type in TASK_TYPES and "task_id" not in obj:
        raise ProtocolError("schema_violation", f"$.task_id: required for {msg_type}",
                            path="$.task_id", expected="required", got="missing")
    # 5. Type served here.
    if msg_type not in served_types:
        raise ProtocolError("not_supported", f"message type {msg_type!r} is not served here",
                            type=msg_type)
    return Request(v=v, type=msg_type, msg_id=obj["msg_id"], task_id=obj.get("task_id"),
                   token_ok=True, traceparent=obj.get("traceparent"), payload=obj["payload"],
                   raw=obj)


def payload_violation(request: Request):
    """The first payload violation (schema.Violation) or None, without raising."""
    return find_violation(request.payload, PAYLOAD_SCHEMAS[request.type], "$.payload")


def validate_payload(request: Request) -> None:
    """SPEC §7 step 7: the payload against its type's schema (paths from the envelope root)."""
    validate(request.payload, PAYLOAD_SCHEMAS[request.type], "$.payload")


def ok_reply(request: Request, payload: dict, *, replay: bool | None = None,
             traceparent: str | None = None) -> dict:
    reply = {
        "v": PROTOCOL_VERSION,
        "type": f"{request.type}_ok",
        "in_reply_to": request.msg_id,
        "task_id": request.task_id,
    }
    if traceparent is not None:
        reply["traceparent"] = traceparent
    if replay is not None:
        reply["replay"] = bool(replay)
    reply["payload"] = payload
    return reply


# Errors raised before authentication succeeded: nothing but msg_id may be echoed.
_PRE_AUTH = frozenset({"unauthorized", "malformed_frame", "frame_too_large"})


def reply_for_error(obj_or_request: Any, err: ProtocolError, *,
                    authenticated: bool | None = None, token: str | None = None) -> dict:
    """An error reply; `in_reply_to`/`task_id` only from readable (and authenticated) fields.

    For a raw dict, whether it was authenticated is inferred from the error (an
    `unauthorized` error means it was not) unless `authenticated` says otherwise.
    """
    if isinstance(obj_or_request, Request):
        return error_reply(err.error_object(), obj_or_request.msg_id, obj_or_request.task_id)
    if authenticated is None:
        authenticated = err.name not in _PRE_AUTH
    in_reply_to = readable_msg_id(obj_or_request, token)
    task_id = readable_task_id(obj_or_request, token) if authenticated else None
    return error_reply(err.error_object(), in_reply_to, task_id)
