"""A relay in front of a real agent that judges each NDJSON line with a policy, and the two
policies the checks use (`ReplyDropper`, `WorkResetter`).

Why a relay beside the fault proxy: the proxy's toxics act on "the next reply" or "every
connection", while some checks must hit exactly one frame of one task (the first
`collect_ok` of a task, the first n `analyze` requests of a task) whatever the number of
connections or attempts a correct orchestrator uses. The relay sits behind the agent's
proxy (`proxy.set_upstream(*relay.address)`), so the proxy still records every frame.

Model: each accepted client connection gets one upstream connection; each direction is a
pump thread. A direction without a policy is forwarded byte for byte; a direction with a
policy is cut into lines and each line is given to it, which answers one action:
  PASS  - forward the line;
  DROP  - forward nothing more and close both connections (a lost frame, then EOF);
  RESET - forward nothing more and abort both connections with a TCP reset.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Callable, Optional

from .loopback import LoopbackServer, TICK, abort, close_quietly, parse_frame, read_chunks, read_lines

__all__ = ["LineRelay", "ReplyDropper", "WorkResetter", "PASS", "DROP", "RESET"]

PASS, DROP, RESET = "pass", "drop", "reset"
Policy = Optional[Callable[[bytes], str]]


class LineRelay:
    """Relays every connection to `upstream`, asking `on_request(line)` about each request
    line and `on_reply(line)` about each reply line (None: that direction is not judged)."""

    def __init__(self, upstream: tuple[str, int], *, on_request: Policy = None, on_reply: Policy = None,
                 connect_timeout: float = 2.0, name: str = "relay"):
        self.upstream = upstream
        self._on_request, self._on_reply = on_request, on_reply
        self._connect_timeout = connect_timeout
        self._server = LoopbackServer(self._link, name)
        self.address = self._server.address

    def _link(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=self._connect_timeout)
        except OSError:
            return                      # the client sees EOF: the agent is unreachable
        upstream.settimeout(TICK)
        self._server.spawn(self._pump, upstream, client, self._on_reply)
        self._pump(client, upstream, self._on_request)

    def _pump(self, src: socket.socket, dst: socket.socket, policy: Policy) -> None:
        stop = self._server.stop
        try:
            if policy is None:
                for chunk in read_chunks(src, stop):
                    dst.sendall(chunk)
                return
            for line in read_lines(src, stop):
                action = policy(line)
                if action == PASS:
                    dst.sendall(line + b"\n")
                    continue
                if action == RESET:
                    abort(src, dst)
                return                  # DROP or RESET: the link ends here
        except OSError:
            return
        finally:
            close_quietly(src, dst)     # either side ending ends the whole link

    def close(self) -> None:
        self._server.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReplyDropper(LineRelay):
    """Swallows exactly one reply — the first `reply_type` for `task_id` — and then closes
    that client connection, as a network that loses a reply would. Everything else is
    forwarded.

    Why not the proxy's DropReply toxic: it drops the next reply on any connection, and an
    orchestrator that opens one connection per attempt (allowed) would lose its hello
    reply instead of the work reply; this relay targets the reply the check is about.
    """

    def __init__(self, upstream: tuple[str, int], reply_type: str, task_id: str):
        self.reply_type, self.task_id = reply_type, task_id
        self.dropped: dict | None = None
        self._lock = threading.Lock()
        super().__init__(upstream, on_reply=self._judge_reply, name="reply-dropper")

    def _judge_reply(self, line: bytes) -> str:
        obj = parse_frame(line)
        with self._lock:
            if self.dropped is None and obj is not None and obj.get("type") == self.reply_type \
                    and obj.get("task_id") == self.task_id:
                self.dropped = obj
                return DROP
        return PASS


class WorkResetter(LineRelay):
    """Answers the first `resets` work requests of type `request_type` for `task_id` with a
    TCP reset (the request is not forwarded), then relays everything to the real agent.

    Why a relay that counts requests rather than a fault the grader removes after a while:
    the number of failed attempts is then fixed by the relay, not by a race between the
    grader's polling and the orchestrator's retry timing, so the outcome (attempt
    `resets + 1` succeeds) is the same for every correct implementation, with or without
    backoff (backoff is judged by orchestration.retry_backoff alone)."""

    def __init__(self, upstream: tuple[str, int], request_type: str, task_id: str, resets: int):
        self.request_type, self.task_id = request_type, task_id
        self.resets_left = resets
        self.reset_times: list[float] = []
        self.forwarded: list[dict] = []
        self._lock = threading.Lock()
        super().__init__(upstream, on_request=self._judge_request, name="work-resetter")

    def _judge_request(self, line: bytes) -> str:
        obj = parse_frame(line)
        if obj is None or obj.get("type") != self.request_type or obj.get("task_id") != self.task_id:
            return PASS
        with self._lock:
            if self.resets_left > 0:
                self.resets_left -= 1
                self.reset_times.append(time.monotonic())
                return RESET
            self.forwarded.append(obj)
        return PASS
