"""Service ports come from below the kernel's ephemeral range (H12 item g).

Why: a port picked by binding port 0 lies in the ephemeral range, where every outgoing
connection also takes its local port, so a client could grab it before the service binds
it ("Address already in use", seen once). Ports below the range are never taken
implicitly. Fallback: port 0 when the range is unknown or leaves no room.
"""
from __future__ import annotations

import socket

from graders.drivers import process
from graders.drivers.process import PORT_FLOOR, allocate_ports, ephemeral_range, port_range


def _range_file(tmp_path, text: str) -> str:
    p = tmp_path / "ip_local_port_range"
    p.write_text(text)
    return str(p)


def test_ports_are_below_the_ephemeral_range_distinct_and_bindable(tmp_path):
    f = _range_file(tmp_path, "32768\t60999\n")
    assert ephemeral_range(f) == (32768, 60999)
    assert port_range(f) == (PORT_FLOOR, 32767)
    ports = allocate_ports(16, range_file=f)
    assert len(set(ports)) == 16
    assert all(PORT_FLOOR <= p <= 32767 for p in ports), ports
    for p in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))           # free when handed out


def test_the_real_range_of_this_machine_is_respected():
    eph = ephemeral_range()
    ports = allocate_ports(8)
    assert len(set(ports)) == 8
    if eph is not None and port_range() is not None:
        assert all(PORT_FLOOR <= p < eph[0] for p in ports), (eph, ports)


def test_a_port_in_use_is_never_handed_out(tmp_path, monkeypatch):
    f = _range_file(tmp_path, "20100 60999")          # range [20000, 20099]: too small
    assert port_range(f) is None
    monkeypatch.setattr(process, "_MIN_RANGE", 50)    # keep the socket count modest
    assert port_range(f) == (PORT_FLOOR, 20099)
    busy = []
    try:
        for port in range(20000, 20100):              # occupy all but a few ports
            if port % 100 in (7, 42):
                continue
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            busy.append(s)
        taken = {s.getsockname()[1] for s in busy}
        monkeypatch.setattr(process, "_recent_ports", [])
        ports = allocate_ports(5, range_file=f)
        assert not set(ports) & taken
        below = [p for p in ports if p < 20100]
        assert below and all(p % 100 in (7, 42) for p in below), ports
    finally:
        for s in busy:
            s.close()


def test_unknown_or_cramped_range_falls_back_to_the_os(tmp_path):
    for text in ("", "garbage", "1024 65535", "70000 80000"):
        f = _range_file(tmp_path, text)
        assert port_range(f) is None, text
        ports = allocate_ports(4, range_file=f)
        assert len(set(ports)) == 4 and all(0 < p < 65536 for p in ports)
    assert port_range(str(tmp_path / "missing")) is None


def test_a_port_claimed_by_another_grader_process_is_never_handed_out(tmp_path, monkeypatch):
    """Two graders side by side: ports the other process allocated (claimed, not yet bound)
    are skipped; a released claim makes the port available again."""
    import subprocess
    import sys
    if not sys.platform.startswith("linux"):
        return
    f = _range_file(tmp_path, "20100 60999")
    monkeypatch.setattr(process, "_MIN_RANGE", 50)
    script = ("import sys\n"
              "from graders.drivers import process\n"
              "process._MIN_RANGE = 50\n"
              f"ports = process.allocate_ports(90, range_file={f!r})\n"
              "print(' '.join(map(str, ports)), flush=True)\n"
              "sys.stdin.read()\n")
    other = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        theirs = {int(p) for p in other.stdout.readline().split()}
        assert len(theirs) == 90 and all(20000 <= p < 20100 for p in theirs)
        monkeypatch.setattr(process, "_recent_ports", [])
        mine = allocate_ports(5, range_file=f)
        below = {p for p in mine if p < 20100}
        assert not below & theirs, (sorted(below & theirs), mine)
    finally:
        other.stdin.close()
        other.wait(10)
    process.release_ports(mine)
    assert not set(mine) & set(process._port_claims)
