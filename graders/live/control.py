"""The live control API: Toxiproxy's HTTP shape, plus faultdrill's own `/faultdrill/...`.

Toxiproxy-shaped (its users' habits and scripts carry over):
    GET    /version
    GET    /proxies                          every hop (and proxies made here) with toxics
    POST   /proxies                          {name, listen, upstream, enabled}: a new proxy
    GET    /proxies/{name}
    POST   /proxies/{name}                   {enabled: false} disables a hop (refused), true enables
    DELETE /proxies/{name}                   only proxies made through POST /proxies
    GET    /proxies/{name}/toxics
    POST   /proxies/{name}/toxics            {name, type, stream, toxicity, attributes}
    GET    /proxies/{name}/toxics/{toxic}
    DELETE /proxies/{name}/toxics/{toxic}
    POST   /reset                            every proxy enabled, every toxic removed
faultdrill's own:
    GET    /faultdrill/status                services, drifted agents, jobs, traffic, hops
    GET    /faultdrill/actions               the fault actions and what each does
    POST   /faultdrill/faults                one fault dict (graders/live/actions.py)
    POST   /faultdrill/services/{role}/{op}  kill, pause, resume, restart, stop, start
    POST   /faultdrill/heal                  undo every fault, wait for readiness
    GET    /faultdrill/traffic, POST {rate}  the background traffic generator

Security decision: the API listens on 127.0.0.1 only and every request must carry
`Authorization: Bearer <token>` (the token is printed by `faultdrill up` and written to a
0600 state file the CLI reads). Why a token on loopback: in a drill the candidate's own
services run on the host network (sandboxed otherwise), and without it they could call
`/faultdrill/heal` or read the incident off `/proxies`. Requests whose Host header is not
a loopback name are refused too (a web page cannot drive the API through DNS rebinding).

`ControlAPI.handle(method, path, headers, body)` is the whole logic, I/O-free apart from
what the actions do; `ControlServer` is the thin http.server edge.
"""
from __future__ import annotations

import hmac
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..faults.proxy import FaultProxy
from ..manifest import ROLES
from .actions import ACTIONS, SERVICE_OPS, Actions, FaultError
from .toxics import TOXIC_TYPES, ToxicError, toxic_json

__all__ = ["ControlAPI", "ControlServer", "MAX_BODY_BYTES", "API_VERSION"]

MAX_BODY_BYTES = 64 * 1024
API_VERSION = "faultdrill-live/1"
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class _Reply(Exception):
    def __init__(self, status: int, body: Any = None):
        self.status, self.body = status, body


def _error(status: int, message: str) -> _Reply:
    return _Reply(status, {"error": message, "status": status})


def _addr(text: Any, what: str) -> tuple[str, int]:
    if not isinstance(text, str) or text.count(":") != 1:
        raise _error(400, f"{what} must be 'host:port'")
    host, _, port = text.partition(":")
    if host not in ("127.0.0.1", "localhost"):
        raise _error(400, f"{what} must be on loopback (127.0.0.1 or localhost)")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise _error(400, f"{what} has no valid port")
    return "127.0.0.1", int(port)


class ControlAPI:
    def __init__(self, system, actions: Actions, *, token: str, traffic=None, port: int = 0):
        self.system, self.actions, self.token, self.traffic = system, actions, token, traffic
        self.port = port
        self.on_change = None
        self._lock = threading.Lock()

    # --- entry point ------------------------------------------------------------------
    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        """(status, JSON body or None) for one request; never raises. Every change that
        succeeded is passed to `on_change(method, path, data)` when set (a drill records
        faults injected by hand on its timeline)."""
        try:
            self._authorize(headers)
            data = self._json(body) if method in ("POST", "PUT") else None
            clean = path.split("?", 1)[0].rstrip("/") or "/"
            status, answer = self._route(method, clean, data)
            if method != "GET" and status < 400 and self.on_change is not None:
                try:
                    self.on_change(method, clean, data)
                except Exception:  # noqa: BLE001 - a recorder's failure never fails the API
                    pass
            return status, answer
        except _Reply as reply:
            return reply.status, reply.body
        except (FaultError, ToxicError) as exc:
            return 400, {"error": str(exc), "status": 400}
        except Exception as exc:  # noqa: BLE001 - an action failed: say so, keep serving
            return 500, {"error": f"{type(exc).__name__}: {exc}", "status": 500}

    def _authorize(self, headers: dict[str, str]) -> None:
        host = headers.get("host", "")
        hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        if hostname not in _LOOPBACK_HOSTS:
            raise _error(403, "the control API answers only requests addressed to a loopback host")
        auth = headers.get("authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            raise _error(401, "missing or wrong token: send 'Authorization: Bearer <token>' "
                              "(printed by faultdrill up, kept in its state file)")

    @staticmethod
    def _json(body: bytes) -> Any:
        if len(body) > MAX_BODY_BYTES:
            raise _error(413, f"request body over {MAX_BODY_BYTES} bytes")
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise _error(400, "the request body is not JSON") from None

    # --- routing ------------------------------------------------------------------------
    def _route(self, method: str, path: str, data: Any) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if parts == ["version"] and method == "GET":
            return 200, {"version": API_VERSION, "toxic_types": sorted(TOXIC_TYPES)}
        if parts == ["reset"] and method == "POST":
            self.actions.reset_proxies()
            return 204, None
        if parts and parts[0] == "proxies":
            return self._proxies(method, parts[1:], data)
        if parts and parts[0] == "faultdrill":
            return self._faultdrill(method, parts[1:], data)
        raise _error(404, f"no route {method} {path}")

    def _proxy_json(self, name: str, proxy: FaultProxy) -> dict:
        host, port = proxy.address
        up_host, up_port = proxy.upstream
        return {"name": name, "listen": f"{host}:{port}", "upstream": f"{up_host}:{up_port}",
                "enabled": not proxy.down,
                "toxics": [toxic_json(n, t) for n, t in self.actions.toxics(name).items()]}

    def _proxy(self, name: str) -> FaultProxy:
        proxy = self.system.proxies.get(name)
        if proxy is None:
            raise _error(404, f"no proxy {name!r}; proxies are {', '.join(self.system.proxies)}")
        return proxy

    def _proxies(self, method: str, rest: list[str], data: Any) -> tuple[int, Any]:
        if not rest:
            if method == "GET":
                return 200, {n: self._proxy_json(n, p) for n, p in self.system.proxies.items()}
            if method == "POST":
                return self._create_proxy(data)
            raise _error(405, f"{method} /proxies is not supported")
        name = rest[0]
        proxy = self._proxy(name)
        if len(rest) == 1:
            if method == "GET":
                return 200, self._proxy_json(name, proxy)
            if method == "POST":
                if not isinstance(data, dict) or not isinstance(data.get("enabled"), bool):
                    raise _error(400, "update a proxy with {\"enabled\": true|false}")
                self.actions.set_enabled(name, data["enabled"])
                return 200, self._proxy_json(name, proxy)
            if method == "DELETE":
                if name in self.system.hops:
                    raise _error(409, f"{name} is a hop of the running system; disable it "
                                      "instead (POST /proxies/{name} {\"enabled\": false})")
                self.system.extra_proxies.pop(name).close()
                return 204, None
            raise _error(405, f"{method} /proxies/{name} is not supported")
        if rest[1] != "toxics" or len(rest) > 3:
            raise _error(404, f"no route under /proxies/{name}")
        if len(rest) == 2:
            if method == "GET":
                return 200, [toxic_json(n, t) for n, t in self.actions.toxics(name).items()]
            if method == "POST":
                try:
                    return 200, self.actions.add_toxic(name, data)
                except KeyError as exc:
                    raise _error(409, str(exc.args[0])) from None
            raise _error(405, f"{method} /proxies/{name}/toxics is not supported")
        toxic = rest[2]
        current = self.actions.toxics(name)
        if toxic not in current:
            raise _error(404, f"no toxic {toxic!r} on {name}")
        if method == "GET":
            return 200, toxic_json(toxic, current[toxic])
        if method == "DELETE":
            self.actions.remove_toxic(name, toxic)
            return 204, None
        raise _error(405, f"{method} on a toxic is not supported (delete it and add it again)")

    def _create_proxy(self, data: Any) -> tuple[int, Any]:
        if not isinstance(data, dict):
            raise _error(400, "a proxy is {name, listen, upstream, enabled}")
        name = data.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise _error(400, "name must be 1-64 letters, digits, '_' or '-'")
        with self._lock:
            if name in self.system.proxies:
                raise _error(409, f"proxy {name!r} already exists")
            if len(self.system.extra_proxies) >= 16:
                raise _error(409, "at most 16 extra proxies")
            listen = _addr(data.get("listen", "127.0.0.1:0"), "listen")
            upstream = _addr(data.get("upstream"), "upstream")
            proxy = FaultProxy(name, upstream, seed=self.system.seed * 10 + 5 + len(self.system.extra_proxies),
                               listen_host=listen[0], listen_port=listen[1])
            try:
                proxy.start()
            except OSError as exc:
                raise _error(409, f"cannot listen on {listen[0]}:{listen[1]}: {exc}") from None
            self.system.extra_proxies[name] = proxy
        if data.get("enabled") is False:
            proxy.set_down(True)
        return 201, self._proxy_json(name, proxy)

    def _faultdrill(self, method: str, rest: list[str], data: Any) -> tuple[int, Any]:
        if rest == ["status"] and method == "GET":
            status = self.actions.status()
            status["hops"] = {n: self._proxy_json(n, p) for n, p in self.system.proxies.items()}
            status["traffic"] = self.traffic.stats() if self.traffic is not None else None
            return 200, status
        if rest == ["actions"] and method == "GET":
            return 200, {"actions": {k: v[1] for k, v in ACTIONS.items()},
                         "toxic_types": {k: v.summary for k, v in TOXIC_TYPES.items()},
                         "service_ops": list(SERVICE_OPS)}
        if rest == ["faults"] and method == "POST":
            return 200, self.actions.apply(data)
        if rest == ["heal"] and method == "POST":
            return 200, self.actions.heal()
        if len(rest) == 3 and rest[0] == "services" and method == "POST":
            role, op = rest[1], rest[2]
            if role not in ROLES or op not in SERVICE_OPS:
                raise _error(404, f"services/{{{'|'.join(ROLES)}}}/{{{'|'.join(SERVICE_OPS)}}}")
            return 200, self.actions.apply({"action": "service", "role": role, "op": op})
        if rest == ["traffic"]:
            if self.traffic is None:
                raise _error(409, "no traffic generator runs (faultdrill up --traffic RATE)")
            if method == "GET":
                return 200, self.traffic.stats()
            if method == "POST":
                rate = data.get("rate") if isinstance(data, dict) else None
                try:
                    self.traffic.set_rate(rate if isinstance(rate, (int, float)) and not isinstance(rate, bool) else -1)
                except ValueError as exc:
                    raise _error(400, str(exc)) from None
                return 200, self.traffic.stats()
        raise _error(404, f"no route {method} /faultdrill/{'/'.join(rest)}")


class _Handler(BaseHTTPRequestHandler):
    server_version = "faultdrill-live"
    timeout = 10                       # a stalled client cannot hold a thread forever
    api: ControlAPI                    # set on the subclass

    def _serve(self) -> None:
        length = self.headers.get("Content-Length")
        try:
            n = int(length) if length else 0
        except ValueError:
            n = -1
        if n < 0 or n > MAX_BODY_BYTES:
            status, body = 413 if n > 0 else 400, {"error": "bad or too large Content-Length"}
        else:
            raw = self.rfile.read(n) if n else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body = self.api.handle(self.command, self.path, headers, raw)
        payload = b"" if body is None else json.dumps(body, indent=1).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = do_PUT = _serve

    def log_message(self, fmt, *args) -> None:   # no stderr chatter per request
        pass


class ControlServer:
    """`ControlServer(api, port).start()` on 127.0.0.1; `close()` stops it (bounded)."""

    def __init__(self, api: ControlAPI, port: int = 0):
        handler = type("Handler", (_Handler,), {"api": api})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.address = self.httpd.server_address[:2]
        api.port = self.address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True, name="faultdrill-control-api")

    def start(self) -> "ControlServer":
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(3.0)
