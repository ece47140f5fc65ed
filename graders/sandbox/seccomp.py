"""A seccomp filter that stops a candidate from creating user namespaces.

Why: in root mode the service runs as an ordinary unprivileged uid, and an ordinary uid
may create a user namespace of its own (where it is "root" with capabilities over nothing
of the host). That grants no access, but it is the door to most kernel attack surface
that unprivileged code cannot otherwise reach (mounting file systems, netfilter,
namespaced sysctls). Nothing a service needs requires it, so, as Flatpak does, the
sandbox refuses `unshare(CLONE_NEWUSER)` and `clone(CLONE_NEWUSER)` with EPERM and
`clone3` with ENOSYS (its flags live in memory a filter cannot read, and ENOSYS makes
libc fall back to `clone`, which is checked). Every x32 system call is refused (nothing
uses that ABI, and it would be a way around the numbers checked here); i386 calls are
checked with their own numbers. Other architectures get no filter (see THREAT_MODEL).

Pure: `program()` returns the classic BPF bytes bwrap reads from `--seccomp FD`.
"""
from __future__ import annotations

import platform
import struct

__all__ = ["program", "supported", "CLONE_NEWUSER"]

CLONE_NEWUSER = 0x10000000
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
X32_SYSCALL_BIT = 0x40000000
NR = {"x86_64": {"unshare": 272, "clone": 56, "clone3": 435},
      "i386": {"unshare": 310, "clone": 120, "clone3": 435}}

_LD_ABS_W, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
EPERM, ENOSYS = 1, 38
_OFF_NR, _OFF_ARCH, _OFF_ARG0 = 0, 4, 16


def _ins(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def supported(machine: str | None = None) -> bool:
    return (machine or platform.machine()) in ("x86_64", "AMD64")


def program() -> bytes:
    """The filter as a sock_filter array: arch check, then the system call number, then
    (for unshare/clone) the CLONE_NEWUSER bit of the first argument."""
    return _assemble(NR["x86_64"], NR["i386"])


def _assemble(x: dict, i: dict) -> bytes:
    labels: dict[str, int] = {}
    code: list[tuple] = []

    def at(name: str) -> None:
        labels[name] = len(code)

    def ld(off: int) -> None:
        code.append(("ld", off))

    def jump(op: int, k: int, jt: str | None, jf: str | None) -> None:
        code.append(("j", op, k, jt, jf))

    def ret(k: int) -> None:
        code.append(("ret", k))

    ld(_OFF_ARCH)
    jump(_JEQ, AUDIT_ARCH_X86_64, "x86_64", None)
    jump(_JEQ, AUDIT_ARCH_I386, "i386", "allow")
    at("x86_64")
    ld(_OFF_NR)
    jump(_JGE, X32_SYSCALL_BIT, "eperm", None)
    jump(_JEQ, x["unshare"], "flags", None)
    jump(_JEQ, x["clone"], "flags", None)
    jump(_JEQ, x["clone3"], "enosys", "allow")
    at("i386")
    ld(_OFF_NR)
    jump(_JEQ, i["unshare"], "flags", None)
    jump(_JEQ, i["clone"], "flags", None)
    jump(_JEQ, i["clone3"], "enosys", "allow")
    at("flags")
    ld(_OFF_ARG0)
    jump(_JSET, CLONE_NEWUSER, "eperm", "allow")
    at("allow")
    ret(RET_ALLOW)
    at("eperm")
    ret(RET_ERRNO | EPERM)
    at("enosys")
    ret(RET_ERRNO | ENOSYS)

    out = b""
    for pc, ins in enumerate(code):
        if ins[0] == "ld":
            out += _ins(_LD_ABS_W, 0, 0, ins[1])
        elif ins[0] == "ret":
            out += _ins(_RET, 0, 0, ins[1])
        else:
            _, op, k, jt, jf = ins
            rel = lambda target: 0 if target is None else labels[target] - pc - 1
            t, f = rel(jt), rel(jf)
            if not (0 <= t <= 255 and 0 <= f <= 255):
                raise ValueError("seccomp jump out of range")
            out += _ins(op, t, f, k)
    return out
