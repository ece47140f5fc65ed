"""The orchestrator: accepts tasks (SPEC §9) and runs each through its pipeline (§10)
by calling the agents one step after another.
"""
import copy
import itertools
import socket
import threading
import time

from service import now_iso
from wire import (MAX_REPLY_BYTES, Fail, LineBuffer, decode, encode, hello_payload, need, ok_reply,
                  violation)
from steps import AGENT_FOR_STEP, DEFAULT_THRESHOLDS


class Transport(Exception):
    """The agent could not be reached or gave no usable reply."""


class AgentLink:
    """One connection to an agent, bounded as a whole by `timeout` seconds (§10.3)."""

    def __init__(self, addr, timeout):
        self.deadline = time.monotonic() + timeout
        self.buffer, self.pending = LineBuffer(MAX_REPLY_BYTES), []
        self.sock = socket.create_connection(addr, timeout=timeout)

    def request(self, obj):
        self._arm()
        self.sock.sendall(encode(obj))
        while not self.pending:
            self._arm()
            data = self.sock.recv(65536)
            if not data:
                raise Transport("connection closed without reply")
            lines, too_large = self.buffer.feed(data)
            if too_large:
                raise Transport("reply frame too large")
            self.pending.extend(lines)
        try:
            return decode(self.pending.pop(0))
        except Fail:
            raise Transport("unparseable reply") from None

    def _arm(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("attempt deadline passed")
        self.sock.settimeout(left)

    def close(self):
        self.sock.close()


class Orchestrator:
    def __init__(self, cfg, log):
        self.cfg, self.log = cfg, log
        self.lock = threading.Lock()
        # CHALLENGE(crash-restart): this task log lives only in RAM. SPEC §11 wants one
        # durable record per task under FD_MEMORY_DIR/records/, reloaded at start-up.
        self.tasks = {}
        self.msg_counter = 0
        self.arrivals = itertools.count()  # orders `list`, newest first

    def handle(self, request):
        kind = request["type"]
        if kind == "hello":
            return ok_reply(request, hello_payload(request, "orchestrator",
                                                   ["submit", "status", "list"]))
        if kind == "status":
            task = self.snapshot(request["task_id"])
            if task is None:
                raise Fail("not_found", f"task {request['task_id']} was never submitted",
                           task_id=request["task_id"])
            return ok_reply(request, task)
        if kind == "list":
            limit = request["payload"].get("limit", 100)
            if type(limit) is not int or not 1 <= limit <= 1000:
                raise violation("$.payload.limit", "integer 1..1000")
            with self.lock:
                newest = sorted(self.tasks.values(), key=lambda t: t["order"], reverse=True)
                rows = [{k: t[k] for k in ("task_id", "task_type", "status", "submitted_at")}
                        for t in newest[:limit]]
            return ok_reply(request, {"tasks": rows})
        return self.submit(request)

    def submit(self, request):
        payload = request["payload"]
        task_type = payload.get("task_type")
        if task_type not in self.cfg.routes:
            raise violation("$.payload.task_type", f"one of {sorted(self.cfg.routes)}")
        task_input = need(payload.get("input"), dict, "$.payload.input")
        need(task_input.get("source"), str, "$.payload.input.source")
        need(task_input.get("records"), list, "$.payload.input.records")
        # CHALLENGE(idempotency): look the task_id up first (SPEC §9.3): replay a
        # succeeded task, in_progress while running, idempotency_conflict on a different
        # payload. Today a duplicate submit simply runs the whole pipeline again.
        # CHALLENGE(overload): run tasks on FD_WORKERS workers behind a queue of
        # FD_QUEUE_SIZE; answer `busy` with retry_after_ms when it is full (§15).
        task_id = request["task_id"]
        task = {"task_id": task_id, "task_type": task_type, "status": "queued",
                "submitted_at": now_iso(), "finished_at": None, "result": None,
                "error": None, "steps": [], "input": task_input,
                "order": next(self.arrivals)}
        with self.lock:
            self.tasks[task_id] = task
        self.log("info", "task received", event="task_received", task_id=task_id)
        if payload.get("wait", True) is False:
            threading.Thread(target=self.run, args=(task,), daemon=True).start()
            return ok_reply(request, {"task_id": task_id, "status": "queued"}, replay=False)
        self.run(task)
        if task["status"] != "succeeded":
            error = task["error"]
            raise Fail(error["name"], error["message"], **error["details"])
        return ok_reply(request, {"task_id": task_id, "status": "succeeded",
                                  "result": task["result"], "steps": task["steps"]},
                        replay=False)

    def snapshot(self, task_id):
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None:
                return None
            view = copy.deepcopy({k: v for k, v in task.items() if k not in ("input", "order")})
        return view

    def run(self, task):
        try:
            self.run_steps(task)
        except Exception as exc:  # e.g. a drifted agent's output lacked a field we read
            self.log("error", f"pipeline crashed: {type(exc).__name__}: {exc}",
                     task_id=task["task_id"])
            self.finish(task, "failed", None, Fail("internal_error", "pipeline failed").error())

    def run_steps(self, task):
        """Sequential pipeline (§10.2): one attempt per step, stop at the first failure."""
        with self.lock:
            task["status"] = "running"
        task_input, output = task["input"], None
        thresholds = {**DEFAULT_THRESHOLDS, **(task_input.get("thresholds") or {})}
        for step in self.cfg.routes[task["task_type"]]:
            if step == "collect":
                payload = {"source": task_input["source"], "records": task_input["records"]}
            elif step == "analyze":
                payload = {"source": output["source"], "events": output["events"]}
            else:
                payload = {"analysis": output, "thresholds": thresholds}
            agent = AGENT_FOR_STEP[step]
            record = {"step": step, "agent": agent, "status": "running", "attempts": 1,
                      "started_at": now_iso(), "finished_at": None, "error": None}
            with self.lock:
                task["steps"].append(record)
            # CHALLENGE(dropped-sockets): retry transport failures and retryable errors
            # up to FD_RETRY_MAX_ATTEMPTS with equal-jitter backoff, never past the task
            # deadline FD_TASK_DEADLINE_MS (§10.3). Today: exactly one attempt.
            self.log("info", f"calling {agent}", event="step_attempt", task_id=task["task_id"],
                     step=step, attempt=1)
            output, cause = self.call_agent(agent, step, task["task_id"], payload)
            # CHALLENGE(schema-drift): validate `output` against the step's output schema
            # before using it; a drifted reply ends the task with upstream_failed (§10.2).
            with self.lock:
                record["finished_at"] = now_iso()
                record["status"] = "failed" if cause else "succeeded"
                record["error"] = cause
            if cause:
                error = Fail("upstream_failed", f"step {step} failed on {agent} after 1 "
                             f"attempts: {cause['message']}", step=step, agent=agent,
                             attempts=1, cause=cause).error()
                return self.finish(task, "failed", None, error)
        self.finish(task, "succeeded", output, None)

    def finish(self, task, status, result, error):
        with self.lock:
            task.update(status=status, result=result, error=error, finished_at=now_iso())
        event = "task_succeeded" if status == "succeeded" else "task_failed"
        self.log("info" if error is None else "warn", f"task {status}", event=event,
                 task_id=task["task_id"])

    def call_agent(self, agent, step, task_id, payload):
        """One attempt: hello, then the step. Returns (output, None) or (None, cause)."""
        host, port = getattr(self.cfg, agent + "_addr")
        timeout_ms = self.cfg.attempt_timeout_ms
        link = None
        try:
            link = AgentLink((host, port), timeout_ms / 1000)
            hello = link.request(self.message("hello", None, {"versions": [1],
                                                               "role": "orchestrator"}))
            if hello.get("type") != "hello_ok":
                return None, self.error_of(hello)
            reply = link.request(self.message(step, task_id, payload))
            if reply.get("type") == step + "_ok" and isinstance(reply.get("payload"), dict):
                return reply["payload"], None
            return None, self.error_of(reply)
        except socket.timeout:
            return None, Fail("timeout", f"attempt timed out after {timeout_ms} ms",
                              step=step, timeout_ms=timeout_ms).error()
        except ConnectionRefusedError:
            return None, Fail("internal_error", "connection refused").error()
        except ConnectionResetError:
            return None, Fail("internal_error", "connection reset").error()
        except (Transport, OSError) as exc:
            return None, Fail("internal_error", str(exc) or type(exc).__name__).error()
        finally:
            if link is not None:
                link.close()

    def error_of(self, reply):
        error = reply.get("error")
        if reply.get("type") == "error" and isinstance(error, dict):
            return error
        return Fail("internal_error", f"unexpected reply type {reply.get('type')!r}").error()

    def message(self, kind, task_id, payload):
        with self.lock:
            self.msg_counter += 1
            msg_id = f"o-{self.msg_counter}"
        # CHALLENGE(observability): add a traceparent with the task's trace id (§10.2).
        frame = {"v": 1, "type": kind, "msg_id": msg_id, "token": self.cfg.token,
                 "payload": payload}
        if task_id is not None:
            frame["task_id"] = task_id
        return frame

    def readiness(self):
        """Probe every agent with hello (at most 1 s each): ready when all answer (§13)."""
        reasons = []
        for agent in ("collector", "analyzer", "reporter"):
            link = None
            try:
                link = AgentLink(getattr(self.cfg, agent + "_addr"), 1.0)
                reply = link.request(self.message("hello", None, {"versions": [1],
                                                                   "role": "orchestrator"}))
                if reply.get("type") != "hello_ok":
                    reasons.append(agent)
            except (Transport, OSError):
                reasons.append(agent)
            finally:
                if link is not None:
                    link.close()
        if reasons:
            return 503, {"status": "not_ready", "reasons": reasons}
        return 200, {"status": "ready"}
