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
task (as the reference does for every attempt) instead of keeping one per agent per
client connection; the difference isolates the cost of connection set-up.

Usage (one process per service):
  relay.py agent HOST PORT STEP
  relay.py orch HOST PORT AGENT_HOST:PORT,AGENT_HOST:PORT,AGENT_HOST:PORT [--fresh]
Standard library only; every socket has a timeout.
"""
from __future__ import annotations

import json
import socket
import socketserver
import sys

IO_TIMEOUT_S = 30.0
MAX_LINE = 8 * 1024 * 1024
STEPS = ("collect", "analyze", "report")


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


class AgentHandler(socketserver.StreamRequestHandler):
    """Reply `<type>_ok` with the request's payload, frame by frame."""
    timeout = IO_TIMEOUT_S

    def handle(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            try:
                line = self.rfile.readline(MAX_LINE)
            except OSError:
                return
            if not line:
                return
            if not line.strip():
                continue
            frame = json.loads(line)
            reply = {"v": 1, "type": f"{frame.get('type')}_ok", "in_reply_to": frame.get("msg_id"),
                     "task_id": frame.get("task_id"), "replay": False, "payload": frame.get("payload")}
            self.wfile.write(encode(reply))


class OrchHandler(socketserver.StreamRequestHandler):
    """For each client frame: the three agents in turn, then `submit_ok` with the result."""
    timeout = IO_TIMEOUT_S
    agents: list[tuple[str, int]] = []
    fresh = False

    def handle(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns: dict[int, _LineConn] = {}
        n = 0
        try:
            while True:
                try:
                    line = self.rfile.readline(MAX_LINE)
                except OSError:
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                frame = json.loads(line)
                task_id = frame.get("task_id")
                payload = (frame.get("payload") or {}).get("input")
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
    if kind == "agent":
        handler = AgentHandler
    else:
        agents = []
        for item in argv[4].split(","):
            h, _, p = item.rpartition(":")
            agents.append((h, int(p)))
        if len(agents) != len(STEPS):
            print("orch needs exactly three agent addresses", file=sys.stderr)
            return 2
        handler = type("Orch", (OrchHandler,), {"agents": agents, "fresh": "--fresh" in argv})
    with _Server((host, port), handler) as server:
        print("ready", flush=True)
        server.serve_forever(poll_interval=0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
