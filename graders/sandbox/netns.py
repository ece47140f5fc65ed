"""The grader's own network and mount namespace, entered once at the start of a grade.

Why: services of one grade must never see another grade's ports (or squat them), and a
grader killed with SIGKILL must leave no temporary directories behind. `enter()` re-execs
the running `faultdrill grade|check` command, with the same pid, through util-linux
`unshare` into a new network namespace (only loopback, brought up here) and a new mount
namespace whose propagation is private; inside it a fresh tmpfs is mounted on
`/dev/shm` and becomes TMPDIR, so every temporary file of the grade (memory dirs, homes,
TLS material) lives on a mount that only this grade sees and that the kernel drops with
the namespace. The fault proxies and the grader's clients live in the same namespace.

As root: `unshare --net --mount`. As an ordinary user: `unshare --user --map-root-user
--net --mount` (root inside a user namespace of its own, mapped to the interviewer's uid;
the services then get a nested user namespace from bwrap, see `policy`).
"""
from __future__ import annotations

import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys

from .probe import host_mode

__all__ = ["MARK", "inside", "enter", "setup_inside", "NamespaceUnavailable", "unshare_argv",
           "TMP_MOUNT", "TMP_BYTES"]

MARK = "FAULTDRILL_GRADE_NS"
TMP_MOUNT = "/dev/shm"
TMP_BYTES = 2 * 1024 ** 3
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


class NamespaceUnavailable(RuntimeError):
    """The grade's own namespaces cannot be created here; the message says why."""


def inside() -> bool:
    return os.environ.get(MARK) == str(os.getpid())


def unshare_argv(mode: str) -> list[str]:
    base = ["unshare"]
    if mode != "root":
        base += ["--user", "--map-root-user"]
    return base + ["--net", "--mount", "--propagation", "private"]


def _trial(mode: str) -> str | None:
    """None when `unshare` works here, else why not (one sentence)."""
    if shutil.which("unshare") is None:
        return "util-linux unshare is not installed"
    try:
        proc = subprocess.run(unshare_argv(mode) + ["true"], capture_output=True, text=True,
                              timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unshare could not be run: {exc}"
    if proc.returncode != 0:
        return "cannot create a network namespace for the grade (" + \
               (proc.stderr.strip().splitlines() or ["no message"])[-1] + ")"
    return None


def enter(command_argv: list[str]) -> None:
    """Re-exec `command_argv` (the arguments after `faultdrill`) inside new namespaces;
    returns only when already inside. Raises NamespaceUnavailable (before exec'ing
    anything) when the namespaces cannot be created."""
    if inside():
        return
    mode = host_mode()
    why = _trial(mode)
    if why:
        raise NamespaceUnavailable(why)
    argv = unshare_argv(mode) + ["--", sys.executable, "-m", "graders.cli", *command_argv]
    env = dict(os.environ, **{MARK: str(os.getpid())})
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(argv[0], argv, env)


def _lo_up() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    finally:
        s.close()


def setup_inside() -> dict:
    """Inside the new namespaces: loopback up, a private tmpfs as TMPDIR. Returns what
    was set up (for the grade metadata)."""
    _lo_up()
    done = {"network": "private (loopback only)", "tmp": None}
    if os.path.isdir(TMP_MOUNT):
        rc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMP_BYTES},mode=0700,nosuid,nodev",
                             "faultdrill-grade", TMP_MOUNT], capture_output=True, timeout=10).returncode
        if rc == 0:
            os.environ["TMPDIR"] = TMP_MOUNT
            import tempfile
            tempfile.tempdir = None
            done["tmp"] = f"private tmpfs at {TMP_MOUNT}"
    return done
