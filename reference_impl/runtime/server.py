"""The TCP protocol server every service shares (SPEC §4, §15, §16, §17).

One thread per connection: a connection's frames are handled one at a time, in order
(SPEC §4), and concurrency comes from several connections. The server knows nothing about
message types: it decodes frames with ``FrameDecoder`` and hands each decoded item to a
``handler(decoded, conn) -> reply dict``. What it does own is everything about sockets:
the connection cap (one more connection gets a ``busy`` frame and is closed), the idle
timeout, a timeout on every socket operation, TLS handshakes, and the drain on shutdown
(stop accepting, let in-flight requests finish, then close what is left).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from reference_impl.protocol.errors import ProtocolError, error_reply
from reference_impl.protocol.framing import MAX_FRAME_BYTES, FrameDecoder, encode_frame

#: How often a blocked recv/accept wakes up to look at the idle clock and the stop flag.
POLL_S = 0.2
#: Bound on writing one reply (a peer that never reads must not pin a thread forever).
SEND_TIMEOUT_S = 10.0
#: Bound on a TLS handshake.
HANDSHAKE_TIMEOUT_S = 5.0
#: What a connection over the cap is told to wait before trying again.
BUSY_RETRY_AFTER_MS = 100
RECV_BYTES = 65536


@dataclass
class Connection:
    """What a handler may know about the connection a frame came from."""

    peer: str
    id: int
    opened_at: float = field(default_factory=time.monotonic)


Handler = Callable[[Any, Connection], "dict | None"]


def busy_frame(retry_after_ms: int = BUSY_RETRY_AFTER_MS, message: str = "too many connections") -> bytes:
    """The frame sent to a connection the server will not serve (``in_reply_to`` null)."""
    err = ProtocolError("busy", message, retry_after_ms=retry_after_ms)
    return encode_frame(error_reply(err.error_object(), in_reply_to=None, task_id=None))


class ProtocolServer:
    """Threaded framed-JSON server with a connection cap, idle timeout, TLS and drain."""

    def __init__(self, host: str, port: int, handler: Handler, *,
                 max_connections: int = 128, idle_timeout_ms: int = 30000,
                 ssl_context: ssl.SSLContext | None = None,
                 on_error: Callable[[str, BaseException], None] | None = None,
                 max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self.host = host
        self.max_frame_bytes = max_frame_bytes
        self.port = port
        self.handler = handler
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_ms / 1000.0
        self.ssl_context = ssl_context
        self.on_error = on_error
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._conns: dict[int, socket.socket] = {}
        self._threads: set[threading.Thread] = set()
        self._in_flight = 0
        self._next_id = 0
        self._accepting = threading.Event()
        self._closing = threading.Event()
        self.draining = False

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Bind and listen (raises OSError when the port is taken), then accept in a thread."""
        listener = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET,
                                 socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port))
            listener.listen(max(16, min(self.max_connections * 2, 1024)))
            listener.settimeout(POLL_S)
        except BaseException:
            listener.close()
            raise
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._accepting.set()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="accept", daemon=True)
        self._accept_thread.start()

    def begin_drain(self) -> None:
        """Stop accepting new connections. Open connections stay open and keep being read:
        every request on them is answered (the service answers new work ``busy`` while
        draining, SPEC §17), so a request that was already on its way is never met with a
        silent close. They are closed by ``close()`` once the drain is over."""
        with self._lock:
            self.draining = True
        self._accepting.clear()
        if self._listener is not None:
            try:  # wakes a blocked accept() at once (Linux) instead of at its next timeout
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=POLL_S * 5)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait (bounded) until no request is being handled; True when idle."""
        end = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while self._in_flight > 0:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(timeout=min(left, POLL_S))
        return True

    def close(self, join_timeout_s: float = 1.0) -> None:
        """Close every socket (unblocking their threads) and join them, bounded."""
        self._accepting.clear()
        self._closing.set()
        with self._lock:
            socks = list(self._conns.values())
            threads = list(self._threads)
        for s in socks:
            _shutdown(s)
        end = time.monotonic() + join_timeout_s
        for t in threads:
            if t.ident is not None:          # never started (see _accept_loop): nothing to join
                t.join(timeout=max(0.0, end - time.monotonic()))
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=max(0.0, end - time.monotonic()) + POLL_S)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._conns)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    # -- accept ----------------------------------------------------------------------

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        try:
            while self._accepting.is_set():
                try:
                    sock, addr = listener.accept()
                except socket.timeout:
                    continue
                except OSError as exc:
                    if not self._accepting.is_set():
                        break
                    self._report("accept", exc)
                    time.sleep(POLL_S / 4)
                    continue
                with self._lock:
                    over_cap = len(self._conns) >= self.max_connections
                    self._next_id += 1
                    conn_id = self._next_id
                    if not over_cap:
                        self._conns[conn_id] = sock
                target = self._reject if over_cap else self._serve
                t = threading.Thread(target=target, args=(sock, addr, conn_id),
                                     name=f"conn-{conn_id}", daemon=True)
                with self._lock:
                    self._threads.add(t)
                try:
                    t.start()
                except RuntimeError as exc:
                    # No thread to be had (a process or address-space limit): this one
                    # connection is closed unserved, and accepting goes on.
                    with self._lock:
                        self._threads.discard(t)
                        self._conns.pop(conn_id, None)
                    _shutdown(sock)
                    _close(sock)
                    self._report("thread", exc)
        finally:
            listener.close()

    def _reject(self, sock: socket.socket, addr: Any, conn_id: int) -> None:
        """Over the cap: one ``busy`` frame (after the TLS handshake if any), then close."""
        try:
            sock = self._wrap(sock)
            if sock is not None:
                sock.settimeout(SEND_TIMEOUT_S / 10)
                sock.sendall(busy_frame())
        except (OSError, ValueError) as exc:
            self._report("reject", exc)
        finally:
            if sock is not None:
                _close(sock)
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _wrap(self, sock: socket.socket) -> socket.socket | None:
        """TLS handshake under a bound; a plaintext or unverified client gets nothing."""
        if self.ssl_context is None:
            return sock
        sock.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            tls = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            tls.do_handshake()
            return tls
        except (OSError, ssl.SSLError, ValueError):
            _close(sock)
            return None

    # -- one connection --------------------------------------------------------------

    def _serve(self, raw: socket.socket, addr: Any, conn_id: int) -> None:
        sock: socket.socket | None = raw
        try:
            sock = self._wrap(raw)
            if sock is None:
                return
            with self._lock:
                self._conns[conn_id] = sock
            conn = Connection(peer=f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr),
                              id=conn_id)
            self._loop(sock, conn)
        except Exception as exc:  # a bug in one connection must not kill the server
            self._report("connection", exc)
        finally:
            if sock is not None:
                _close(sock)
            _close(raw)
            with self._lock:
                self._conns.pop(conn_id, None)
                self._threads.discard(threading.current_thread())

    def _loop(self, sock: socket.socket, conn: Connection) -> None:
        decoder = FrameDecoder(self.max_frame_bytes)
        idle_deadline = time.monotonic() + self.idle_timeout_s
        while not self._closing.is_set():
            left = idle_deadline - time.monotonic()
            if left <= 0:
                return
            sock.settimeout(min(POLL_S, left))
            try:
                data = sock.recv(RECV_BYTES)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except (OSError, ValueError):
                return
            if not data:
                return
            for item in decoder.feed(data):
                idle_deadline = time.monotonic() + self.idle_timeout_s
                # A request counts as in flight until its reply is written, so a drain
                # never closes the socket between the answer and its delivery.
                with self._lock:
                    self._in_flight += 1
                try:
                    reply = self.handler(item, conn)
                    if reply is not None:
                        sock.settimeout(SEND_TIMEOUT_S)
                        try:
                            sock.sendall(encode_frame(reply))
                        except (OSError, ValueError):
                            return
                finally:
                    with self._cond:
                        self._in_flight -= 1
                        self._cond.notify_all()
                if getattr(item, "close", False):
                    return
                idle_deadline = time.monotonic() + self.idle_timeout_s

    def _report(self, where: str, exc: BaseException) -> None:
        if self.on_error is not None:
            try:
                self.on_error(where, exc)
            except Exception:
                pass


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError):
        pass


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
