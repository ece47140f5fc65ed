"""A protocol client for graders, tests and the CLI (SPEC §4, §5, §13).

Why its own client: the graders are black-box and must not import `reference_impl`; they
also need a client that is strict about bounds (every read has a deadline, every buffer a
size cap) and that reports *how* a peer misbehaved (timeout vs. close vs. garbage), since
those are different verdicts.
"""
from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from typing import Any

from graders.decode import CandidateDataError, decode_object
from graders.ids import random_msg_id

__all__ = [
    "ClientError",
    "ClientTimeout",
    "ConnectionClosed",
    "BadReply",
    "Connection",
    "make_request",
    "new_msg_id",
    "encode",
    "http_get",
    "MAX_REPLY_BYTES", "FRAME_LIMITS",
]

#: Largest reply line accepted: every reader of replies accepts 16 MiB (SPEC §4), since
#: the result of a 1 MiB submit can be several MB.
MAX_REPLY_BYTES = 16 * 1024 * 1024
#: Each service's receive limit on its TCP port (SPEC §4), as hello_ok.limits states it.
FRAME_LIMITS = {"orchestrator": 1_048_576, "collector": 16_777_216, "analyzer": 16_777_216,
                "reporter": 16_777_216}
_RECV_CHUNK = 65536


class ClientError(Exception):
    """Base of every client-side failure."""


class ClientTimeout(ClientError):
    """No complete reply frame arrived before the deadline."""


class ConnectionClosed(ClientError):
    """The peer closed (or reset) the connection before a complete frame arrived."""

    def __init__(self, message: str = "connection closed by peer", *, reset: bool = False,
                 partial: bytes = b""):
        super().__init__(message)
        self.reset = reset
        self.partial = partial


class BadReply(ClientError):
    """A reply line that is not a UTF-8 JSON object (or is over the size cap)."""

    def __init__(self, raw: bytes, reason: str = "not a JSON object"):
        super().__init__(f"bad reply ({reason}): {raw[:200]!r}")
        self.raw = raw
        self.reason = reason


def new_msg_id() -> str:
    """A random msg_id (SPEC §5: 1-128 chars): no counter, no prefix that would tell a
    submission which client or which check is asking (graders/ids.py)."""
    return random_msg_id()


def make_request(type: str, payload: dict | None, *, token: str | None, task_id: str | None = None,
                 msg_id: str | None = None, traceparent: str | None = None, v: Any = 1) -> dict:
    """A request envelope; optional fields are omitted when None (`token=None` omits it)."""
    frame: dict[str, Any] = {"v": v, "type": type, "msg_id": msg_id or new_msg_id()}
    if task_id is not None:
        frame["task_id"] = task_id
    if token is not None:
        frame["token"] = token
    if traceparent is not None:
        frame["traceparent"] = traceparent
    frame["payload"] = {} if payload is None else payload
    return frame


def encode(obj: dict) -> bytes:
    """Compact JSON + newline, exactly as SPEC §4 requires senders to frame."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def _decode_line(line: bytes, max_bytes: int = MAX_REPLY_BYTES) -> dict:
    """A reply line through the one bounded decoder (graders/decode.py): size, depth,
    UTF-8, NaN/Infinity and huge numbers are refused as BadReply, never a crash."""
    try:
        return decode_object(line, what="reply", max_bytes=max_bytes)
    except CandidateDataError as exc:
        raise BadReply(line, exc.reason.split(" (")[0]) from None


class Connection:
    """One persistent protocol connection; frames in, dicts out, every wait bounded."""

    def __init__(self, host: str, port: int, *, timeout: float = 5.0,
                 ssl_context: ssl.SSLContext | None = None, max_reply_bytes: int = MAX_REPLY_BYTES):
        self.host, self.port, self.timeout = host, port, timeout
        self.max_reply_bytes = max_reply_bytes
        sock = socket.create_connection((host, port), timeout=timeout)
        if ssl_context is not None:
            try:
                sock = ssl_context.wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
        self.sock = sock
        self._buf = bytearray()
        self._eof = False
        self._reset = False

    # --- sending ---
    def send(self, obj: dict) -> None:
        self.send_raw(encode(obj))

    def send_raw(self, data: bytes) -> None:
        self.sock.settimeout(self.timeout)
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise ClientTimeout(f"send of {len(data)} bytes timed out") from None
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ConnectionClosed(f"connection closed while sending: {exc}",
                                   reset=isinstance(exc, ConnectionResetError)) from None

    # --- receiving ---
    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ClientTimeout("no complete reply before the deadline")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(_RECV_CHUNK)
        except socket.timeout:
            raise ClientTimeout("no complete reply before the deadline") from None
        except ConnectionResetError:
            self._eof, self._reset = True, True
            return
        if not chunk:
            self._eof = True
        self._buf += chunk

    def recv_line(self, timeout: float | None = None) -> bytes:
        """The next non-empty line (without `\\n` / `\\r\\n`), raw bytes."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                if line.endswith(b"\r"):
                    line = line[:-1]
                if line:
                    return line
                continue
            if len(self._buf) > self.max_reply_bytes:
                raw = bytes(self._buf[:1024])
                self._buf.clear()
                raise BadReply(raw, f"reply line over {self.max_reply_bytes} bytes")
            if self._eof:
                partial = bytes(self._buf)
                self._buf.clear()
                raise ConnectionClosed("connection reset by peer" if self._reset
                                       else "connection closed by peer",
                                       reset=self._reset, partial=partial)
            self._fill(deadline)

    def recv(self, timeout: float | None = None) -> dict:
        return _decode_line(self.recv_line(timeout), self.max_reply_bytes)

    def request(self, obj: dict, timeout: float | None = None) -> dict:
        self.send(obj)
        return self.recv(timeout)

    def wait_closed(self, timeout: float) -> bool:
        """True when the peer closes within `timeout` (discarding what it sends meanwhile)."""
        deadline = time.monotonic() + timeout
        while not self._eof:
            try:
                self._fill(deadline)
            except ClientTimeout:
                return False
            if len(self._buf) > self.max_reply_bytes:
                self._buf.clear()
        return True

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def http_get(host: str, port: int, path: str, timeout: float = 3.0,
             max_body: int = 16 * 1024 * 1024) -> tuple[int, dict[str, str], bytes]:
    """GET on the HTTP side port; header names are lower-cased; the body is size-capped."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(max_body + 1)
        if len(body) > max_body:
            raise ClientError(f"HTTP body over {max_body} bytes from {host}:{port}{path}")
        headers = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, headers, body
    finally:
        conn.close()
