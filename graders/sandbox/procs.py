"""The processes of one sandbox, found by its PID namespace.

Why by namespace and not by process group or environment: a candidate process can leave
its group (setsid), its session, and scrub its environment, but it can never leave the PID
namespace bwrap put it in. Every process of a sandbox is therefore a process whose
/proc/<pid>/ns/pid link names that namespace's inode; the namespace's init (bwrap's
reaper, pid 1 inside) is known from `bwrap --info-fd`. "Gone" is provable: the init has
been reaped and no process with that inode remains.

Why an open namespace handle (`NamespaceHandle`): once a namespace is freed the kernel may
hand its inode number to the next namespace created (another sandbox, another grade), and
a scan by number would then find, and kill, someone else's processes. Holding
/proc/<init>/ns/pid open keeps the namespace object, and so its number, reserved until
the deployment has proved it empty. Signals go through pidfds checked against the
namespace, so a recycled pid is never signalled either.
"""
from __future__ import annotations

import os
import signal
import time

__all__ = ["NamespaceHandle", "nspids", "child_as_seen_here", "send", "running_in", "pid_ns_inode", "members", "children_of", "signal_members", "kill_namespace",
           "wait_gone"]


def pid_ns_inode(pid: int) -> int | None:
    try:
        link = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None
    try:
        return int(link[link.index("[") + 1:link.index("]")])
    except ValueError:
        return None


class NamespaceHandle:
    """An open reference to one sandbox's PID namespace (see the module docstring)."""

    def __init__(self, init_pid: int, inode: int):
        self.init_pid, self.inode = init_pid, inode
        self.fd: int | None = None
        try:
            fd = os.open(f"/proc/{init_pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return                       # already gone: nothing can be in it any more
        if os.fstat(fd).st_ino != inode:
            os.close(fd)
            return
        self.fd = fd

    @property
    def held(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def send(pid: int, inode: int, sig: int) -> bool:
    """Signal `pid` only if it is (still) a process of namespace `inode`; True if sent.
    A pidfd pins the process between the check and the signal."""
    pidfd = None
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        if pid_ns_inode(pid) != inode:
            return False
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, sig)
        else:
            os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError, OSError):
        return False
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2:][:1].decode()


def running_in(pid: int, inode: int) -> bool:
    """True when `pid` is a live (not zombie) process of namespace `inode`."""
    return _state(pid) not in (None, "Z", "X") and pid_ns_inode(pid) == inode


def host_pids() -> list[int]:
    """Every pid in this namespace's /proc ([] where /proc cannot be read)."""
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def members(inode: int, *, exclude: tuple[int, ...] = ()) -> list[int]:
    """Host pids of live (not zombie) processes in the PID namespace `inode`."""
    found = []
    for pid in host_pids():
        if pid in exclude or pid_ns_inode(pid) != inode:
            continue
        if _state(pid) not in (None, "Z", "X"):
            found.append(pid)
    return found


def nspids(pid: int) -> list[int]:
    """The NSpid line of /proc/<pid>/status: its pid in this /proc's namespace first,
    then in each nested namespace down to its own ([] when gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return []


def child_as_seen_here(parent: int, pid_seen_by_parent: int) -> int | None:
    """The pid, in this /proc's namespace, of the child of `parent` that `parent` itself
    knows as `pid_seen_by_parent` (bwrap reports its sandbox's init in its own PID
    namespace, which is the reaper's, not the grader's). None when no child matches."""
    depth = len(nspids(parent)) - 1
    if depth < 0:
        return None
    for kid in children_of(parent):
        ids = nspids(kid)
        if len(ids) > depth and ids[depth] == pid_seen_by_parent:
            return ids[0]
    return None


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (from /proc/<pid>/task/*/children, else a PPid scan)."""
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(x) for x in f.read().split()]
        return kids
    except OSError:
        pass
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
                if int(stat[stat.rfind(b")") + 2:].split()[1]) == pid:
                    kids.append(int(name))
            except (OSError, ValueError, IndexError):
                continue
    return kids


def signal_members(inode: int, sig: int, *, exclude: tuple[int, ...] = (), passes: int = 3) -> list[int]:
    """Send `sig` to every process of the namespace (except `exclude`); repeated
    `passes` times so a process forked during a pass is reached by the next one (a
    stopped process cannot fork, so SIGSTOP converges). Returns the pids signalled."""
    done: set[int] = set()
    for _ in range(passes):
        fresh = [p for p in members(inode, exclude=exclude) if p not in done]
        if not fresh and done:
            break
        for pid in fresh:
            if send(pid, inode, sig):
                done.add(pid)
    return sorted(done)


def kill_namespace(init_pid: int, inode: int | None) -> None:
    """SIGKILL the namespace's init: the kernel then kills every process in it. Its
    members are also signalled directly, in case the init was already gone."""
    if inode is None:
        return
    send(init_pid, inode, signal.SIGKILL)
    for pid in members(inode):
        send(pid, inode, signal.SIGKILL)


def wait_gone(inode: int, timeout: float) -> list[int]:
    """Wait (bounded) until no process of the namespace is left; the pids still alive."""
    deadline = time.monotonic() + timeout
    while True:
        alive = members(inode)
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.02)
