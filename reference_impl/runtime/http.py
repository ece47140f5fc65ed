"""The HTTP side port (SPEC §13): /livez, /readyz, /metrics, plus per-service routes.

Plain HTTP/1.1 with ``Connection: close``; GET only. It needs no token and therefore must
never render one. The stdlib request handler already bounds the request line (64 KiB) and
the header count; we add a socket timeout so a slow client cannot hold a thread, and we
never read a request body. The stdlib's own access log goes to stderr, which would break
the one-JSON-object-per-line log contract (§12), so it is silenced.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
JSON_CONTENT_TYPE = "application/json"
HTML_CONTENT_TYPE = "text/html; charset=utf-8"
REQUEST_TIMEOUT_S = 5.0

#: A route answers ``(status, content_type, body)``.
Response = tuple[int, str, bytes]
Route = Callable[[], Response]
PrefixRoute = Callable[[str], Response]


def json_response(status: int, obj: object) -> Response:
    return status, JSON_CONTENT_TYPE, json.dumps(obj, separators=(",", ":")).encode("utf-8")


class SidePort:
    """Serves the health, readiness and metrics endpoints and any extra routes.

    ``readiness()`` returns ``(ready, reasons)``; ``metrics()`` returns the exposition
    text. ``routes`` maps exact paths, ``prefix_routes`` maps a prefix (e.g.
    ``/api/tasks/``) to a function of the remainder of the path.
    """

    def __init__(self, host: str, port: int, *, readiness: Callable[[], tuple[bool, list[str]]],
                 metrics: Callable[[], str], routes: dict[str, Route] | None = None,
                 prefix_routes: dict[str, PrefixRoute] | None = None,
                 on_error: Callable[[str, BaseException], None] | None = None) -> None:
        self.host = host
        self.port = port
        self.readiness = readiness
        self.metrics = metrics
        self.routes = dict(routes or {})
        self.prefix_routes = dict(prefix_routes or {})
        self.on_error = on_error
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def dispatch(self, path: str) -> Response:
        """Map a request path to a response. Pure apart from the callbacks; tested directly."""
        path = path.split("?", 1)[0].split("#", 1)[0] or "/"
        if path == "/livez":
            return json_response(200, {"status": "ok"})
        if path == "/readyz":
            ready, reasons = self.readiness()
            if ready:
                return json_response(200, {"status": "ready"})
            return json_response(503, {"status": "not_ready", "reasons": list(reasons)})
        if path == "/metrics":
            return 200, METRICS_CONTENT_TYPE, self.metrics().encode("utf-8")
        if path in self.routes:
            return self.routes[path]()
        for prefix, route in self.prefix_routes.items():
            if path.startswith(prefix) and len(path) > len(prefix):
                return route(path[len(prefix):])
        return json_response(404, {"error": "not_found"})

    def start(self) -> None:
        side = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = REQUEST_TIMEOUT_S
            server_version = "faultdrill"
            sys_version = ""

            def do_GET(self) -> None:  # noqa: N802 (stdlib naming)
                self._answer(head=False)

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(head=True)

            def _other(self) -> None:
                self._send(*json_response(405, {"error": "method_not_allowed"}), head=False)

            do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other

            def _answer(self, head: bool) -> None:
                try:
                    response = side.dispatch(self.path)
                except Exception as exc:  # a failing callback is a 500, never a dead port
                    if side.on_error is not None:
                        side.on_error("http", exc)
                    response = json_response(500, {"error": "internal_error"})
                self._send(*response, head=head)

            def _send(self, status: int, ctype: str, body: bytes, head: bool) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("Connection", "close")
                self.end_headers()
                if not head:
                    self.wfile.write(body)
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 64

            def handle_error(self, request, client_address) -> None:  # noqa: ANN001
                return

        self._httpd = Server((self.host, self.port), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="http", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 2.0) -> None:
        if self._httpd is None:
            return
        httpd = self._httpd
        stopper = threading.Thread(target=httpd.shutdown, daemon=True)
        stopper.start()
        stopper.join(timeout=timeout_s)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
