"""A drifted agent run inside the grader: it speaks the framing but answers in a way a
v1 orchestrator must refuse (renamed output fields, or only protocol v2).

Why a fake rather than a damaged real agent: drift has to be exact and identical for
every submission; the orchestrator reaches it through the agent's fault proxy
(`set_upstream`), so nothing in the submission is restarted or reconfigured.
"""
from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time

from graders import oracle


def _err(code: int, name: str, definite: bool, retryable: bool, message: str, details: dict) -> dict:
    return {"code": code, "name": name, "definite": definite, "retryable": retryable,
            "message": message, "details": details}


class FakeAgent:
    """mode 'drift_schema': hello ok, work replies with `latency_ms` renamed `latency`.
    mode 'v2_only': every frame answered unsupported_version with supported [2].
    mode 'reset': hello ok, every work request recorded (with its arrival time) and
    answered by a TCP reset: a transport failure the orchestrator must retry.
    mode 'internal_error': hello ok, every work request answered internal_error (14,
    retryable) at once, so retry gaps can be timed to the millisecond.
    mode 'unauthorized': hello ok, every work request refused unauthorized (20, definite,
    not retryable), as an agent configured with another token would."""

    def __init__(self, role: str, mode: str):
        self.role, self.mode = role, mode
        self.requests: list[dict] = []
        self.work_times: list[float] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.address = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        t = threading.Thread(target=self._accept, daemon=True, name=f"fake-{role}")
        t.start()
        self._threads.append(t)

    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, c: socket.socket):
        c.settimeout(0.2)
        buf = b""
        with c:
            while not self._stop.is_set():
                try:
                    chunk = c.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                if len(buf) > 4 * 1024 * 1024:
                    return
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if not line.strip():
                        continue
                    try:
                        req = json.loads(line)
                    except ValueError:
                        continue
                    if not isinstance(req, dict):
                        continue
                    with self._lock:
                        self.requests.append(req)
                        if req.get("type") != "hello":
                            self.work_times.append(time.monotonic())
                    if self.mode == "reset" and req.get("type") != "hello":
                        try:
                            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        except OSError:
                            pass
                        return
                    try:
                        c.sendall(json.dumps(self._answer(req)).encode() + b"\n")
                    except OSError:
                        return

    def _answer(self, req: dict) -> dict:
        base = {"v": 1, "in_reply_to": req.get("msg_id"), "task_id": req.get("task_id")}
        rtype = req.get("type")
        if self.mode == "internal_error" and rtype != "hello":
            return dict(base, type="error", error=_err(
                14, "internal_error", False, True, "the agent failed unexpectedly (injected)", {}))
        if self.mode == "unauthorized" and rtype != "hello":
            return dict(base, type="error", task_id=None, error=_err(
                20, "unauthorized", True, False, "unauthorized: missing or invalid token", {}))
        if self.mode == "v2_only":
            return dict(base, v=2, type="error", error=_err(
                22, "unsupported_version", True, False,
                "this agent speaks protocol version 2 only", {"supported": [2]}))
        if rtype == "hello":
            step = {"collector": "collect", "analyzer": "analyze", "reporter": "report"}[self.role]
            return dict(base, type="hello_ok", payload={
                "version": 1, "role": self.role, "capabilities": [step],
                "limits": {"max_frame_bytes": 1048576, "max_depth": 32}})
        if rtype == "collect":
            try:
                out = oracle.collect(req.get("payload") or {})
            except Exception as exc:  # noqa: BLE001 - a candidate's malformed collect
                # The orchestrator under test sent a payload the oracle cannot read: answer
                # as a v1 agent would (definitely, not retryable) so the fake keeps serving
                # and the check judges the orchestrator, instead of a silently dead thread.
                return dict(base, type="error", error=_err(
                    21, "schema_violation", True, False, f"collect payload unreadable: {exc}",
                    {"path": "$.payload", "expected": "collect_input"}))
            for ev in out["events"]:
                ev["latency"] = ev.pop("latency_ms")
            return dict(base, type="collect_ok", replay=False, payload=out)
        return dict(base, type="error", error=_err(10, "not_supported", True, False,
                                                   f"{rtype} not served", {"type": rtype}))

    def work_requests(self) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r.get("type") not in ("hello",)]

    def close(self):
        self._stop.set()
        try:
            self._sock.close()
        except OSError:
            pass
        for t in self._threads:
            t.join(1.0)


@contextlib.contextmanager
def fake_upstream(ctx, role: str, mode: str):
    """Route the orchestrator's `role` connections to a FakeAgent through the proxy."""
    topo = ctx.topo
    proxy = topo.agent_proxy[role]
    real = topo.deployment.endpoint(role)
    fake = FakeAgent(role, mode)
    proxy.set_upstream(*fake.address)
    proxy.close_connections()
    what = {"reset": "resets every work request", "v2_only": "speaks only protocol v2",
            "internal_error": "answers every work request internal_error (14, retryable)",
            "unauthorized": "refuses every work request as unauthorized (20, definite)",
            "drift_schema": "answers with renamed output fields"}[mode]
    ctx.note("fault", f"{role} replaced by a fake agent that {what}")
    try:
        yield fake
    finally:
        proxy.set_upstream(real.host, real.port)
        proxy.close_connections()
        fake.close()
        ctx.note("heal", f"{role} restored")
        topo.wait_ready(5.0)


class ReplyDropper:
    """A relay in front of a real agent that swallows exactly one reply — the first
    `<step>_ok` for `task_id` — and then closes that client connection, as a network that
    loses a reply would. Everything else is forwarded line by line.

    Why not the proxy's DropReply toxic: it drops the next reply on any connection, and an
    orchestrator that opens one connection per attempt (allowed) would lose its hello
    reply instead of the work reply; this relay targets the reply the check is about.
    """

    def __init__(self, upstream: tuple[str, int], reply_type: str, task_id: str):
        self.upstream = upstream
        self.reply_type, self.task_id = reply_type, task_id
        self.dropped: dict | None = None
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.address = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept)

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                s = socket.create_connection(self.upstream, timeout=2.0)
            except OSError:
                c.close()
                continue
            for x in (c, s):
                x.settimeout(0.2)
            self._spawn(self._pump, c, s, False)
            self._spawn(self._pump, s, c, True)

    def _pump(self, src: socket.socket, dst: socket.socket, replies: bool):
        buf = b""
        try:
            while not self._stop.is_set():
                try:
                    chunk = src.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    return
                if not replies:
                    dst.sendall(chunk)
                    continue
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if self._should_drop(line):
                        return
                    dst.sendall(line + b"\n")
        except OSError:
            return
        finally:
            for x in (src, dst):
                try:
                    x.close()
                except OSError:
                    pass

    def _should_drop(self, line: bytes) -> bool:
        try:
            obj = json.loads(line)
        except ValueError:
            return False
        with self._lock:
            if self.dropped is None and isinstance(obj, dict) and obj.get("type") == self.reply_type \
                    and obj.get("task_id") == self.task_id:
                self.dropped = obj
                return True
        return False

    def close(self):
        self._stop.set()
        try:
            self._sock.close()
        except OSError:
            pass
        for t in self._threads:
            t.join(1.0)


class WorkResetter:
    """A relay in front of a real agent that answers the first `resets` work requests of
    type `request_type` for `task_id` with a TCP reset (the request is not forwarded), then
    relays everything, line by line, to the real agent.

    Why a relay that counts requests rather than a fault the grader removes after a while:
    the number of failed attempts is then fixed by the relay, not by a race between the
    grader's polling and the orchestrator's retry timing, so the outcome (attempt
    `resets + 1` succeeds) is the same for every correct implementation, with or without
    backoff (backoff is judged by orchestration.retry_backoff alone)."""

    def __init__(self, upstream: tuple[str, int], request_type: str, task_id: str, resets: int):
        self.upstream = upstream
        self.request_type, self.task_id = request_type, task_id
        self.resets_left = resets
        self.reset_times: list[float] = []
        self.forwarded: list[dict] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.address = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept)

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                s = socket.create_connection(self.upstream, timeout=2.0)
            except OSError:
                c.close()
                continue
            for x in (c, s):
                x.settimeout(0.2)
            self._spawn(self._requests, c, s)
            self._spawn(self._replies, s, c)

    def _take_reset(self, line: bytes) -> bool:
        try:
            obj = json.loads(line)
        except ValueError:
            return False
        if not isinstance(obj, dict) or obj.get("type") != self.request_type or obj.get("task_id") != self.task_id:
            return False
        with self._lock:
            if self.resets_left > 0:
                self.resets_left -= 1
                self.reset_times.append(time.monotonic())
                return True
            self.forwarded.append(obj)
        return False

    @staticmethod
    def _abort(*socks: socket.socket) -> None:
        for x in socks:
            try:
                x.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            try:
                x.close()
            except OSError:
                pass

    def _requests(self, c: socket.socket, s: socket.socket):
        buf = b""
        try:
            while not self._stop.is_set():
                try:
                    chunk = c.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    return
                buf += chunk
                if len(buf) > 4 * 1024 * 1024:
                    return
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if self._take_reset(line):
                        self._abort(c, s)
                        return
                    s.sendall(line + b"\n")
        except OSError:
            return
        finally:
            for x in (c, s):
                try:
                    x.close()
                except OSError:
                    pass

    def _replies(self, s: socket.socket, c: socket.socket):
        try:
            while not self._stop.is_set():
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    return
                c.sendall(chunk)
        except OSError:
            return
        finally:
            for x in (c, s):
                try:
                    x.close()
                except OSError:
                    pass

    def close(self):
        self._stop.set()
        try:
            self._sock.close()
        except OSError:
            pass
        for t in self._threads:
            t.join(1.0)
