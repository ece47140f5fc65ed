"""The pure protocol core (SPEC §4-7): framing, errors, envelopes, schemas, traces.

Functions over bytes and dicts only: no sockets, threads or clocks, so every rule can be
tested exhaustively and the edges (runtime/, agents/, orchestrator/) stay thin.
"""

from .errors import ERRORS, ErrorSpec, ProtocolError, error_reply, make_error_object
from .framing import AGENT_MAX_FRAME_BYTES, MAX_DEPTH, MAX_FRAME_BYTES, MAX_REPLY_BYTES, Decoded, FrameDecoder, check_depth, encode_frame
from .envelope import Request, ok_reply, parse_request, reply_for_error, validate_payload
from .schema import load_schema, validate
from .trace import TraceContext, format_traceparent, new_span_id, new_trace_id, parse_traceparent

__all__ = [
    "ERRORS", "ErrorSpec", "ProtocolError", "error_reply", "make_error_object",
    "AGENT_MAX_FRAME_BYTES", "MAX_DEPTH", "MAX_FRAME_BYTES", "MAX_REPLY_BYTES", "Decoded", "FrameDecoder", "check_depth", "encode_frame",
    "Request", "ok_reply", "parse_request", "reply_for_error", "validate_payload",
    "load_schema", "validate",
    "TraceContext", "format_traceparent", "new_span_id", "new_trace_id", "parse_traceparent",
]
