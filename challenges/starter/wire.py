"""The wire protocol: framing (SPEC §4), errors (§6) and envelope checks (§5, §7).

Pure functions over bytes and dicts -- no sockets here -- so every role shares one
definition of "a frame" and "a valid request", and you can unit-test them in isolation.
"""
import hmac
import json
import re

# Receive limits (SPEC §4): a client may send the orchestrator 1 MiB; step requests to
# agents and every reply may be up to 16 MiB (a 1 MiB submit can collect into ~2 MB).
MAX_FRAME_BYTES = 1048576
AGENT_MAX_FRAME_BYTES = 16777216
MAX_REPLY_BYTES = 16777216
MAX_DEPTH = 32
SUPPORTED_VERSIONS = [1]
TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TASK_MESSAGES = {"submit", "status", "collect", "analyze", "report"}

# name -> (code, definite, retryable), exactly as the table in SPEC §6.
ERRORS = {
    "timeout": (1, False, True),
    "not_supported": (10, True, False),
    "busy": (11, True, True),
    "malformed_frame": (12, True, False),
    "frame_too_large": (13, True, False),
    "internal_error": (14, False, True),
    "unauthorized": (20, True, False),
    "schema_violation": (21, True, False),
    "unsupported_version": (22, True, False),
    "idempotency_conflict": (30, True, False),
    "in_progress": (31, True, True),
    "upstream_failed": (40, True, True),
    "not_found": (41, True, False),
}


class Fail(Exception):
    """An error that becomes an `error` reply. Raise it anywhere in request handling."""

    def __init__(self, name, message, **details):
        super().__init__(message)
        self.name, self.message, self.details = name, message, details

    def error(self):
        code, definite, retryable = ERRORS[self.name]
        return {"code": code, "name": self.name, "definite": definite,
                "retryable": retryable, "message": self.message, "details": self.details}


def error_reply(error, in_reply_to=None, task_id=None):
    return {"v": 1, "type": "error", "in_reply_to": in_reply_to, "task_id": task_id, "error": error}


def ok_reply(request, payload, replay=None):
    reply = {"v": 1, "type": request["type"] + "_ok", "in_reply_to": request["msg_id"],
             "task_id": request.get("task_id"), "payload": payload}
    if replay is not None:
        reply["replay"] = replay
    return reply


def encode(obj):
    """One compact JSON object plus the newline terminator (never pretty-printed)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"


def frame_limit(role):
    """The most a service of `role` accepts in one frame on its TCP port (SPEC §4)."""
    return MAX_FRAME_BYTES if role == "orchestrator" else AGENT_MAX_FRAME_BYTES


class LineBuffer:
    """Cuts a byte stream into frames. Keeps at most `limit` bytes of an unfinished line
    (plus the `\r` of a `\r\n`, which does not count toward the limit)."""

    def __init__(self, limit=MAX_FRAME_BYTES):
        self.buf, self.limit = bytearray(), limit

    def feed(self, data):
        """Returns (complete non-empty lines, too_large). too_large => reply 13 and close."""
        self.buf += data
        lines = []
        while True:
            end = self.buf.find(b"\n")
            if end < 0:
                break
            line = bytes(self.buf[:end]).removesuffix(b"\r")
            del self.buf[:end + 1]
            if len(line) > self.limit:
                return lines, True
            if line:
                lines.append(line)
        pending = len(self.buf) - (1 if self.buf.endswith(b"\r") else 0)
        return lines, pending > self.limit


def too_large_error(limit=MAX_FRAME_BYTES):
    return Fail("frame_too_large", f"frame exceeds {limit} bytes", limit_bytes=limit).error()


def _reject_constant(name):
    raise ValueError(f"{name} is not allowed")


def depth(obj):
    """Nesting depth, iteratively (a hostile frame must not exhaust the Python stack)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if deepest > MAX_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def decode(line):
    """Bytes of one frame -> dict, or Fail(malformed_frame) with a reason (SPEC §4)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise Fail("malformed_frame", "frame is not valid UTF-8", reason="not utf-8") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise Fail("malformed_frame", "frame is not valid JSON", reason="not json") from None
    if not isinstance(obj, dict):
        raise Fail("malformed_frame", "frame is not a JSON object", reason="not an object")
    if depth(obj) > MAX_DEPTH:
        raise Fail("malformed_frame", "frame nests deeper than 32", reason="too deep")
    return obj


def violation(path, expected):
    return Fail("schema_violation", f"{path}: expected {expected}", path=path, expected=expected)


def need(value, kind, path):
    """Minimal type check that raises schema_violation at `path`."""
    if kind is int:
        ok = type(value) is int
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise violation(path, {str: "string", int: "integer", list: "array", dict: "object"}[kind])
    return value


def check_request(obj, token, served):
    """SPEC §7 steps 2-5 (auth, version, envelope, type served). Raises Fail."""
    sent = obj.get("token")
    if not isinstance(sent, str) or not hmac.compare_digest(
            sent.encode("utf-8", "surrogatepass"), token.encode("utf-8")):
        raise Fail("unauthorized", "unauthorized: missing or invalid token")
    version = need(obj.get("v"), int, "$.v")
    if version not in SUPPORTED_VERSIONS:
        raise Fail("unsupported_version", f"protocol version {version} is not supported; "
                   f"supported: {SUPPORTED_VERSIONS}", supported=SUPPORTED_VERSIONS)
    kind = need(obj.get("type"), str, "$.type")
    msg_id = need(obj.get("msg_id"), str, "$.msg_id")
    if not 1 <= len(msg_id) <= 128:
        raise violation("$.msg_id", "string of 1-128 characters")
    for name in ("msg_id", "task_id"):  # a reply echoes these, and never holds the token (§5)
        if isinstance(obj.get(name), str) and token in obj[name]:
            raise violation(f"$.{name}", "a value not containing the token")
    if kind in TASK_MESSAGES and not (isinstance(obj.get("task_id"), str)
                                      and TASK_ID.fullmatch(obj["task_id"])):
        raise violation("$.task_id", "string matching ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    need(obj.get("payload"), dict, "$.payload")
    # CHALLENGE(schema-drift): the envelope is closed -- unknown fields must be a
    # schema_violation naming the field, and `traceparent` must have the W3C form (§5, §14.2).
    if kind not in served:
        raise Fail("not_supported", f"message type {kind!r} is not served here", type=kind)


def reply_address(obj, authenticated, token=""):
    """(in_reply_to, task_id) echoed on an error: only readable fields, and for an
    unauthenticated frame nothing but the msg_id (SPEC §7 step 2, §18.2); never a field
    that contains the token (§5)."""
    msg_id = obj.get("msg_id") if isinstance(obj, dict) else None
    msg_id = msg_id if isinstance(msg_id, str) and len(msg_id) <= 128 else None
    task_id = obj.get("task_id") if isinstance(obj, dict) and authenticated else None
    task_id = task_id if isinstance(task_id, str) and TASK_ID.fullmatch(task_id) else None
    if token:
        msg_id = None if msg_id is not None and token in msg_id else msg_id
        task_id = None if task_id is not None and token in task_id else task_id
    return msg_id, task_id


def hello_payload(request, role, capabilities):
    """SPEC §14.1: pick the highest version both sides speak."""
    offered = need(request["payload"].get("versions"), list, "$.payload.versions")
    common = [v for v in offered if type(v) is int and v in SUPPORTED_VERSIONS]
    if not common:
        raise Fail("unsupported_version", f"no common protocol version; supported: "
                   f"{SUPPORTED_VERSIONS}", supported=SUPPORTED_VERSIONS)
    return {"version": max(common), "role": role, "capabilities": capabilities,
            "limits": {"max_frame_bytes": frame_limit(role), "max_depth": MAX_DEPTH}}
