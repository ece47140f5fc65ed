"""Process lifecycle: start a service, wait for SIGTERM/SIGINT, drain, exit (SPEC §17).

Signal handlers only set an event (they run on the main thread between bytecodes, so
they must not take locks); the main thread then runs the drain with a bounded wait.
The exit status is 0 when the drain finished everything it had received, 1 otherwise.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Protocol


class Service(Protocol):
    def start(self) -> None: ...

    def drain(self, grace_s: float) -> bool: ...

    def close(self) -> None: ...


class StopSignal:
    """An event set by SIGTERM or SIGINT (or by ``request_stop`` in tests)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name: str | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.signal_name = signal.Signals(signum).name
        self.event.set()

    def request_stop(self, reason: str = "requested") -> None:
        self.signal_name = reason
        self.event.set()

    def wait(self, poll_s: float = 0.5) -> None:
        """Block until stopped. A timed wait keeps the main thread responsive to signals."""
        while not self.event.wait(timeout=poll_s):
            pass


def run(service: Service, grace_ms: int, logger, stop: StopSignal | None = None) -> int:
    """Start ``service``, serve until a stop signal, drain within ``grace_ms``, return exit code."""
    stop = stop or StopSignal()
    stop.install()
    service.start()
    stop.wait()
    started = time.monotonic()
    logger.info("draining", event="drain", signal=stop.signal_name, grace_ms=grace_ms)
    try:
        clean = service.drain(grace_ms / 1000.0)
    finally:
        service.close()
    logger.info("shutdown complete", event="shutdown", clean=clean,
                drain_ms=int((time.monotonic() - started) * 1000))
    return 0 if clean else 1


class Node:
    """One service process: its protocol server, its HTTP side port, and hooks around them.

    ``on_start`` runs before the ports open (load memory, start workers) so that a port
    that answers belongs to a service that is ready to work. ``drain_extra(timeout_s)``
    lets a service wait for work the server does not see (the orchestrator's queue).
    ``release_waiters()`` is called when that work will not finish within the grace period:
    requests still waiting for it must answer now (an error reply such as ``timeout``), so
    that no client is left with a silently closed connection (SPEC §17).
    """

    #: Part of the grace period kept back for answering released waiters before exit.
    RELEASE_RESERVE_S = 0.25

    def __init__(self, service, server, side, *, on_start=None, drain_extra=None, on_close=None,
                 release_waiters=None) -> None:
        self.service = service
        self.server = server
        self.side = side
        self.on_start = on_start
        self.drain_extra = drain_extra
        self.on_close = on_close
        self.release_waiters = release_waiters

    def start(self) -> None:
        if self.on_start is not None:
            self.on_start()
        self.server.start()
        self.side.start()

    def drain(self, grace_s: float) -> bool:
        """True when everything received was finished and answered within ``grace_s``."""
        end = time.monotonic() + grace_s
        # Waiters are released a little before the end, so that their replies are
        # written within the grace period rather than after it.
        release_at = end - min(self.RELEASE_RESERVE_S, grace_s / 4)
        self.service.draining = True
        self.server.begin_drain()

        def left(until: float) -> float:
            return max(0.0, until - time.monotonic())

        extra = True if self.drain_extra is None else self.drain_extra(left(release_at))
        idle = self.server.wait_idle(left(release_at))
        if not (extra and idle) and self.release_waiters is not None:
            self.release_waiters()
        # Requests in flight (including those just released) are answered before closing;
        # work still running may yet finish in the time left.
        idle = self.server.wait_idle(left(end))
        if not extra:
            extra = self.drain_extra(left(end))
        return idle and extra

    def close(self) -> None:
        self.server.close()
        self.side.close()
        if self.on_close is not None:
            self.on_close()
