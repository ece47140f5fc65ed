"""graders.client: framing, bounded waits and failure classification."""
from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import pytest

from graders.client import (BadReply, ClientTimeout, Connection, ConnectionClosed, encode,
                            http_get, make_request, new_msg_id)

pytestmark = pytest.mark.timeout(30)


class ScriptedServer:
    """Accepts one connection, reads one line, then runs `script(conn, line)`."""

    def __init__(self, script):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.address = self.sock.getsockname()
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._run, args=(script,), daemon=True)
        self.thread.start()

    def _run(self, script):
        self.sock.settimeout(5)
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        conn.settimeout(5)
        with conn:
            buf = b""
            while b"\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                buf += chunk
            self.received.append(buf)
            script(conn, buf)

    def close(self):
        self.sock.close()
        self.thread.join(6)


@pytest.fixture
def server(request):
    servers = []

    def make(script):
        s = ScriptedServer(script)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.close()


def test_make_request_fields():
    f = make_request("submit", {"a": 1}, token="tok", task_id="t-1",
                     traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    assert f["v"] == 1 and f["type"] == "submit" and f["task_id"] == "t-1" and f["token"] == "tok"
    assert 1 <= len(f["msg_id"]) <= 128 and f["payload"] == {"a": 1}
    g = make_request("hello", None, token=None, msg_id="m-1", v=2)
    assert "token" not in g and "task_id" not in g and "traceparent" not in g
    assert g["msg_id"] == "m-1" and g["v"] == 2 and g["payload"] == {}
    assert new_msg_id() != new_msg_id()


def test_encode_is_compact_single_line():
    data = encode({"a": "x\ny", "b": [1, 2], "c": "é"})
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert b" " not in data and json.loads(data) == {"a": "x\ny", "b": [1, 2], "c": "é"}


def test_request_roundtrip_crlf_and_empty_lines(server):
    s = server(lambda c, line: c.sendall(b"\n\r\n" + b'{"type":"hello_ok"}\r\n' + b'{"n":2}\n'))
    with Connection(*s.address) as c:
        assert c.request({"type": "hello"}) == {"type": "hello_ok"}
        assert c.recv() == {"n": 2}
    assert s.received[0] == b'{"type":"hello"}\n'


def test_reply_split_across_packets(server):
    def script(conn, line):
        conn.sendall(b'{"a":')
        time.sleep(0.1)
        conn.sendall(b'1}\n')
    s = server(script)
    with Connection(*s.address) as c:
        assert c.request({}) == {"a": 1}


def test_timeout_is_bounded(server):
    s = server(lambda c, line: time.sleep(2))
    with Connection(*s.address) as c:
        t0 = time.monotonic()
        with pytest.raises(ClientTimeout):
            c.request({}, timeout=0.3)
        assert time.monotonic() - t0 < 1.0


def test_closed_without_reply(server):
    s = server(lambda c, line: c.sendall(b'{"partial":'))
    with Connection(*s.address) as c:
        with pytest.raises(ConnectionClosed) as info:
            c.request({})
        assert info.value.partial == b'{"partial":' and not info.value.reset


def test_reset_is_classified(server):
    import struct

    def script(conn, line):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s = server(script)
    with Connection(*s.address) as c:
        with pytest.raises(ConnectionClosed) as info:
            c.request({})
        assert info.value.reset


@pytest.mark.parametrize("reply, reason", [
    (b"\xff\xfe garbage\n", "not UTF-8"),
    (b"not json\n", "not JSON"),
    (b"[1,2]\n", "not an object"),
    (b"[" * 3000 + b"\n", "nested deeper than 64 levels"),       # graders/decode.py bounds
    (b'{"v": NaN}\n', "NaN is not JSON"),
    (b'{"v": 1e400}\n', "a number too large for a double"),
])
def test_bad_replies(server, reply, reason):
    s = server(lambda c, line: c.sendall(reply))
    with Connection(*s.address) as c:
        with pytest.raises(BadReply) as info:
            c.request({})
        assert info.value.reason == reason and info.value.raw == reply.rstrip(b"\n")


def test_reply_size_is_capped(server):
    s = server(lambda c, line: c.sendall(b"x" * 300_000))
    with Connection(*s.address, max_reply_bytes=100_000) as c:
        with pytest.raises(BadReply) as info:
            c.request({})
        assert "over 100000 bytes" in info.value.reason


def test_wait_closed(server):
    s = server(lambda c, line: c.sendall(b'{"x":1}\n'))
    with Connection(*s.address) as c:
        c.send({})
        assert c.wait_closed(3.0)
    s2 = server(lambda c, line: time.sleep(1.5))
    with Connection(*s2.address) as c:
        c.send({})
        assert not c.wait_closed(0.3)


def test_connect_refused_is_oserror():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(OSError):
        Connection("127.0.0.1", port, timeout=1)


def test_http_get():
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"status":"ok"}' if self.path == "/livez" else b"nope"
            self.send_response(200 if self.path == "/livez" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    th = threading.Thread(target=httpd.serve_forever, daemon=True)
    th.start()
    try:
        status, headers, body = http_get("127.0.0.1", httpd.server_address[1], "/livez")
        assert status == 200 and headers["content-type"] == "application/json"
        assert json.loads(body) == {"status": "ok"}
        assert http_get("127.0.0.1", httpd.server_address[1], "/missing")[0] == 404
    finally:
        httpd.shutdown()
        httpd.server_close()
        th.join(5)
