"""Can the sandbox be set up on this machine, in which mode, and if not, why not.

Why a real trial instead of checking for binaries: bubblewrap may be installed and still
refused by the kernel or the container it runs in (no user namespaces, seccomp filters
that forbid mount or unshare, as on some hosted CI and autograder images). The probe runs
one tiny sandboxed Python exactly as a service would run, once per process, and reports
the first thing that failed in one sentence.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

__all__ = ["Probe", "probe", "host_mode", "bwrap_path"]

PROBE_TIMEOUT_S = 10.0
_PROBE_CODE = ("import os, sys; uid = os.getuid();"
               "status = open('/proc/self/status').read();"
               "caps = [l.split()[1] for l in status.splitlines() if l.startswith('CapEff')];"
               "nnp = [l.split()[1] for l in status.splitlines() if l.startswith('NoNewPrivs')];"
               "print(uid, caps[0], nnp[0], os.getpid())")


@dataclass(frozen=True)
class Probe:
    ok: bool
    mode: str            # "root" | "user" | "none"
    reason: str          # why not (empty when ok)
    bwrap: str | None = None

    def as_dict(self) -> dict:
        return {"ok": self.ok, "mode": self.mode, "reason": self.reason}


def host_mode() -> str:
    """"root" when this process is root of the initial user namespace (it can hand the
    candidate a uid of its own), else "user"."""
    if os.geteuid() != 0:
        return "user"
    try:
        with open("/proc/self/uid_map") as f:
            first = f.read().split()
    except OSError:
        return "user"
    return "root" if first[:3] == ["0", "0", "4294967295"] else "user"


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=None)
def probe() -> Probe:
    """Try the sandbox once (cached): a Python in the exact view a service gets, checked
    to run without uid 0, capabilities or the right to gain privileges."""
    from . import layout
    from .policy import SETPRIV, Limits, SandboxSpec, bwrap_argv
    bwrap = bwrap_path()
    if bwrap is None:
        return Probe(False, "none", "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
    mode = host_mode()
    if mode == "root" and not os.path.exists(SETPRIV):
        return Probe(False, "none", f"{SETPRIV} (util-linux) is missing", bwrap)
    with tempfile.TemporaryDirectory(prefix="faultdrill-probe-") as d:
        os.chmod(d, 0o755)
        trees = [b.dest for b in layout.system_binds() if b.kind == "ro-bind"]
        prefix = layout.python_prefix()
        if prefix:
            trees.append(prefix)
        spec = SandboxSpec(mode=mode, uid=65534 if mode == "root" else os.getuid(),
                           gid=65534 if mode == "root" else os.getgid(), submission=d,
                           system=layout.system_binds(), python_prefix=prefix,
                           masks=layout.hidden_masks(trees), limits=Limits())
        from . import seccomp
        filter_fd = None
        if seccomp.supported():
            filter_fd, w = os.pipe()
            os.write(w, seccomp.program())
            os.close(w)
        argv = bwrap_argv(spec, [layout.base_python(), "-I", "-c", _PROBE_CODE], bwrap=bwrap,
                          seccomp_fd=filter_fd)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL,
                                  pass_fds=(filter_fd,) if filter_fd is not None else ())
        except subprocess.TimeoutExpired:
            return Probe(False, "none", f"a sandboxed test process did not finish within {PROBE_TIMEOUT_S:.0f} s", bwrap)
        except OSError as exc:
            return Probe(False, "none", f"bubblewrap could not be run: {exc}", bwrap)
        finally:
            if filter_fd is not None:
                os.close(filter_fd)
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        return Probe(False, "none", f"bubblewrap refused to set up the sandbox here ({err})", bwrap)
    try:
        uid, caps, nnp, pid = proc.stdout.split()
    except ValueError:
        return Probe(False, "none", f"the sandboxed test process printed {proc.stdout!r}", bwrap)
    if mode == "root" and uid == "0":
        return Probe(False, "none", "the sandboxed test process still ran as uid 0", bwrap)
    if int(caps, 16) != 0 or nnp != "1":
        return Probe(False, "none", f"the sandboxed test process kept capabilities {caps} "
                     f"or could gain privileges (NoNewPrivs {nnp})", bwrap)
    if pid != "2":
        return Probe(False, "none", f"the sandboxed test process is not in its own PID namespace (pid {pid})", bwrap)
    return Probe(True, mode, "", bwrap)
