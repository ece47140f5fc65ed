"""The sandbox of one candidate service as data (`SandboxSpec`) and as a bwrap argv.

Why pure: what a candidate can see and do is decided here and nowhere else, so it must be
readable and testable without starting anything. `bwrap_argv(spec, command)` turns a spec
into the exact command line; the process driver only runs it. The host facts a spec needs
(which system directories exist, where the base Python lives, where the kit is) are
gathered by `graders.sandbox.layout`; the uid by `graders.sandbox.uids`.

The view is an allowlist. bubblewrap starts from an empty root and applies its
operations in order, so the order below matters:

1. system trees read-only (`/usr`, `/etc`, the merged-usr symlinks or directories);
2. the base Python's prefix read-only, when it is not under a system tree;
3. masks: an empty tmpfs over every directory that must stay invisible although it lies
   inside a tree bound in 1-2 (site-packages, where an installed or editable kit lives;
   the kit's checkout when it lies inside a system tree);
4. `/proc` (of the service's own PID namespace), `/dev` (a minimal one), a private `/tmp`;
5. the submission read-only (also its cwd), after the masks so that a submission inside
   a masked tree is still visible; then masks over kit paths inside the submission (a
   submission folder that contains a checkout of the kit);
6. the service's own directories: memory and home writable, files (TLS material)
   read-only.

Modes:
- ``root`` (the grader is real root): bwrap runs privileged (no user namespace, which
  would map the candidate to root), keeps only CAP_SETUID/CAP_SETGID for `setpriv`, which
  then switches to the deployment's own unprivileged uid, clears groups, empties every
  capability set and sets no_new_privs before exec'ing the service.
- ``user`` (the grader is an ordinary user): bwrap creates a user namespace
  (`--unshare-user`) and maps the candidate to an unprivileged id inside it; no
  capabilities, no_new_privs (bwrap always sets it). On the host the service runs as the
  interviewer's uid; the view, PID namespace and limits are the same.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

__all__ = ["SandboxSpec", "Limits", "SystemBind", "bwrap_argv", "masks_within", "describe",
           "MODES", "SETPRIV", "ENV"]

MODES = ("root", "user")
SETPRIV = "/usr/bin/setpriv"
ENV = "/usr/bin/env"
#: The in-sandbox uid/gid of a ``user``-mode candidate (inside its own user namespace).
USER_MODE_ID = 1000


@dataclass(frozen=True)
class SystemBind:
    """One entry of the read-only system view: ``kind`` is "ro-bind" (``src`` bound at
    ``dest``) or "symlink" (``dest`` is a symlink to ``src``, e.g. /bin -> usr/bin)."""
    kind: str
    src: str
    dest: str


@dataclass(frozen=True)
class Limits:
    """Resource bounds of one service. rlimits are per process except ``processes``
    (RLIMIT_NPROC counts every process and thread of the uid, i.e. of the deployment
    in ``root`` mode, where each deployment has its own uid)."""
    cpu_seconds: int = 900
    address_space_bytes: int = 2 * 1024 ** 3
    open_files: int = 1024
    file_size_bytes: int = 256 * 1024 ** 2
    processes: int | None = 1024          # None: not set (``user`` mode shares the uid)
    tmp_bytes: int = 256 * 1024 ** 2      # the private /tmp

    def as_dict(self) -> dict:
        return {"cpu_seconds": self.cpu_seconds, "address_space_bytes": self.address_space_bytes,
                "open_files": self.open_files, "file_size_bytes": self.file_size_bytes,
                "processes": self.processes, "tmp_bytes": self.tmp_bytes}


@dataclass(frozen=True)
class SandboxSpec:
    mode: str                                  # "root" | "user"
    uid: int                                   # host uid the service runs as (root mode)
    gid: int
    submission: str                            # read-only, the cwd
    system: tuple[SystemBind, ...]
    python_prefix: str | None = None           # bound read-only when not None
    masks: tuple[str, ...] = ()                # empty tmpfs over each
    submission_masks: tuple[str, ...] = ()     # same, applied after the submission bind
    writable: tuple[str, ...] = ()             # memory dir, home
    readonly: tuple[str, ...] = ()             # files dir
    limits: Limits = field(default_factory=Limits)
    hostname: str = "faultdrill"
    #: What is bound at `submission` (default: itself): a readable copy when the
    #: candidate's uid could not read the original (root mode, a 0700 folder).
    submission_src: str | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"sandbox mode must be one of {MODES}, not {self.mode!r}")
        if self.mode == "root" and self.uid == 0:
            raise ValueError("a root-mode sandbox never runs the candidate as uid 0")
        for path in (self.submission, *self.masks, *self.submission_masks, *self.writable, *self.readonly,
                     *([self.python_prefix] if self.python_prefix else [])):
            if not PurePosixPath(path).is_absolute():
                raise ValueError(f"sandbox paths must be absolute: {path!r}")


def _inside(path: str, tree: str) -> bool:
    p, t = PurePosixPath(path), PurePosixPath(tree)
    return p == t or t in p.parents


def masks_within(bound_trees, hidden) -> tuple[str, ...]:
    """The paths of `hidden` that lie inside one of `bound_trees` (only those need a
    mask: anything else is simply never bound), without duplicates, parents first."""
    out: list[str] = []
    for path in sorted({str(PurePosixPath(h)) for h in hidden}, key=lambda p: (p.count("/"), p)):
        if any(_inside(path, t) for t in bound_trees) and not any(_inside(path, m) for m in out):
            out.append(path)
    return tuple(out)


class _Dirs:
    """Creates the parent directories of mount points with mode 0755 (bwrap would make
    them 0700 and root-owned, which an unprivileged candidate cannot traverse). Parents
    inside a tree bound from the host exist already and are left alone; so is every
    mount point itself (a chmod there would change the mount, e.g. /tmp's 1777)."""

    def __init__(self):
        self.binds: list[str] = []
        self.points: set[str] = {"/"}

    def _parents(self, dest: str) -> list[str]:
        out: list[str] = []
        for parent in reversed(PurePosixPath(dest).parents):
            p = str(parent)
            if p in self.points or any(_inside(p, b) for b in self.binds):
                continue
            self.points.add(p)
            out += ["--perms", "0755", "--dir", p]
        return out

    def mount(self, op: str, dest: str, src: str | None = None) -> list[str]:
        ops = self._parents(dest) + ([op, src, dest] if src is not None else [op, dest])
        self.points.add(dest)
        if src is not None:
            self.binds.append(dest)
        return ops


def bwrap_argv(spec: SandboxSpec, command: list[str], *, bwrap: str = "bwrap",
               info_fd: int | None = None, seccomp_fd: int | None = None) -> list[str]:
    """The full argv that runs `command` inside the sandbox described by `spec`."""
    if not command:
        raise ValueError("empty command")
    argv = [bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--share-net", "--die-with-parent", "--new-session", "--hostname", spec.hostname]
    if spec.mode == "root":
        # Privileged bwrap keeps root's capabilities unless told otherwise: keep only the
        # two setpriv needs to leave uid 0; setpriv then drops them for good.
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        # --disable-userns: the candidate cannot create user namespaces of its own (more
        # kernel surface, nothing it needs).
        argv += ["--unshare-user", "--disable-userns", "--uid", str(USER_MODE_ID),
                 "--gid", str(USER_MODE_ID), "--cap-drop", "ALL"]
    if info_fd is not None:
        argv += ["--info-fd", str(info_fd)]
    if seccomp_fd is not None:      # graders.sandbox.seccomp: no user namespaces inside
        argv += ["--seccomp", str(seccomp_fd)]
    dirs = _Dirs()
    for b in spec.system:
        if b.kind == "ro-bind":
            argv += dirs.mount("--ro-bind", b.dest, b.src)
        elif b.kind == "symlink":
            argv += ["--symlink", b.src, b.dest]
            dirs.points.add(b.dest)
        else:
            raise ValueError(f"unknown system bind kind {b.kind!r}")
    if spec.python_prefix:
        argv += dirs.mount("--ro-bind", spec.python_prefix, spec.python_prefix)
    for m in spec.masks:
        argv += dirs.mount("--tmpfs", m)
    argv += dirs.mount("--proc", "/proc") + dirs.mount("--dev", "/dev")
    argv += ["--perms", "1777", "--size", str(spec.limits.tmp_bytes)] + dirs.mount("--tmpfs", "/tmp")
    argv += dirs.mount("--ro-bind", spec.submission, spec.submission_src or spec.submission)
    for m in spec.submission_masks:
        argv += dirs.mount("--tmpfs", m)
    for path in spec.writable:
        argv += dirs.mount("--bind", path, path)
    for path in spec.readonly:
        argv += dirs.mount("--ro-bind", path, path)
    for m in (*spec.masks, *spec.submission_masks):   # last: later mount points may be inside
        argv += ["--remount-ro", m]
    argv += ["--chdir", spec.submission]
    argv.append("--")
    if spec.mode == "root":
        argv += [SETPRIV, f"--reuid={spec.uid}", f"--regid={spec.gid}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    # bwrap exports PWD after --chdir; the SPEC §2 environment has no PWD (exec, same pid).
    return argv + [ENV, "-u", "PWD", "--"] + list(command)


def describe(spec: SandboxSpec | None, *, mode: str | None = None, reason: str = "") -> dict:
    """What a report shows about the sandbox (the grade metadata's `sandbox` member)."""
    if spec is None:
        return {"mode": mode or "none", "reason": reason}
    return {"mode": spec.mode, "tool": "bubblewrap" + (" + setpriv" if spec.mode == "root" else ""),
            "uid": spec.uid if spec.mode == "root" else f"{USER_MODE_ID} in a user namespace",
            "namespaces": ["pid", "ipc", "uts", "cgroup", "mount"] + (["user"] if spec.mode == "user" else []),
            "network": "the grader's own network namespace (loopback only) when grading",
            "capabilities": "none", "no_new_privs": True,
            "filesystem": "allowlist: system read-only, submission read-only, own memory/home "
                          "writable, private /tmp; the kit hidden",
            "limits": spec.limits.as_dict()}
