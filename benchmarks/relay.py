"""The transport ceiling: a bare newline-JSON relay with the reference's hop count.

Why: "is the reference fast?" only means something next to what the same transport can
do with no work at all. This relay has the same shape as the system - a client talks to a
relay-orchestrator, which sends each task sequentially to three relay-agents and answers
the client with the last reply - over the same NDJSON framing, one thread per connection
(stdlib), one process per service, but no validation, no step work, no persistence, no
logging, no metrics. Agents echo the payload, so the bytes on each hop are about those of
the real pipeline. The benchmark drives it with the same client count and inputs as the
reference, in the same run, and reports reference / ceiling.

`--fresh` makes the relay-orchestrator open a new connection to each agent for every
task instead of keeping one per agent per client connection; the difference isolates the
cost of connection set-up.

`--durable DIR` adds exactly the durable writes SPEC §11 makes every implementation do,
and nothing else: each agent stores one record per request, the orchestrator one when a
task is accepted and one when it finishes (§11.1), each written as §11.2 prescribes
(temporary file in the same directory, write, fsync, rename over
`records/<task_id>.json`, directory fsync shared by concurrent writers) and pruned to the
newest 1,000 (§11.3, the default `FD_MEMORY_RETENTION`). `--recycle` adds the
reference store's inode recycling (spares, exchange on replace); see
`reference_impl/memory/store.py`. Together they bound what any implementation of the
contract can do on this machine's disk with either write path.

Usage (one process per service):
  relay.py agent HOST PORT STEP [--durable DIR [--recycle]]
  relay.py orch HOST PORT AGENT_HOST:PORT,AGENT_HOST:PORT,AGENT_HOST:PORT [--fresh] [--durable DIR [--recycle]]
Standard library only; every socket has a timeout.
"""
from __future__ import annotations

import collections
import json
import os
import socket
import socketserver
import sys
import threading

IO_TIMEOUT_S = 30.0
MAX_LINE = 8 * 1024 * 1024
STEPS = ("collect", "analyze", "report")
RETENTION = 1000


try:
    import ctypes
    _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
except (ImportError, OSError, AttributeError):
    _renameat2 = None


class DurableRecords:
    """SPEC §11.2's write path, bare: one file per task under `records/`, atomic and
    fsynced, the directory fsync shared by concurrent writers, retention by age.

    `recycle` reuses inodes the way the reference's store does (pruned records and
    replaced versions become truncated spare temp files; a replacement is an atomic
    exchange), so that the relay stays a ceiling for the reference's write path too."""

    SPARES_MAX = 64

    def __init__(self, directory: str, retention: int = RETENTION, recycle: bool = False):
        self.dir = os.path.join(directory, "records")
        os.makedirs(self.dir, exist_ok=True)
        self.retention = retention
        self.recycle = recycle and _renameat2 is not None
        self._lock = threading.Lock()
        self._dir_sync_lock = threading.Lock()
        self._order: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._spares: list[str] = []
        self._renames = 0
        self._synced = 0
        self._temp = 0

    def _temp_name(self, task_id: str) -> str:
        with self._lock:
            self._temp += 1
            return os.path.join(self.dir, f".{task_id}.{self._temp}.tmp")

    def put(self, task_id: str, data: bytes) -> None:
        with self._lock:
            spare = self._spares.pop() if self._spares else None
            replacing = task_id in self._order
        if spare is not None:
            temp, fd = spare, os.open(spare, os.O_WRONLY | os.O_TRUNC)
        else:
            temp = self._temp_name(task_id)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        target = os.path.join(self.dir, f"{task_id}.json")
        if self.recycle and replacing and _renameat2(-100, temp.encode(), -100, target.encode(), 2) == 0:
            with self._lock:
                self._spares.append(temp)
        else:
            os.replace(temp, target)
        with self._lock:
            self._renames += 1
            generation = self._renames
            self._order[task_id] = None
            self._order.move_to_end(task_id)
            doomed = []
            while len(self._order) > self.retention:
                doomed.append(self._order.popitem(last=False)[0])
        for old in doomed:
            path = os.path.join(self.dir, f"{old}.json")
            with self._lock:
                keep = self.recycle and len(self._spares) < self.SPARES_MAX
            if keep:
                spare = self._temp_name(old)
                os.rename(path, spare)
                os.truncate(spare, 0)
                with self._lock:
                    self._spares.append(spare)
            else:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        with self._dir_sync_lock:
            if self._synced >= generation:
                return
            with self._lock:
                upto = self._renames
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            self._synced = upto


def encode(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


class _LineConn:
    """A persistent client connection to one agent: send a frame, read one line back."""

    def __init__(self, addr: tuple[str, int]):
        self.sock = socket.create_connection(addr, timeout=IO_TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb")

    def call(self, frame: dict) -> dict:
        self.sock.sendall(encode(frame))
        line = self.rfile.readline(MAX_LINE)
        if not line:
            raise ConnectionError("agent closed the connection")
        return json.loads(line)

    def close(self) -> None:
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass


def _frames(rfile):
    """The decoded frames of one connection until EOF or a read error (blank lines skipped)."""
    while True:
        try:
            line = rfile.readline(MAX_LINE)
        except OSError:
            return
        if not line:
            return
        if line.strip():
            yield json.loads(line)


class AgentHandler(socketserver.StreamRequestHandler):
    """Reply `<type>_ok` with the request's payload, frame by frame."""
    timeout = IO_TIMEOUT_S
    records: DurableRecords | None = None

    def handle(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for frame in _frames(self.rfile):
            reply = {"v": 1, "type": f"{frame.get('type')}_ok", "in_reply_to": frame.get("msg_id"),
                     "task_id": frame.get("task_id"), "replay": False, "payload": frame.get("payload")}
            if self.records is not None:
                self.records.put(str(frame.get("task_id")),
                                 encode({"task_id": frame.get("task_id"), "input": frame.get("payload"),
                                         "output": reply["payload"]}))
            self.wfile.write(encode(reply))


class OrchHandler(socketserver.StreamRequestHandler):
    """For each client frame: the three agents in turn, then `submit_ok` with the result."""
    timeout = IO_TIMEOUT_S
    agents: list[tuple[str, int]] = []
    fresh = False
    records: DurableRecords | None = None

    def handle(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns: dict[int, _LineConn] = {}
        n = 0
        try:
            for frame in _frames(self.rfile):
                task_id = frame.get("task_id")
                payload = (frame.get("payload") or {}).get("input")
                if self.records is not None:
                    self.records.put(str(task_id), encode({"task_id": task_id, "status": "queued",
                                                           "input": payload}))
                task_input = payload
                for i, step in enumerate(STEPS):
                    n += 1
                    if i not in conns:
                        conns[i] = _LineConn(self.agents[i])
                    reply = conns[i].call({"v": 1, "type": step, "msg_id": f"r-{n}",
                                           "task_id": task_id, "payload": payload})
                    if self.fresh:
                        conns.pop(i).close()
                    payload = reply.get("payload")
                out = {"v": 1, "type": "submit_ok", "in_reply_to": frame.get("msg_id"),
                       "task_id": task_id, "replay": False,
                       "payload": {"task_id": task_id, "status": "succeeded", "result": payload,
                                   "steps": []}}
                if self.records is not None:
                    self.records.put(str(task_id), encode({"task_id": task_id, "status": "succeeded",
                                                           "input": task_input, "result": payload}))
                self.wfile.write(encode(out))
        finally:
            for c in conns.values():
                c.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[1] not in ("agent", "orch"):
        print(__doc__, file=sys.stderr)
        return 2
    kind, host, port = argv[1], argv[2], int(argv[3])
    records = None
    if "--durable" in argv:
        records = DurableRecords(argv[argv.index("--durable") + 1], recycle="--recycle" in argv)
    if kind == "agent":
        handler = type("Agent", (AgentHandler,), {"records": records})
    else:
        agents = []
        for item in argv[4].split(","):
            h, _, p = item.rpartition(":")
            agents.append((h, int(p)))
        if len(agents) != len(STEPS):
            print("orch needs exactly three agent addresses", file=sys.stderr)
            return 2
        handler = type("Orch", (OrchHandler,), {"agents": agents, "fresh": "--fresh" in argv,
                                                "records": records})
    with _Server((host, port), handler) as server:
        print("ready", flush=True)
        server.serve_forever(poll_interval=0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
