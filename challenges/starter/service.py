"""What every role shares at the edges: JSON logs, the TCP protocol port, the HTTP side
port. A role plugs in a `handle(request) -> reply` function and HTTP routes.
"""
import datetime
import json
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from wire import (Fail, LineBuffer, check_request, decode, encode, error_reply,
                  frame_limit, reply_address, too_large_error)

LEVELS = {"debug": 10, "info": 20, "warn": 30, "error": 40}


def now_iso():
    """RFC 3339 UTC with milliseconds, as every timestamp in the SPEC."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class Log:
    """One JSON object per line on stderr (SPEC §12)."""

    def __init__(self, service, level="info"):
        self.service, self.threshold, self.lock = service, LEVELS[level], threading.Lock()

    def __call__(self, level, msg, event=None, task_id=None, **fields):
        if LEVELS[level] < self.threshold:
            return
        # CHALLENGE(observability): fill trace_id / span_id from the request's traceparent
        # and carry the task's trace to every agent (§12 "Trace propagation").
        line = {"ts": now_iso(), "level": level, "service": self.service, "msg": msg,
                "task_id": task_id, "trace_id": None, "span_id": None, **fields}
        if event:
            line["event"] = event
        with self.lock:
            sys.stderr.write(json.dumps(line) + "\n")
            sys.stderr.flush()


def handle_frame(line, role, cfg, log, served, handle):
    """Bytes of one frame -> reply dict. Runs SPEC §7 in order; never raises."""
    obj, authenticated = None, False
    try:
        obj = decode(line)
        check_request(obj, cfg.token, served)
        authenticated = True
        reply = handle(obj)
    except Fail as failure:
        authenticated = obj is not None and failure.name != "unauthorized"
        if failure.name == "unauthorized":
            token = obj.get("token")
            log("warn", "unauthorized request", event="unauthorized",
                token_length=len(token) if isinstance(token, str) else None)
        reply = error_reply(failure.error(), *reply_address(obj, authenticated, cfg.token))
    except Exception as exc:  # a bug must cost one request, not the service
        log("error", f"internal error: {type(exc).__name__}: {exc}")
        reply = error_reply(Fail("internal_error", "unexpected failure").error(),
                            *reply_address(obj, authenticated, cfg.token))
    outcome = "ok" if reply["type"] != "error" else reply["error"]["name"]
    kind = obj.get("type") if authenticated and isinstance(obj.get("type"), str) else None
    # CHALLENGE(observability): count requests by type and outcome for /metrics (§13.1).
    log("info", "request handled", event="request", type=kind, outcome=outcome,
        task_id=reply["task_id"])
    return reply


def serve_tcp(cfg, log, on_frame):
    """Thread per connection; frames answered one at a time, in order (SPEC §4)."""
    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            sock, buffer = self.request, LineBuffer(frame_limit(cfg.role))
            # CHALLENGE(overload): cap open connections at FD_MAX_CONNECTIONS (§15).
            # CHALLENGE(overload): idle means "no complete frame" -- this timeout is
            # reset by any byte, so a peer trickling bytes keeps the connection open.
            sock.settimeout(cfg.idle_timeout_ms / 1000)
            try:
                while True:
                    data = sock.recv(65536)
                    if not data:
                        return
                    lines, too_large = buffer.feed(data)
                    for line in lines:
                        sock.sendall(encode(on_frame(line)))
                    if too_large:
                        sock.sendall(encode(error_reply(too_large_error(buffer.limit))))
                        return
            except OSError:  # includes socket.timeout: idle peer or stuck writer
                return

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    # CHALLENGE(tls-shutdown): with FD_TLS_CERT/FD_TLS_KEY set, wrap accepted sockets
    # in an ssl.SSLContext (TLS 1.2+), optionally requiring client certs (§16).
    return Server((cfg.host, cfg.port), Handler)


def serve_http(cfg, routes):
    """The HTTP side port. `routes` maps a path to a function returning (status, body)."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 5

        def do_GET(self):
            route = routes.get(self.path.split("?", 1)[0])
            status, body = route() if route else (404, {"error": "not_found"})
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # stderr is reserved for JSON log lines
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    return Server((cfg.host, cfg.http_port), Handler)


def run_forever(servers, stop, log):
    """Serve until `stop` is set (by SIGTERM/SIGINT), then close the listeners.

    CHALLENGE(tls-shutdown): SPEC §17 wants a drain -- finish requests and tasks already
    received, within FD_SHUTDOWN_GRACE_MS -- before exiting; this exits right away.
    """
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2},
                                daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    log("info", "started", event="started")
    while not stop.wait(0.2):
        pass
    for server in servers:
        server.shutdown()
        server.server_close()
    for thread in threads:
        thread.join(timeout=2)
    log("info", "shutting down", event="shutdown")
