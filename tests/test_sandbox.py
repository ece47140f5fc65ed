"""The candidate sandbox (graders/sandbox): the policy as data, and what a service inside
it can and cannot do, observed from inside with a tiny probe service."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from graders.sandbox import procs
from graders.sandbox.policy import Limits, SandboxSpec, SystemBind, bwrap_argv, masks_within

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[1]

# --- the policy, pure ---------------------------------------------------------------

SYSTEM = (SystemBind("ro-bind", "/usr", "/usr"), SystemBind("ro-bind", "/etc", "/etc"),
          SystemBind("symlink", "usr/bin", "/bin"))


def spec(**kw):
    base = dict(mode="root", uid=2_000_000_123, gid=2_000_000_123, submission="/work/sub",
                system=SYSTEM, python_prefix="/opt/py", masks=("/opt/py/lib/site-packages",),
                writable=("/t/memory/collector", "/t/home"), readonly=("/t/files/collector",))
    base.update(kw)
    return SandboxSpec(**base)


def _pairs(argv, flag):
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def test_root_mode_drops_to_the_uid_with_nothing_left():
    argv = bwrap_argv(spec(), ["python3", "main.py"])
    assert argv[0] == "bwrap" and "--unshare-pid" in argv and "--die-with-parent" in argv
    assert "--unshare-user" not in argv            # a user namespace would map root
    sep = argv.index("--")
    tail = argv[sep + 1:]
    assert tail[:2] == ["/usr/bin/setpriv", "--reuid=2000000123"]
    for flag in ("--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"):
        assert flag in tail
    assert tail[-2:] == ["python3", "main.py"]
    caps = [argv[i + 1] for i, a in enumerate(argv[:sep]) if a == "--cap-add"]
    assert sorted(caps) == ["CAP_SETGID", "CAP_SETUID"] and "--cap-drop" in argv[:sep]


def test_view_is_an_allowlist_in_order():
    argv = bwrap_argv(spec(), ["x"])
    sep = argv.index("--")
    ro = _pairs(argv[:sep], "--ro-bind")
    assert ("/usr", "/usr") in ro and ("/etc", "/etc") in ro and ("/opt/py", "/opt/py") in ro
    assert ("/work/sub", "/work/sub") in ro and ("/t/files/collector", "/t/files/collector") in ro
    rw = _pairs(argv[:sep], "--bind")
    assert sorted(rw) == [("/t/home", "/t/home"), ("/t/memory/collector", "/t/memory/collector")]
    # the mask comes after the tree it hides, the submission after every mask
    assert argv.index("/opt/py/lib/site-packages") > argv.index("/opt/py")
    assert argv.index("--chdir") > argv.index("/work/sub")
    assert argv[argv.index("--chdir") + 1] == "/work/sub"
    assert argv[argv.index("--tmpfs", argv.index("--size")) + 1] == "/tmp"


def test_spec_refuses_uid_zero_and_relative_paths():
    with pytest.raises(ValueError):
        spec(uid=0)
    with pytest.raises(ValueError):
        spec(submission="relative/dir")
    with pytest.raises(ValueError):
        spec(mode="docker")


def test_user_mode_uses_a_user_namespace_without_setpriv():
    argv = bwrap_argv(spec(mode="user", uid=1000, gid=1000), ["x"])
    assert "--unshare-user" in argv and "/usr/bin/setpriv" not in argv
    assert "--cap-add" not in argv


_path = st.lists(st.sampled_from(["a", "b", "usr", "lib", "site-packages", "kit"]), min_size=1,
                 max_size=4).map(lambda parts: "/" + "/".join(parts))


@given(st.lists(_path, max_size=4), st.lists(_path, max_size=6))
def test_masks_are_exactly_the_hidden_paths_inside_bound_trees(trees, hidden):
    masks = masks_within(trees, hidden)
    inside = lambda p, t: p == t or p.startswith(t + "/")
    for m in masks:
        assert m in hidden and any(inside(m, t) for t in trees)
    for h in hidden:       # every hidden path inside a bound tree is covered by some mask
        if any(inside(h, t) for t in trees):
            assert any(inside(h, m) for m in masks)
    assert len(set(masks)) == len(masks)


@given(st.lists(_path, min_size=1, max_size=3, unique=True))
def test_every_mount_point_parent_is_traversable(writable):
    argv = bwrap_argv(spec(writable=tuple(writable), masks=()), ["x"])
    made = {argv[i + 1] for i, a in enumerate(argv) if a == "--dir"}
    for path in writable:
        parent = str(Path(path).parent)
        host_trees = ("/usr", "/etc", "/opt/py", *[w for w in writable if w != path])
        if parent != "/" and not any(parent == t or parent.startswith(t + "/") for t in host_trees):
            assert parent in made


# --- live: a service inside the sandbox -----------------------------------------------

sandbox_ok = pytest.mark.skipif(not __import__("graders.sandbox", fromlist=["probe"]).probe().ok,
                                reason="the sandbox cannot be set up on this machine")

PROBE_SERVICE = textwrap.dedent('''
    import json, os, socket, sys, time, http.server, socketserver, threading
    out = {}
    def attempt(name, fn):
        try:
            out[name] = ["ok", fn()]
        except Exception as exc:
            out[name] = ["denied", type(exc).__name__]
    attempt("shadow", lambda: open("/etc/shadow").read(10))
    attempt("import_graders", lambda: __import__("graders").__file__)
    attempt("import_reference", lambda: __import__("reference_impl").__file__)
    attempt("write_submission", lambda: open("written.txt", "w").write("x"))
    attempt("write_usr", lambda: open("/usr/faultdrill-test", "w").write("x"))
    attempt("kit_listing", lambda: os.listdir(os.environ["KIT_DIR"]) if "KIT_DIR" in os.environ else os.listdir(%(kit)r))
    attempt("tmp", lambda: open("/tmp/own.txt", "w").write("x"))
    attempt("memory", lambda: open(os.path.join(os.environ["FD_MEMORY_DIR"], "m.txt"), "w").write("x"))
    import subprocess
    def userns():
        if subprocess.run(["unshare", "--user", "--map-root-user", "true"], capture_output=True).returncode:
            raise PermissionError("unshare refused")
        return "created"
    attempt("userns", userns)
    out["uid"] = os.getuid()
    status = open("/proc/self/status").read()
    out["capeff"] = [l.split()[1] for l in status.splitlines() if l.startswith("CapEff")][0]
    out["nnp"] = [l.split()[1] for l in status.splitlines() if l.startswith("NoNewPrivs")][0]
    out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    out["grader_pid_visible"] = os.path.exists("/proc/%%d/cmdline" %% %(grader)d) and \\
        "pytest" in open("/proc/%%d/cmdline" %% %(grader)d).read()
    if os.fork() == 0:                       # a double-forked setsid daemon
        os.setsid()
        if os.fork() == 0:
            import signal
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(3600)
        os._exit(0)
    os.wait()
    with open(os.path.join(os.environ["FD_MEMORY_DIR"], "probe.json"), "w") as f:
        json.dump(out, f)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *a): pass
    host = os.environ["FD_LISTEN_HOST"]
    tcp = socketserver.TCPServer((host, int(os.environ["FD_LISTEN_PORT"])), socketserver.StreamRequestHandler)
    web = http.server.HTTPServer((host, int(os.environ["FD_HTTP_PORT"])), H)
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    import signal
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    web.serve_forever()
''')


def _probe_submission(tmp_path: Path) -> Path:
    sub = tmp_path / "probe-sub"
    sub.mkdir()
    (sub / "service.py").write_text(PROBE_SERVICE % {"kit": str(ROOT / "graders"), "grader": os.getpid()})
    (sub / "faultdrill.toml").write_text('[submission]\nname = "sandbox probe"\nspec_version = 1\n' + "".join(
        f'[services.{r}]\ncommand = ["{{python}}", "service.py"]\n'
        for r in ("orchestrator", "collector", "analyzer", "reporter")))
    os.chmod(tmp_path, 0o755)
    os.chmod(sub, 0o755)
    return sub


def _deploy(sub):
    from graders.drivers.process import ProcessDriver
    from graders.manifest import ROLES, load_manifest
    return ProcessDriver(sandbox=True).deploy(load_manifest(sub), base_env={r: {"FD_TOKEN": "t"} for r in ROLES})


@sandbox_ok
def test_inside_the_sandbox(tmp_path):
    sub = _probe_submission(tmp_path)
    d = _deploy(sub)
    try:
        d.start("collector")
        seen = json.loads(d.read_memory("collector", "probe.json"))
        init = d.services["collector"].init_pid
        inode = d.services["collector"].ns_inode
        members = procs.members(inode)
        assert len(members) >= 3, members          # init, the service, the escaped daemon
    finally:
        report = d.close()
    for name in ("shadow", "import_graders", "import_reference", "write_submission", "write_usr",
                 "kit_listing", "userns"):
        assert seen[name][0] == "denied", (name, seen[name])
    assert seen["tmp"][0] == "ok" and seen["memory"][0] == "ok"
    assert seen["uid"] != 0 and int(seen["capeff"], 16) == 0 and seen["nnp"] == "1"
    assert seen["pids"][:2] == [1, 2] and not seen["grader_pid_visible"]
    assert not (sub / "written.txt").exists()
    # the daemon that escaped its session died with the sandbox, and close proved it
    assert report.ok and report.proven_gone is True, report
    assert procs.members(inode) == [] and not procs.running_in(init, inode)


@sandbox_ok
def test_two_deployments_cannot_see_each_other(tmp_path):
    sub = _probe_submission(tmp_path)
    a, b = _deploy(sub), _deploy(sub)
    try:
        a.start("collector")
        b.start("collector")
        seen_a = json.loads(a.read_memory("collector", "probe.json"))
        ns_a, ns_b = a.services["collector"].ns_inode, b.services["collector"].ns_inode
        assert ns_a != ns_b and a.uid != b.uid
        host_b = set(procs.members(ns_b))
        assert max(seen_a["pids"]) < 10           # only its own few processes, never b's or ours
        a.pause("collector")          # SIGSTOP reaches a's processes, never b's
        states_b = [Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] for p in host_b]
        assert "T" not in states_b
        a.resume("collector")
    finally:
        ra, rb = a.close(), b.close()
    assert ra.proven_gone and rb.proven_gone


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for unshare --net")
def test_grade_namespace_hides_ports_opened_outside():
    outside = socket.socket()
    outside.bind(("127.0.0.1", 0))
    outside.listen()
    port = outside.getsockname()[1]
    code = textwrap.dedent(f"""
        import socket, sys
        from graders.sandbox import netns
        netns._lo_up()
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", {port}))
            print("reached")
        except OSError as exc:
            print("refused", type(exc).__name__)
        t = socket.socket(); t.bind(("127.0.0.1", 0)); t.listen(); print("loopback-ok")
    """)
    proc = subprocess.run(netns_argv() + [sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, cwd=str(ROOT))
    outside.close()
    assert proc.returncode == 0, proc.stderr
    assert "refused" in proc.stdout and "loopback-ok" in proc.stdout, proc.stdout


def netns_argv():
    from graders.sandbox.netns import unshare_argv
    from graders.sandbox.probe import host_mode
    return unshare_argv(host_mode()) + ["--"]


@sandbox_ok
def test_probe_reports_a_mode():
    from graders.sandbox import probe
    found = probe()
    assert found.ok and found.mode in ("root", "user") and found.reason == ""


@sandbox_ok
def test_service_outlives_the_thread_that_started_it(tmp_path):
    """bwrap's --die-with-parent follows the starting *thread*; checks start services on
    short-lived threads, so the driver must spawn sandboxes from a thread of its own."""
    import threading
    d = _deploy(_probe_submission(tmp_path))
    try:
        t = threading.Thread(target=lambda: d.start("collector"))
        t.start()
        t.join(30)
        time.sleep(0.3)
        assert d.running("collector")
    finally:
        assert d.close().proven_gone


@pytest.mark.parametrize("image_user, expected", [
    ("", "65534:65534"), (None, "65534:65534"), ("root", "65534:65534"), ("0", "65534:65534"),
    ("0:0", "65534:65534"), ("root:staff", "65534:65534"), ("app", None), ("10001:10001", None)])
def test_docker_never_runs_an_image_as_root(image_user, expected):
    from graders.drivers.docker import forced_user
    assert forced_user(image_user) == expected


@sandbox_ok
@pytest.mark.skipif(os.geteuid() != 0, reason="root mode only (user mode runs as the owner)")
def test_a_folder_only_its_owner_can_read_is_still_served(tmp_path):
    """A submission unpacked with umask 077 must not fail because the candidate's uid
    cannot read it: the sandbox binds a readable copy at the same path."""
    sub = _probe_submission(tmp_path)
    os.chmod(sub, 0o700)
    os.chmod(sub / "service.py", 0o600)
    d = _deploy(sub)
    try:
        d.start("collector")
        assert d.running("collector")
        assert json.loads(d.read_memory("collector", "probe.json"))["write_submission"][0] == "denied"
    finally:
        assert d.close().proven_gone


def test_grade_refuses_without_a_sandbox(tmp_path):
    """No bubblewrap on PATH: one line saying why and what to do, exit 3, nothing written."""
    env = dict(os.environ, PATH=str(tmp_path / "empty-bin"), PYTHONPATH=str(ROOT))
    env.pop("FAULTDRILL_SANDBOX", None)
    proc = subprocess.run([sys.executable, "-m", "graders.cli", "grade", str(ROOT / "reference_impl"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=60, cwd=str(ROOT), env=env)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bubblewrap" in lines[0] and "--unsafe-no-sandbox" in lines[0]
    assert not (tmp_path / "out").exists()


USER_MODE_SCRIPT = textwrap.dedent('''
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from graders.client import Connection, make_request
    from graders.drivers.process import ProcessDriver
    from graders.manifest import ROLES, load_manifest
    from graders.sandbox import probe
    d = ProcessDriver(sandbox=True).deploy(load_manifest(sys.argv[2]),
                                          base_env={r: {"FD_TOKEN": "t"} for r in ROLES})
    d.start("collector")
    seen = json.loads(d.read_memory("collector", "probe.json"))
    d.pause("collector"); d.resume("collector")
    rc = d.stop("collector")
    report = d.close()
    print(json.dumps({"mode": probe().mode, "seen": seen, "rc": rc, "gone": report.proven_gone}))
''')


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/python3").exists(),
                    reason="needs root to become an ordinary user, and a system Python")
def test_user_mode_as_an_ordinary_user(tmp_path):
    """The interviewer's laptop: the grader is not root. The sandbox falls back to a user
    namespace, with the same view and PID namespace, and still proves its processes gone."""
    import shutil
    import tempfile
    place = Path(tempfile.mkdtemp(prefix="fd-user-mode-"))   # pytest's tmp is 0700 root
    try:
        os.chmod(place, 0o755)
        sub = _probe_submission(place)
        script = place / "user_mode.py"
        script.write_text(USER_MODE_SCRIPT)
        os.chmod(script, 0o644)
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                               "env", "HOME=/tmp", "/usr/bin/python3", str(script), str(ROOT), str(sub)],
                              capture_output=True, text=True, timeout=90, cwd="/")
    finally:
        shutil.rmtree(place, ignore_errors=True)
    if proc.returncode != 0 and "cannot" in proc.stderr and "namespace" in proc.stderr:
        pytest.skip(f"unprivileged user namespaces are refused here: {proc.stderr[-200:]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["mode"] == "user" and out["rc"] == 0 and out["gone"] is True
    seen = out["seen"]
    for name in ("shadow", "import_graders", "import_reference", "write_submission", "kit_listing"):
        assert seen[name][0] == "denied", (name, seen[name])
    assert seen["pids"][:2] == [1, 2] and int(seen["capeff"], 16) == 0 and seen["nnp"] == "1"


def test_no_report_while_a_candidate_process_survives(tmp_path, monkeypatch, capsys):
    """Reports are written only after every candidate process is provably gone: a driver
    whose close reports a survivor makes the grade incomplete (exit 3) with no report."""
    from graders import cli
    from graders.commands import grade as grade_cmd
    from graders.drivers.process import ProcessDriver

    class SurvivorDriver(ProcessDriver):
        def close(self):
            report = super().close()
            report.survivors.append(999999)
            report.proven_gone = False
            return report

    monkeypatch.setattr(grade_cmd, "get_driver", lambda name, sandbox=None: SurvivorDriver(sandbox=sandbox))
    out = tmp_path / "out"
    rc = cli.main(["grade", str(ROOT / "reference_impl"), "--only", "api.status_list", "--seed", "3",
                   "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 3 and "INCOMPLETE" in err and "999999" in err
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name in
               ("results.json", "report.md", "report.html", "junit.xml")]
    assert written == []


@sandbox_ok
def test_deployment_cgroup_holds_every_process_and_goes_away(tmp_path):
    d = _deploy(_probe_submission(tmp_path))
    if d.cgroup is None:
        d.close()
        pytest.skip("no cgroup can be created here (not root, or no memory/pids controllers)")
    try:
        d.start("collector")
        in_ns = set(procs.members(d.services["collector"].ns_inode))
        assert in_ns and in_ns <= set(d.cgroup.members())    # the escaped daemon too
        assert d.sandbox_description()["limits"]["memory_bytes"] == d.cgroup.memory_bytes
    finally:
        report = d.close()
    assert report.proven_gone and not any(os.path.exists(p) for p in d.cgroup.dirs)


def test_stale_empty_cgroups_are_swept_and_fresh_ones_kept(tmp_path, monkeypatch):
    from graders.sandbox import cgroups
    monkeypatch.setattr(cgroups, "ROOT", str(tmp_path))
    old, new = tmp_path / (cgroups.PREFIX + "old"), tmp_path / (cgroups.PREFIX + "new")
    old.mkdir()
    new.mkdir()
    (tmp_path / "other").mkdir()
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert cgroups.sweep() == [str(old)]
    assert new.exists() and (tmp_path / "other").exists()


NET_PROBE_SERVICE = textwrap.dedent('''
    import http.server, os, socket, sys, threading
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", %(port)d))
        print("OUTSIDE-PORT reached", file=sys.stderr, flush=True)
    except OSError as exc:
        print("OUTSIDE-PORT refused", type(exc).__name__, file=sys.stderr, flush=True)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *a): pass
    host = os.environ["FD_LISTEN_HOST"]
    tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((host, int(os.environ["FD_LISTEN_PORT"]))); tcp.listen()
    threading.Thread(target=lambda: [tcp.accept() for _ in iter(int, 1)], daemon=True).start()
    http.server.HTTPServer((host, int(os.environ["FD_HTTP_PORT"])), H).serve_forever()
''')


@sandbox_ok
@pytest.mark.skipif(os.geteuid() != 0, reason="the root path of the grade namespace")
def test_check_command_runs_in_its_own_network_namespace(tmp_path):
    """End to end: `faultdrill check` re-execs itself into a network namespace of its own,
    so a service cannot reach a port open on the host's loopback."""
    outside = socket.socket()
    outside.bind(("127.0.0.1", 0))
    outside.listen()
    port = outside.getsockname()[1]
    sub = tmp_path / "net-probe"
    sub.mkdir()
    (sub / "service.py").write_text(NET_PROBE_SERVICE % {"port": port})
    (sub / "faultdrill.toml").write_text('[submission]\nname = "net probe"\nspec_version = 1\n' + "".join(
        f'[services.{r}]\ncommand = ["{{python}}", "service.py"]\n'
        for r in ("orchestrator", "collector", "analyzer", "reporter")))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("FAULTDRILL_SANDBOX", None)
    try:
        proc = subprocess.run([sys.executable, "-m", "graders.cli", "check", str(sub), "--challenge",
                               "pipeline-basics", "--seed", "1"], capture_output=True, text=True,
                              timeout=120, cwd=str(ROOT), env=env)
    finally:
        outside.close()
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "OUTSIDE-PORT refused" in proc.stdout and "OUTSIDE-PORT reached" not in proc.stdout


def _run_bpf(prog: bytes, nr: int, arch: int, arg0: int = 0) -> int:
    """A tiny classic-BPF interpreter for the instructions the filter uses."""
    import struct
    data = struct.pack("=iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    ins = [struct.unpack("=HBBI", prog[i:i + 8]) for i in range(0, len(prog), 8)]
    pc, acc = 0, 0
    for _ in range(len(ins) + 1):
        code, jt, jf, k = ins[pc]
        if code == 0x20:
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif code == 0x06:
            return k
        else:
            cond = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += 1 + (jt if cond else jf)
    raise AssertionError("the filter did not return")


@pytest.mark.parametrize("nr, arch, arg0, verdict", [
    (272, 0xC000003E, 0x10000000, "eperm"),     # unshare(CLONE_NEWUSER)
    (272, 0xC000003E, 0x00020000, "allow"),     # unshare(CLONE_NEWNS): nothing it can do
    (56, 0xC000003E, 0x10000011, "eperm"),      # clone with CLONE_NEWUSER
    (56, 0xC000003E, 0x003D0F00, "allow"),      # clone for a thread
    (435, 0xC000003E, 0, "enosys"),             # clone3: libc falls back to clone
    (0x40000000 + 272, 0xC000003E, 0x10000000, "eperm"),   # the x32 ABI
    (310, 0x40000003, 0x10000000, "eperm"),     # i386 unshare
    (120, 0x40000003, 0x00000011, "allow"),     # i386 clone without it
    (0, 0xC000003E, 0, "allow"),                # read
    (272, 0xC00000B7, 0x10000000, "allow"),     # another architecture: no filter here
])
def test_seccomp_filter_refuses_only_new_user_namespaces(nr, arch, arg0, verdict):
    from graders.sandbox import seccomp
    expect = {"allow": seccomp.RET_ALLOW, "eperm": seccomp.RET_ERRNO | seccomp.EPERM,
              "enosys": seccomp.RET_ERRNO | seccomp.ENOSYS}[verdict]
    assert _run_bpf(seccomp.program(), nr, arch, arg0) == expect


SPAWN_FOREVER = textwrap.dedent('''
    import subprocess, sys
    sys.path.insert(0, sys.argv[1])
    from graders.drivers.process import _spawner
    argv = ["bwrap", "--unshare-pid", "--die-with-parent", "--new-session", "--dev-bind", "/", "/",
            "sleep", sys.argv[2]]
    spawn = lambda: subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
    _spawner.run(spawn)
    print(_spawner.describe(), flush=True)
    while True:
        _spawner.run(spawn)
''')


def _as_ordinary_user_in_a_user_namespace() -> list[str]:
    """The prefix that runs a command as an interviewer without root would run a grade:
    uid 65534, inside `unshare --user --map-root-user --net --mount` (graders/sandbox/netns)."""
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "env", "HOME=/tmp",
            "unshare", "--user", "--map-root-user", "--net", "--mount", "--propagation", "private"]


@sandbox_ok
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (and, for 'user', root to become an ordinary user)")
@pytest.mark.parametrize("mode", ["root", "user"])
def test_a_grader_killed_while_it_starts_sandboxes_leaves_none(tmp_path, mode):
    """bwrap sets its parent-death signal milliseconds after it was forked; a grader
    SIGKILLed in that window used to leave the sandbox running. Kill a process that does
    nothing but start sandboxes, at seeded moments, many times: none may survive it,
    because they all live in its PID namespace, whose reaper exits with it. As root, and
    as an ordinary user inside the user namespace a grade enters."""
    import random
    import tempfile
    seed = 20261201
    rng = random.Random(seed)
    if mode == "user":
        if not Path("/usr/bin/python3").exists():
            pytest.skip("needs a system Python an ordinary user can run")
        place = Path(tempfile.mkdtemp(prefix="fd-reaper-"))   # pytest's tmp is 0700 root
        os.chmod(place, 0o755)
        prefix, python = _as_ordinary_user_in_a_user_namespace(), "/usr/bin/python3"
    else:
        place, prefix, python = tmp_path, [], sys.executable
    script = place / "spawn_forever.py"
    script.write_text(SPAWN_FOREVER)
    os.chmod(script, 0o644)
    mark = f"3599.{os.getpid()}{rng.randrange(10 ** 6):06d}"     # a unique `sleep` argument
    survivors: list[int] = []
    for _ in range(25):
        proc = subprocess.Popen([*prefix, python, str(script), str(ROOT), mark], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, cwd="/")
        said = proc.stdout.readline().strip()
        time.sleep(rng.uniform(0.0, 0.03))
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
        assert "killed with the grader" in said, said
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            survivors = [int(p) for p in os.listdir("/proc") if p.isdigit()
                         and mark.encode() in _cmdline(int(p))]
            if not survivors:
                break
            time.sleep(0.05)
        for pid in survivors:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        assert not survivors, f"seed {seed}: sandboxes outlived the process that started them: {survivors}"
    if mode == "user":
        import shutil
        shutil.rmtree(place, ignore_errors=True)


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""
