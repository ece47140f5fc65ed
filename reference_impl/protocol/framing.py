"""Framing (SPEC §4): newline-delimited JSON objects, 1 MiB and depth-32 limits.

Why a sans-I/O decoder: the server feeds it whatever `recv` returned and gets back whole
frames or ready-made error replies, so every limit is enforced in one place and can be
tested with arbitrary byte chunkings. The decoder never buffers more than the frame limit
(plus the chunk being fed): a 100 MB line without a newline is answered `frame_too_large`
once 1 MiB has piled up, and everything after it is discarded (the stream cannot be
trusted any more).

Nesting depth is measured on the raw text, before `json.loads`: the standard parser is
recursive and raises RecursionError around a thousand levels, so it must never see a
deep document. Strings are skipped (their brackets do not nest) with a regex that honours
escapes, then the brackets left over are counted with an early exit.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any, NamedTuple

from .errors import ProtocolError, error_reply

#: What a client may send the orchestrator (SPEC §4), and so the orchestrator's limit.
MAX_FRAME_BYTES = 1_048_576
#: What an agent accepts: step requests carry payloads that can outgrow 1 MiB (a 1 MiB
#: submit of 10,000 records collects into about 2 MB of events).
AGENT_MAX_FRAME_BYTES = 16_777_216
#: What every reader of replies accepts (the orchestrator reading agents, clients).
MAX_REPLY_BYTES = 16_777_216
MAX_DEPTH = 32

# A JSON string literal, escapes honoured (unrolled-loop form: linear, no backtracking).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# A \uD800-\uDFFF escape: only then can a decoded string hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


class Decoded(NamedTuple):
    """One decoder result: ("frame", dict, False) or ("error", error reply envelope, close)."""

    kind: str
    value: dict
    close: bool = False


def _malformed(message: str, reason: str) -> Decoded:
    err = ProtocolError("malformed_frame", message, reason=reason)
    return Decoded("error", error_reply(err.error_object()), False)


def _too_large(limit: int = MAX_FRAME_BYTES) -> Decoded:
    err = ProtocolError(
        "frame_too_large",
        f"frame exceeds {limit} bytes without a newline; closing the connection",
        limit_bytes=limit,
    )
    return Decoded("error", error_reply(err.error_object()), True)


def text_depth_exceeds(text: str, limit: int = MAX_DEPTH) -> bool:
    """True when the JSON text nests objects/arrays deeper than `limit` (strings ignored)."""
    if text.count("[") + text.count("{") <= limit:  # cannot possibly exceed (cheap, C)
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if brackets.count("[") + brackets.count("{") <= limit:  # cannot possibly exceed
        return False
    for depth in accumulate(_BRACKET_STEP[c] for c in brackets):
        if depth > limit:
            return True
    return False


def check_depth(obj: Any, limit: int = MAX_DEPTH) -> bool:
    """True when a decoded value nests at most `limit` containers deep (iterative)."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, (list, tuple)):
            children = value
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list, tuple)))
    return True


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def decode_frame(line: bytes) -> Decoded:
    """Decode one complete frame (no newline, `\\r` already stripped, size already checked)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return _malformed("frame is not valid UTF-8", "not utf-8")
    if text_depth_exceeds(text):
        return _malformed(f"frame nests deeper than {MAX_DEPTH} levels", "too deep")
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:  # unreachable after the depth check; kept as a last guard
        return _malformed(f"frame nests deeper than {MAX_DEPTH} levels", "too deep")
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, huge numbers, int digit limit
        return _malformed(f"frame is not valid JSON: {str(exc)[:200]}", "not json")
    if not isinstance(value, dict):
        return _malformed("frame is not a JSON object", "not an object")
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        return _malformed("frame contains a lone surrogate (not valid Unicode)", "not utf-8")
    return Decoded("frame", value, False)


class FrameDecoder:
    """Incremental NDJSON decoder: `feed(bytes) -> list[Decoded]`.

    After a `frame_too_large` result (close=True) the decoder is closed: it discards
    everything it holds and everything fed later, and returns nothing more.
    """

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES):
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf already known to contain no newline
        self.closed = False

    @property
    def buffered(self) -> int:
        """Bytes held waiting for a newline (bounded by the frame limit + one chunk)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Decoded]:
        if self.closed:
            return []
        self._buf += data
        out: list[Decoded] = []
        start = 0
        while True:
            nl = self._buf.find(b"\n", max(start, self._scanned))
            if nl < 0:
                break
            end = nl - 1 if nl > start and self._buf[nl - 1] == 0x0D else nl
            size = end - start
            self._scanned = nl + 1
            if size > self.max_frame_bytes:
                return self._close(out)
            if size > 0:
                out.append(decode_frame(bytes(self._buf[start:end])))
            start = nl + 1
        del self._buf[:start]
        self._scanned = len(self._buf)
        # No newline yet: over the limit already? (one extra byte may be the `\r` of `\r\n`)
        pending = len(self._buf)
        if pending > self.max_frame_bytes + 1 or (
            pending == self.max_frame_bytes + 1 and self._buf[-1] != 0x0D
        ):
            return self._close(out)
        return out

    def _close(self, out: list[Decoded]) -> list[Decoded]:
        self.closed = True
        self._buf = bytearray()
        self._scanned = 0
        out.append(_too_large(self.max_frame_bytes))
        return out


def encode_frame(obj: dict) -> bytes:
    """Compact JSON, UTF-8, one trailing newline. Refuses NaN/Infinity (not JSON)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"
