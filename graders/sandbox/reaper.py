"""The grader's own PID namespace for every sandbox it starts, held open by a reaper.

Why: bwrap's --die-with-parent is PR_SET_PDEATHSIG, set by bwrap itself a few
milliseconds after it was forked (the outer bwrap sets it after clone(), the sandbox's
init only after its mounts). A grader SIGKILLed inside that window leaves a whole
sandbox running: an orphaned bwrap whose candidate service lives on with no parent to
kill it (seen on CI: one grade in ~10 killed at start-up left one). A parent-death
signal cannot close the window; a PID namespace can: when its init dies, the kernel
kills every process in it and in every namespace nested in it, atomically.

How: the thread that forks every sandbox (the process driver's spawner) calls
unshare(CLONE_NEWPID | CLONE_NEWNS) for itself alone; the grader's other threads and
its own pid stay where they were (a thread group cannot span PID namespaces, which is
why the whole grader cannot simply move). The spawner's first child becomes pid 1 of the
new namespace: the *reaper*, a few lines of Python that mount this namespace's /proc
(bwrap reads /proc/<child> by the pid it sees), reap orphans, ignore every catchable
signal, and exit when the read end of a pipe, whose only write end the grader holds,
reports EOF: that is, when the grader process is gone, however it died. Every bwrap is
then forked inside that namespace, so the grader's death kills all of them.

Where unshare is refused (an ordinary user outside a user namespace), `enter` returns
why and the sandboxes are started as before (parent-death signals only).
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys

__all__ = ["Reaper", "Unusable", "enter", "REAPER_SOURCE"]

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
READY_TIMEOUT_S = 10.0

#: The reaper's whole program (run with -I -S: no site, no user paths). It writes one
#: byte on stdout: b"1" when its /proc is mounted, b"0" when it could not be.
REAPER_SOURCE = r'''
import ctypes, os, select, signal
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGQUIT,
          signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
    signal.signal(s, signal.SIG_IGN)
libc = ctypes.CDLL(None, use_errno=True)
ok = libc.mount(b"proc", b"/proc", b"proc", 2 | 4 | 8, None) == 0
os.write(1, b"1" if ok else b"0")
os.close(1)
while True:
    readable, _, _ = select.select([0], [], [], 1.0)
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    if readable and not os.read(0, 64):
        os._exit(0)
'''


class Reaper:
    """The running reaper of this process's sandbox namespace."""

    def __init__(self, proc: subprocess.Popen, lifeline: int):
        self.proc = proc
        self._lifeline = lifeline        # the write end: closed only when the grader exits

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def describe(self) -> str:
        return "every sandbox in the grader's own PID namespace (killed with the grader)"


def _libc():
    return ctypes.CDLL(None, use_errno=True)


class Unusable(RuntimeError):
    """unshare succeeded but the reaper did not start: this thread's next child would
    become the namespace's init, so the thread must not fork anything any more."""


def enter() -> tuple[Reaper | None, str | None]:
    """On the calling thread only: move this thread's future children into a new PID
    namespace (and this thread into a private mount namespace) and start its reaper.
    Returns (reaper, None), or (None, why not) when unshare was refused (nothing
    changed). Raises Unusable (with why) when the namespace was made but its reaper
    could not be started: the caller must retire this thread."""
    libc = _libc()
    if libc.unshare(CLONE_NEWNS | CLONE_NEWPID) != 0:
        return None, f"unshare(CLONE_NEWPID) refused: {os.strerror(ctypes.get_errno())}"
    # The copied mount tree must not share events with the one it came from: the reaper
    # mounts a /proc here that must never appear in the grader's (or the host's) tree.
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise Unusable(f"cannot make the spawner's mounts private: {os.strerror(ctypes.get_errno())}")
    life_r, life_w = os.pipe()
    ready_r, ready_w = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", REAPER_SOURCE],
                                stdin=life_r, stdout=ready_w, stderr=subprocess.DEVNULL,
                                start_new_session=True, close_fds=True, env={"PATH": "/usr/bin:/bin"})
    except OSError as exc:
        for fd in (life_r, life_w, ready_r, ready_w):
            os.close(fd)
        raise Unusable(f"cannot start the reaper: {exc}") from None
    os.close(life_r)
    os.close(ready_w)
    try:
        import select
        ready, _, _ = select.select([ready_r], [], [], READY_TIMEOUT_S)
        answer = os.read(ready_r, 1) if ready else b""
    finally:
        os.close(ready_r)
    if answer != b"1":
        os.close(life_w)                 # the reaper exits, and the namespace with it
        proc.wait(5)
        raise Unusable("the reaper could not mount its namespace's /proc")
    return Reaper(proc, life_w), None
