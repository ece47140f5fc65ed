"""What every small fault server of the grader shares: a listener on 127.0.0.1, a
bounded reader that cuts a connection's bytes into NDJSON lines, and a TCP abort.

Why one module: the fake agent (`fake_agent.py`) and the line relay (`relay.py`) each
need an accept loop, per-connection daemon threads, bounded socket reads and a clean
shutdown; written once here, every fault server stops the same way (stop event, listener
closed, threads joined within a bound) and no socket outlives `close()`.
"""
from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Callable, Iterator

from graders.decode import try_decode_object

__all__ = ["LoopbackServer", "read_chunks", "read_lines", "parse_frame", "abort", "close_quietly",
           "TICK", "MAX_PARTIAL_LINE"]

TICK = 0.2                       # every recv is bounded; loops re-check the stop event
_ACCEPT_TICK = 0.1
MAX_PARTIAL_LINE = 4 * 1024 * 1024   # bytes without a newline before a connection is given up


def close_quietly(*socks: socket.socket) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def abort(*socks: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0): the peer sees a transport failure, not EOF."""
    for s in socks:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    close_quietly(*socks)


def read_chunks(sock: socket.socket, stop: threading.Event) -> Iterator[bytes]:
    """Yield what `sock` receives until EOF, a socket error or `stop`. The socket must have
    a timeout (each recv then waits at most that long before `stop` is looked at again)."""
    while not stop.is_set():
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return
        if not chunk:
            return
        yield chunk


def read_lines(sock: socket.socket, stop: threading.Event, *,
               limit: int = MAX_PARTIAL_LINE) -> Iterator[bytes]:
    """Yield each newline-terminated line (without the newline) read from `sock`; stop at
    EOF, a socket error, `stop`, or more than `limit` bytes without a newline (a peer that
    never ends its frame must not grow the grader's memory)."""
    buf = b""
    for chunk in read_chunks(sock, stop):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        yield from lines
        if len(buf) > limit:
            return


def parse_frame(line: bytes) -> dict | None:
    """The JSON object on `line`, or None when it is not one (a fault server never fails
    on a peer's garbage; what to do with it is the caller's policy)."""
    return try_decode_object(line, max_bytes=MAX_PARTIAL_LINE)


class LoopbackServer:
    """Listens on 127.0.0.1 (an ephemeral port, `address`) and runs `handler(conn)` in a
    daemon thread for each accepted connection; `conn` has a `TICK` timeout and is closed
    when the handler returns. `spawn` runs more daemon threads that `close()` joins."""

    def __init__(self, handler: Callable[[socket.socket], None], name: str, *, backlog: int = 64):
        self._handler = handler
        self.name = name
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind(("127.0.0.1", 0))
            self._sock.listen(backlog)
            self._sock.settimeout(_ACCEPT_TICK)
        except OSError:
            self._sock.close()
            raise
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self.spawn(self._accept)

    def spawn(self, fn: Callable, *args) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True, name=f"{self.name}-{fn.__name__}")
        with self._lock:
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(TICK)
            self.spawn(self._run, conn)

    def _run(self, conn: socket.socket) -> None:
        try:
            self._handler(conn)
        finally:
            close_quietly(conn)

    def close(self, timeout: float = 3.0) -> None:
        """Stop accepting, let every connection thread notice (within a TICK) and join them
        all within `timeout` seconds in total."""
        self.stop.set()
        close_quietly(self._sock)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Re-read the list: the accept thread may have spawned one more just before it saw stop.
            with self._lock:
                alive = [t for t in self._threads if t.is_alive() and t is not threading.current_thread()]
            if not alive:
                return
            for t in alive:
                t.join(max(0.0, deadline - time.monotonic()))
