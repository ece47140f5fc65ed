"""The orchestrator's client for one agent: one attempt = connect, hello, request, reply.

Each attempt opens a fresh connection and says ``hello`` on it first (SPEC §14.1: hello
once per connection), so a restarted agent is never talked to through a stale socket and
an agent with no common version gets no work. Every socket operation is bounded by the
attempt's own deadline (connect + send + reply, SPEC §10.3). The result is a
``pipeline.Attempt``; classifying transport failures (refused, reset, closed, timed out,
unparseable) happens here, deciding whether to retry happens in ``pipeline``.
"""

from __future__ import annotations

import itertools
import socket
import ssl
import threading
import time

from reference_impl.orchestrator.pipeline import Attempt, transport_cause
from reference_impl.protocol.errors import ProtocolError
from reference_impl.protocol.framing import FrameDecoder, encode_frame

SUPPORTED_VERSIONS = (1,)
_ids = itertools.count(1)
_ids_lock = threading.Lock()


def new_msg_id(prefix: str) -> str:
    with _ids_lock:
        n = next(_ids)
    return f"{prefix}-{n}-{time.monotonic_ns() % 1_000_000_000:09d}"


def parse_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


class _Transport(Exception):
    """No usable reply; ``cause`` is the error object to report."""

    def __init__(self, cause: dict) -> None:
        super().__init__(cause.get("message"))
        self.cause = cause


class AgentClient:
    """Talks to the agent serving one role; also remembers when it last said hello."""

    def __init__(self, role: str, addr: "str | tuple[str, int]", token: str, *,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.role = role
        self.host, self.port = parse_addr(addr) if isinstance(addr, str) else (addr[0], int(addr[1]))
        self.addr = f"{self.host}:{self.port}"
        self._token = token
        self.ssl_context = ssl_context
        self._lock = threading.Lock()
        self.last_hello_ok: float | None = None
        self.last_problem: str | None = "never contacted"
        self.incompatible = False

    # -- public ----------------------------------------------------------------------

    def call(self, step: str, payload: dict, *, task_id: str, traceparent: str | None,
             timeout_s: float) -> Attempt:
        """One attempt of ``step``; never raises for network trouble, never waits past timeout."""
        deadline = time.monotonic() + timeout_s
        timeout_ms = int(round(timeout_s * 1000))
        sock = None
        try:
            sock = self._connect(deadline, step, timeout_ms)
            decoder = FrameDecoder()
            err = self._hello(sock, decoder, deadline, step, timeout_ms)
            if err is not None:
                return Attempt("error", error=err)
            request = {"v": 1, "type": step, "msg_id": new_msg_id("o"), "task_id": task_id,
                       "token": self._token, "payload": payload}
            if traceparent:
                request["traceparent"] = traceparent
            reply = self._exchange(sock, decoder, request, deadline, step, timeout_ms)
            return self._classify(reply, step, request["msg_id"])
        except _Transport as exc:
            return Attempt("transport", error=exc.cause)
        finally:
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass

    def probe(self, timeout_s: float) -> bool:
        """Say hello on a fresh connection (readiness). True when a common version was found."""
        deadline = time.monotonic() + timeout_s
        sock = None
        try:
            sock = self._connect(deadline, None, int(timeout_s * 1000))
            err = self._hello(sock, FrameDecoder(), deadline, None, int(timeout_s * 1000))
            return err is None
        except _Transport as exc:
            self._note_problem(exc.cause.get("message") or "unreachable")
            return False
        finally:
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass

    def ready_within(self, window_s: float) -> bool:
        with self._lock:
            return (self.last_hello_ok is not None and not self.incompatible
                    and time.monotonic() - self.last_hello_ok <= window_s)

    # -- steps of an attempt -----------------------------------------------------------

    def _connect(self, deadline: float, step: str | None, timeout_ms: int):
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Transport(self._timed_out(step, timeout_ms))
        try:
            sock = socket.create_connection((self.host, self.port), timeout=left)
        except socket.timeout:
            raise _Transport(self._timed_out(step, timeout_ms)) from None
        except ConnectionRefusedError:
            raise _Transport(transport_cause("internal_error", "connection refused")) from None
        except OSError as exc:
            raise _Transport(transport_cause("internal_error", f"connect failed: {exc.strerror or exc}")) from None
        if self.ssl_context is None:
            return sock
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            return self.ssl_context.wrap_socket(sock, server_hostname=self.host)
        except socket.timeout:
            sock.close()
            raise _Transport(self._timed_out(step, timeout_ms)) from None
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise _Transport(transport_cause("internal_error", f"tls handshake failed: {exc}")) from None

    def _hello(self, sock, decoder, deadline: float, step: str | None, timeout_ms: int) -> dict | None:
        """None when a common version was agreed, else the error object ending the step."""
        hello = {"v": 1, "type": "hello", "msg_id": new_msg_id("h"), "token": self._token,
                 "payload": {"versions": list(SUPPORTED_VERSIONS), "role": "orchestrator"}}
        reply = self._exchange(sock, decoder, hello, deadline, step, timeout_ms)
        if reply.get("type") == "hello_ok" and isinstance(reply.get("payload"), dict):
            version = reply["payload"].get("version")
            if isinstance(version, int) and not isinstance(version, bool) and version in SUPPORTED_VERSIONS:
                with self._lock:
                    self.last_hello_ok = time.monotonic()
                    self.last_problem = None
                    self.incompatible = False
                return None
            err = ProtocolError("unsupported_version",
                                f"{self.role} chose protocol version {version!r}; supported: [1]",
                                supported=list(SUPPORTED_VERSIONS)).error_object()
            self._note_problem("no common protocol version", incompatible=True)
            return err
        if reply.get("type") == "error" and isinstance(reply.get("error"), dict):
            err = reply["error"]
            self._note_problem(f"hello refused: {err.get('name')}",
                               incompatible=err.get("name") == "unsupported_version")
            return err
        self._note_problem("hello answered with an unexpected reply")
        return ProtocolError("schema_violation", f"{self.role} answered hello with {reply.get('type')!r}",
                             path="$.type", expected="hello_ok or error").error_object()

    def _exchange(self, sock, decoder, request: dict, deadline: float, step: str | None,
                  timeout_ms: int) -> dict:
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.sendall(encode_frame(request))
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _Transport(self._timed_out(step, timeout_ms))
                sock.settimeout(left)
                data = sock.recv(65536)
                if not data:
                    raise _Transport(transport_cause("internal_error", "connection closed without reply"))
                for item in decoder.feed(data):
                    if item.kind == "frame" and isinstance(item.value, dict):
                        return item.value
                    raise _Transport(transport_cause("internal_error", "unparseable reply"))
        except socket.timeout:
            raise _Transport(self._timed_out(step, timeout_ms)) from None
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            raise _Transport(transport_cause("internal_error", "connection reset")) from None
        except ssl.SSLError as exc:
            raise _Transport(transport_cause("internal_error", f"tls error: {exc}")) from None
        except OSError as exc:
            raise _Transport(transport_cause("internal_error", f"socket error: {exc.strerror or exc}")) from None

    def _classify(self, reply: dict, step: str, msg_id: str) -> Attempt:
        rtype = reply.get("type")
        if rtype == "error" and isinstance(reply.get("error"), dict):
            return Attempt("error", error=reply["error"])
        if reply.get("in_reply_to") != msg_id:
            return Attempt("transport", error=transport_cause(
                "internal_error", "reply does not answer the request (in_reply_to mismatch)"))
        if rtype == f"{step}_ok" and isinstance(reply.get("payload"), dict):
            return Attempt("ok", payload=reply["payload"])
        if rtype == f"{step}_ok":
            return Attempt("error", error=ProtocolError(
                "schema_violation", f"{self.role} replied without an object payload",
                path="$.payload", expected="object").error_object())
        return Attempt("error", error=ProtocolError(
            "schema_violation", f"{self.role} replied {rtype!r} to {step}",
            path="$.type", expected=f"one of [{step}_ok, error]").error_object())

    def _timed_out(self, step: str | None, timeout_ms: int) -> dict:
        return transport_cause("timeout", f"attempt timed out after {timeout_ms} ms",
                               step=step, timeout_ms=timeout_ms)

    def _note_problem(self, problem: str, incompatible: bool = False) -> None:
        with self._lock:
            self.last_problem = problem
            if incompatible:
                self.incompatible = True
