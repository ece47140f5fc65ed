"""The orchestrator's client for one agent: one attempt = (connect, hello,) request, reply.

Connections are pooled: a connection that has said ``hello`` with a common version is
reused for later attempts (SPEC §14.1: hello once per connection), which saves a connect,
an accept, a server thread and a hello round trip per step. A pooled connection is only
reused when it is known to be in step with the agent:

* it goes back to the pool only after a reply that answers our request was read in full
  (``in_reply_to`` equal to its ``msg_id``); after any transport failure or timeout it is
  closed, because a late reply could still arrive on it;
* before reuse it must be quiet: readable means the agent closed it (idle timeout, restart)
  or sent something unasked (a duplicated reply) - either way it is closed, never read;
* a connection idle longer than ``pool_idle_s`` (default ``POOL_IDLE_S``) is closed
  rather than reused;
* and a reply whose ``in_reply_to`` names another request is skipped, never paired with
  the current one.

An agent with no common version gets no work: a failed hello closes the connection and
ends the attempt. Every socket operation is bounded by the attempt's own deadline
(connect + send + reply, SPEC §10.3). The result is a ``pipeline.Attempt``; classifying
transport failures (refused, reset, closed, timed out, unparseable) happens here, deciding
whether to retry happens in ``pipeline``.
"""

from __future__ import annotations

import itertools
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

from reference_impl.orchestrator.pipeline import Attempt, transport_cause
from reference_impl.protocol.errors import ProtocolError
from reference_impl.protocol.framing import MAX_REPLY_BYTES, FrameDecoder, encode_frame

SUPPORTED_VERSIONS = (1,)
#: Idle pooled connections kept per agent (more than FD_WORKERS are never in use at once).
POOL_MAX_IDLE = 16
#: A pooled connection idle longer than this is closed instead of reused (well under any
#: sensible FD_IDLE_TIMEOUT_MS, so the agent has not started closing it).
POOL_IDLE_S = 5.0
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


@dataclass
class PooledConnection:
    """A connection that said hello successfully, with its frame decoder."""

    sock: object
    decoder: FrameDecoder = field(default_factory=lambda: FrameDecoder(MAX_REPLY_BYTES))
    idle_since: float = field(default_factory=time.monotonic)
    uses: int = 0


def _close_quietly(sock) -> None:
    try:
        sock.close()
    except OSError:
        pass


def connection_is_quiet(sock) -> bool:
    """True when nothing is waiting on ``sock``: no EOF, no unread bytes, no error.

    A plain socket is peeked without blocking and without changing its mode; a TLS socket
    counts as quiet only when neither the TLS layer nor the raw socket has anything."""
    try:
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return False
        readable, _w, errored = select.select([sock], [], [sock], 0)
    except (OSError, ValueError):
        return False
    return not readable and not errored


class AgentClient:
    """Talks to the agent serving one role; also remembers when it last said hello."""

    def __init__(self, role: str, addr: "str | tuple[str, int]", token: str, *,
                 ssl_context: ssl.SSLContext | None = None,
                 pool_idle_s: float = POOL_IDLE_S) -> None:
        """``pool_idle_s``: reuse a pooled connection only if it was idle at most this long
        (keep it below the agents' FD_IDLE_TIMEOUT_MS so the agent is not closing it just
        as a request is sent on it)."""
        self.role = role
        self.host, self.port = parse_addr(addr) if isinstance(addr, str) else (addr[0], int(addr[1]))
        self.addr = f"{self.host}:{self.port}"
        self._token = token
        self.ssl_context = ssl_context
        self._lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._idle: list[PooledConnection] = []
        self.pool_idle_s = pool_idle_s
        self.pool_stats = {"opened": 0, "reused": 0, "discarded_stale": 0}
        self.last_hello_ok: float | None = None
        self.last_problem: str | None = "never contacted"
        self.incompatible = False

    # -- public ----------------------------------------------------------------------

    def call(self, step: str, payload: dict, *, task_id: str, traceparent: str | None,
             timeout_s: float) -> Attempt:
        """One attempt of ``step``; never raises for network trouble, never waits past timeout."""
        deadline = time.monotonic() + timeout_s
        timeout_ms = int(round(timeout_s * 1000))
        conn = None
        keep = False
        try:
            conn = self._checkout()
            if conn is None:
                sock = self._connect(deadline, step, timeout_ms)
                conn = PooledConnection(sock)
                with self._pool_lock:
                    self.pool_stats["opened"] += 1
                err = self._hello(sock, conn.decoder, deadline, step, timeout_ms)
                if err is not None:
                    return Attempt("error", error=err)
            request = {"v": 1, "type": step, "msg_id": new_msg_id("o"), "task_id": task_id,
                       "token": self._token, "payload": payload}
            if traceparent:
                request["traceparent"] = traceparent
            reply = self._exchange(conn.sock, conn.decoder, request, deadline, step, timeout_ms)
            attempt = self._classify(reply, step, request["msg_id"])
            # In step with the agent only when the reply answered this very request.
            keep = reply.get("in_reply_to") == request["msg_id"] and attempt.kind != "transport"
            return attempt
        except _Transport as exc:
            return Attempt("transport", error=exc.cause)
        finally:
            if conn is not None:
                if keep:
                    self._checkin(conn)
                else:
                    _close_quietly(conn.sock)

    def close_idle(self) -> None:
        """Close every pooled connection (shutdown, tests)."""
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close_quietly(conn.sock)

    def _checkout(self) -> PooledConnection | None:
        """The most recently used pooled connection that is still quiet, else None."""
        while True:
            with self._pool_lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if time.monotonic() - conn.idle_since <= self.pool_idle_s and connection_is_quiet(conn.sock):
                conn.uses += 1
                with self._pool_lock:
                    self.pool_stats["reused"] += 1
                return conn
            with self._pool_lock:
                self.pool_stats["discarded_stale"] += 1
            _close_quietly(conn.sock)

    def _checkin(self, conn: PooledConnection) -> None:
        """Return a connection whose last exchange completed in step (see module docstring)."""
        conn.idle_since = time.monotonic()
        with self._pool_lock:
            if len(self._idle) < POOL_MAX_IDLE:
                self._idle.append(conn)
                return
        _close_quietly(conn.sock)

    def probe(self, timeout_s: float) -> bool:
        """Say hello on a fresh connection (readiness). True when a common version was found."""
        deadline = time.monotonic() + timeout_s
        sock = None
        try:
            sock = self._connect(deadline, None, int(timeout_s * 1000))
            err = self._hello(sock, FrameDecoder(MAX_REPLY_BYTES), deadline, None, int(timeout_s * 1000))
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
                        answered = item.value.get("in_reply_to")
                        if isinstance(answered, str) and answered != request["msg_id"]:
                            continue  # a late or duplicated reply to an earlier request
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
