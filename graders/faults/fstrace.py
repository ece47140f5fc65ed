"""Power-loss durability from a record of a service's system calls (ALICE-style).

Why a system-call record and not a crash: SIGKILL keeps the page cache, so a service that
never calls fsync survives every kill; a real power cut loses whatever was not synced.
Rather than cutting power (or emulating a file system that drops unsynced writes, which
tests one crash point per run and races with the service), the grader records every
file-system call of each service with strace and replays it here against an abstract
file system, as the ALICE crash-consistency study did: at EVERY point of the record it
computes which states a power loss could leave on disk, and checks that each
acknowledged record is present and complete in all of them. The verdict depends only
on the order of the service's own calls, so it is deterministic and language-agnostic.

The persistence model (the contract of SPEC §11.2, nothing stricter):

- A file's data written since its last fsync/fdatasync (or sync/syncfs, or a write on a
  file opened O_SYNC/O_DSYNC, or pwritev2 with RWF_DSYNC/RWF_SYNC) may be lost or torn: such a file is *dirty*. An fsync
  covers what was written before the call started and counts once the call returned.
- A directory entry change (create, rename, exchange, link, unlink) may be lost until the
  directory is fsynced; the changes of one directory reach the disk in order, so after a
  crash a name holds its last synced binding or one of the bindings it took since.
- Directories themselves (`records/`, `quarantine/`) are durable once created.

Judged per watched record (the file ``records/<task_id>.json`` of a task the grader sent):
- the acknowledgement is the first write to a socket whose bytes contain all of the
  watch's ``ack`` strings (the reply, e.g. ``"<task_id>"`` and ``collect_ok"``);
- from that call on, at every crash point, every binding the name may have after a power
  loss must be a clean (fully synced) file whose written data contains the watch's
  ``content`` strings (``"<task_id>"``: the record itself, not an empty or old file);
- at no point may a crash leave the name bound to a dirty or empty file (SPEC §11.2:
  "the file holds either the old or the new complete record").

Pure: functions over the text of an strace record (``strace -f -ttt -yy -qq``); no I/O.
"""
from __future__ import annotations

import os.path
import re
from dataclasses import dataclass, field

__all__ = ["Call", "Watch", "Finding", "parse_trace", "judge", "decode_c_string",
           "split_args", "STRACE_SYSCALLS", "strace_argv", "TraceError"]

#: The system calls the model needs (names unknown to an architecture are skipped: `?`).
STRACE_SYSCALLS = (
    "open", "openat", "openat2", "creat", "write", "pwrite64", "writev", "pwritev", "pwritev2",
    "sendto", "sendmsg", "sendmmsg", "sendfile", "copy_file_range", "fsync", "fdatasync", "sync",
    "syncfs", "rename", "renameat", "renameat2", "link", "linkat", "unlink", "unlinkat", "mkdir",
    "mkdirat", "truncate", "ftruncate", "fallocate", "chdir", "fchdir",
)
#: Bytes of each string argument strace prints (the record and the reply must fit).
STRING_LIMIT = 65536
MAX_DATA_PER_FILE = 1 << 20


def strace_argv(strace: str, output: str) -> list[str]:
    """The prefix that runs a service under strace, writing the record to `output`.
    --seccomp-bpf stops the service only at the traced calls (others run at full speed)."""
    return [strace, "-f", "--seccomp-bpf", "-qq", "-ttt", "-yy", "-s", str(STRING_LIMIT),
            "-e", "signal=none", "-e", "trace=" + ",".join("?" + s for s in STRACE_SYSCALLS),
            "-o", output, "--"]


class TraceError(ValueError):
    """The record cannot be read as an strace record."""


@dataclass(frozen=True)
class Call:
    """One system call: `entry`/`exit` are its positions in the record (equal unless
    another thread's call was printed in between); `ret` is the raw result text."""
    pid: int
    time: float
    name: str
    args: tuple[str, ...]
    ret: str
    entry: int
    exit: int
    line: str

    @property
    def ok(self) -> bool:
        return bool(self.ret) and not self.ret.startswith("-") and not self.ret.startswith("?")


@dataclass(frozen=True)
class Watch:
    record: str                  # absolute path of the record as the service sees it
    ack: tuple[str, ...]         # strings that together identify the acknowledging reply
    content: tuple[str, ...]     # strings the acknowledged record's data contains


@dataclass(frozen=True)
class Finding:
    record: str
    kind: str        # lost | torn (failures) | no-ack (information: reply not seen)
    message: str
    calls: tuple[str, ...] = ()   # the service's calls on this record, up to the point


# --- parsing ----------------------------------------------------------------------------
_LINE_RE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*)$")
_RESUMED_RE = re.compile(r"^<\.\.\. ([A-Za-z0-9_]+) resumed>\s?(.*)$")
_UNFINISHED = " <unfinished ...>"
_ESCAPES = {"n": 10, "t": 9, "r": 13, "v": 11, "f": 12, "a": 7, "b": 8, "\\": 92, '"': 34,
            "'": 39, "?": 63, "e": 27}


def decode_c_string(body: str) -> bytes:
    """The bytes of a string strace printed (the text between the quotes, C escapes)."""
    out = bytearray()
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch != "\\" or i + 1 >= n:
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in "01234567":
            j = i + 1
            while j < n and j < i + 4 and body[j] in "01234567":
                j += 1
            out.append(int(body[i + 1:j], 8) & 0xFF)
            i = j
        elif nxt == "x" and i + 3 < n + 1 and re.match(r"[0-9a-fA-F]{2}", body[i + 2:i + 4]):
            out.append(int(body[i + 2:i + 4], 16))
            i += 4
        else:
            out.append(_ESCAPES.get(nxt, ord(nxt) if ord(nxt) < 128 else 63))
            i += 2
    return bytes(out)


def _scan_string(text: str, i: int) -> int:
    """Index just past the closing quote of the string starting at text[i] == '"'."""
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == '"':
            return j + 1
        j += 1
    return len(text)


def _scan_decoration(text: str, i: int) -> int:
    """Index just past the `>` closing the fd decoration starting at text[i] == '<'.
    Paths have `<`/`>` escaped by strace; sockets look like `TCP:[a:1->b:2]`; devices
    nest (`/dev/null<char 1:3>`)."""
    depth, bracket, j = 0, 0, i
    while j < len(text):
        c = text[j]
        if c == '"':
            j = _scan_string(text, j)
            continue
        if c == "\\":
            j += 2
            continue
        if c == "[":
            bracket += 1
        elif c == "]":
            bracket = max(0, bracket - 1)
        elif c == "<" and bracket == 0:
            depth += 1
        elif c == ">" and bracket == 0:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return len(text)


def split_args(text: str) -> tuple[list[str], str]:
    """Split `a, b, {c, d}, "e,f")` rest` into top-level arguments and the text after the
    closing parenthesis (`= 0 ...`)."""
    args, depth, start, i = [], 0, 0, 0
    while i < len(text):
        c = text[i]
        if c == '"':
            i = _scan_string(text, i)
            continue
        if c == "<":
            i = _scan_decoration(text, i)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0 and c == ")":
                piece = text[start:i].strip()
                if piece or args:
                    args.append(piece)
                return args, text[i + 1:]
            depth -= 1
        elif c == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    piece = text[start:].strip()
    if piece:
        args.append(piece)
    return args, ""


def _ret_of(rest: str) -> str:
    rest = rest.strip()
    return rest[1:].strip() if rest.startswith("=") else ""


def parse_trace(text: str) -> list[Call]:
    """Every completed system call of an `strace -f -ttt` record, in the order of the
    lines where each ended; signals, exits and calls never resumed are dropped."""
    calls: list[Call] = []
    pending: dict[int, tuple[str, float, int, str]] = {}
    for pos, raw in enumerate(text.splitlines()):
        m = _LINE_RE.match(raw)
        if not m:
            continue
        pid, t, body = int(m.group(1)), float(m.group(2)), m.group(3)
        if body.startswith(("+++", "---")):
            continue
        r = _RESUMED_RE.match(body)
        if r:
            entry = pending.pop(pid, None)
            if entry is None or entry[0] != r.group(1):
                continue
            name, t0, epos, head = entry
            full = head + r.group(2)
            args, rest = split_args(full)
            calls.append(Call(pid, t0, name, tuple(args), _ret_of(rest), epos, pos, f"{name}({full}"))
            continue
        paren = body.find("(")
        if paren <= 0 or not re.fullmatch(r"[A-Za-z0-9_]+", body[:paren]):
            continue
        name, rest_text = body[:paren], body[paren + 1:]
        if rest_text.endswith(_UNFINISHED):
            pending[pid] = (name, t, pos, rest_text[: -len(_UNFINISHED)])
            continue
        args, rest = split_args(rest_text)
        calls.append(Call(pid, t, name, tuple(args), _ret_of(rest), pos, pos, body))
    return calls


# --- argument helpers ---------------------------------------------------------------------
_DECOR_RE = re.compile(r"^(-?\d+|AT_FDCWD)<(.*)>$", re.S)


def _decoration(arg: str) -> str | None:
    m = _DECOR_RE.match(arg.strip())
    if not m:
        return None
    inner = m.group(2)
    # a device path carries its own <char M:N> suffix
    dev = re.match(r"^(/.*?)<(?:char|block) [^>]*>$", inner, re.S)
    return dev.group(1) if dev else inner


def _unescape_path(p: str) -> str:
    return decode_c_string(p).decode("utf-8", "surrogateescape")


def _string_arg(arg: str) -> str | None:
    arg = arg.strip()
    if not arg.startswith('"'):
        return None
    end = _scan_string(arg, 0)
    return _unescape_path(arg[1:end - 1])


def _strings_in(arg: str) -> bytes:
    out, i = bytearray(), 0
    while i < len(arg):
        if arg[i] == '"':
            end = _scan_string(arg, i)
            out += decode_c_string(arg[i + 1:end - 1])
            i = end
        elif arg[i] == "<":
            i = _scan_decoration(arg, i)
        else:
            i += 1
    return bytes(out)


def _is_socket(decoration: str | None) -> bool:
    return bool(decoration) and not decoration.startswith("/") and not decoration.startswith(
        ("pipe:", "anon_inode:"))


# --- the abstract file system ---------------------------------------------------------------
@dataclass
class _Inode:
    id: int
    mod: int = 0
    synced: int = 0
    has_data: bool = False
    sync_writes: bool = False
    data: bytearray = field(default_factory=bytearray)

    @property
    def clean(self) -> bool:
        return self.mod == self.synced


@dataclass
class _Dir:
    current: dict[str, int | None] = field(default_factory=dict)
    durable: dict[str, int | None] = field(default_factory=dict)
    pending: list[tuple[int, dict[str, int | None]]] = field(default_factory=list)
    known: bool = False          # every name is in `current` (absent otherwise)


class _Model:
    def __init__(self, cwd: str, memdir: str, initial_files: list[str],
                 aliases: dict[str, str] | None = None):
        # Another spelling of a directory (e.g. its realpath when the given path has a
        # symlink: strace shows fds by real path, arguments as the program wrote them).
        self.aliases = {os.path.normpath(k): os.path.normpath(v) for k, v in (aliases or {}).items()
                        if os.path.normpath(k) != os.path.normpath(v)}
        self.cwd = os.path.normpath(cwd)
        self.memdir = os.path.normpath(memdir)
        self.inodes: dict[int, _Inode] = {}
        self.dirs: dict[str, _Dir] = {}
        self.anon: dict[str, int] = {}
        self.seq = 0
        self.cwd_by_pid: dict[int, str] = {}
        self._known_dir(self.memdir)
        for rel in initial_files:
            path = os.path.normpath(os.path.join(self.memdir, rel))
            parent = os.path.dirname(path)
            while parent.startswith(self.memdir) and parent not in self.dirs:
                self._known_dir(parent)
                parent = os.path.dirname(parent)
            ino = self._new_inode(has_data=True)
            d = self._dir(os.path.dirname(path))
            name = os.path.basename(path)
            d.current[name] = d.durable[name] = ino.id
        for sub in ("records", "quarantine"):
            self._known_dir(os.path.join(self.memdir, sub))

    def _known_dir(self, path: str) -> None:
        d = self.dirs.setdefault(path, _Dir())
        d.known = True

    def _new_inode(self, **kw) -> _Inode:
        ino = _Inode(len(self.inodes) + 1, **kw)
        self.inodes[ino.id] = ino
        return ino

    def _dir(self, path: str) -> _Dir:
        d = self.dirs.get(path)
        if d is None:
            d = self.dirs[path] = _Dir(known=path == self.memdir or path.startswith(self.memdir + "/"))
        return d

    def canon(self, path: str) -> str:
        path = os.path.normpath(path)
        for alias, real in self.aliases.items():
            if path == alias or path.startswith(alias + "/"):
                return real + path[len(alias):]
        return path

    def resolve(self, base: str | None, path: str, pid: int | None = None) -> str:
        if path.startswith("/"):
            return self.canon(path)
        if base is None:
            base = self.cwd_by_pid.get(pid, self.cwd)
        return self.canon(os.path.join(base, path))

    def saw_cwd(self, pid: int, args: tuple[str, ...]) -> None:
        """Each process has its own working directory; strace shows it on every
        AT_FDCWD argument, which is how relative paths of rename/unlink/... resolve."""
        for a in args:
            if a.startswith("AT_FDCWD<"):
                dec = _decoration(a)
                if dec and dec.startswith("/"):
                    self.cwd_by_pid[pid] = self.canon(_unescape_path(dec))
                return

    def lookup(self, path: str, *, create_unknown: bool = True) -> int | None:
        if path in self.dirs:
            return None
        d = self._dir(os.path.dirname(path))
        name = os.path.basename(path)
        if name in d.current:
            return d.current[name]
        if d.known or not create_unknown:
            return None
        ino = self._new_inode(has_data=True)      # existed before the record began
        d.current[name] = d.durable[name] = ino.id
        return ino.id

    def inode_of_decoration(self, decoration: str | None) -> _Inode | None:
        if not decoration or not decoration.startswith("/"):
            return None
        if decoration.endswith(" (deleted)"):
            ino = self.anon.get(decoration)
            return self.inodes.get(ino) if ino else None
        path = self.canon(_unescape_path(decoration))
        ino = self.lookup(path)
        return self.inodes.get(ino) if ino else None

    def bind(self, changes: dict[str, int | None]) -> None:
        """One atomic directory operation: {absolute path: inode or None}."""
        self.seq += 1
        per_dir: dict[str, dict[str, int | None]] = {}
        for path, ino in changes.items():
            per_dir.setdefault(os.path.dirname(path), {})[os.path.basename(path)] = ino
        for dpath, names in per_dir.items():
            d = self._dir(dpath)
            for name in names:
                if name not in d.current and not d.known:
                    # unknown old entry: it existed durably (or not) before the record
                    d.durable.setdefault(name, None)
                d.durable.setdefault(name, d.current.get(name))
            d.current.update(names)
            d.pending.append((self.seq, names))

    def modify(self, ino: _Inode, *, data: bytes = b"", truncate: bool = False,
               grows: bool = False) -> None:
        ino.mod += 1
        if truncate:
            ino.has_data = False
            ino.data = bytearray()
        if data or grows:
            ino.has_data = True
        if data and len(ino.data) < MAX_DATA_PER_FILE:
            ino.data += data[: MAX_DATA_PER_FILE - len(ino.data)]

    def possible(self, path: str) -> list[int | None]:
        """Every binding `path` may have after a power loss now."""
        d = self._dir(os.path.dirname(path))
        name = os.path.basename(path)
        if name in d.durable:
            first = d.durable[name]
        else:
            first = d.current.get(name) if not d.known else None
        out = [first]
        for _seq, names in d.pending:
            if name in names:
                out.append(names[name])
        return out


_WRITE_DATA_ARG = {"write": 1, "pwrite64": 1, "writev": 1, "pwritev": 1, "pwritev2": 1,
                   "sendto": 1, "sendmsg": 1, "sendmmsg": 1}


def _flags(arg: str) -> set[str]:
    return set(re.findall(r"[A-Z_][A-Z0-9_]*", arg))


def _events(calls: list[Call]) -> list[tuple[int, str, Call]]:
    ev = []
    for c in calls:
        ev.append((c.entry, "entry", c))
        ev.append((c.exit, "exit", c))
    ev.sort(key=lambda e: (e[0], 0 if e[1] == "entry" else 1))
    return ev


class _Judge:
    def __init__(self, model: _Model, watches: list[Watch]):
        self.m = model
        self.watches = [w for w in watches]
        self.paths = {os.path.normpath(w.record): w for w in watches}
        self.acked: dict[str, int] = {}
        self.findings: dict[tuple[str, str], Finding] = {}
        self.history: dict[str, list[str]] = {p: [] for p in self.paths}
        self.inode_history: dict[int, list[str]] = {}

    def note(self, path: str, line: str) -> None:
        if path in self.history:
            self.history[path].append(line[:300])

    def evaluate(self, where: str) -> None:
        for path, w in self.paths.items():
            if (path, "lost") in self.findings and (path, "torn") in self.findings:
                continue
            acked = path in self.acked
            for ino_id in self.m.possible(path):
                ino = self.m.inodes.get(ino_id) if ino_id else None
                if ino_id is None:
                    if acked:
                        self._add(path, "lost", f"after its acknowledgement, a power loss {where} "
                                  "can leave no file at this name (a rename or create not yet made "
                                  "durable by an fsync of the directory)")
                    continue
                if not ino.clean or not ino.has_data:
                    self._add(path, "torn", f"a power loss {where} can leave this name holding a "
                              "file whose data was not fsynced (empty or torn), not a complete record")
                    if acked:
                        self._add(path, "lost", f"after its acknowledgement, a power loss {where} "
                                  "can leave this name holding unsynced data instead of the record")
                elif acked and not all(s.encode() in bytes(ino.data) for s in w.content):
                    self._add(path, "lost", f"after its acknowledgement, a power loss {where} can "
                              "leave this name holding another version (the reply was sent before "
                              "the new record was renamed into place durably)")

    def _add(self, path: str, kind: str, message: str) -> None:
        if (path, kind) not in self.findings:
            self.findings[(path, kind)] = Finding(path, kind, message, tuple(self.history[path][-12:]))

    def ack_check(self, call: Call) -> None:
        idx = _WRITE_DATA_ARG.get(call.name)
        if idx is None or len(call.args) <= idx or not _is_socket(_decoration(call.args[0])):
            return
        data = _strings_in(call.args[idx])
        for path, w in self.paths.items():
            if path not in self.acked and all(s.encode() in data for s in w.ack):
                self.note(path, f"{call.name}(socket, reply)  <- acknowledgement")
                self.evaluate("at the moment the reply is written")
                self.acked[path] = call.entry
                self.evaluate("at the moment the reply is written")


def judge(trace_text: str, *, cwd: str, memdir: str, initial_files: list[str],
          watches: list[Watch], aliases: dict[str, str] | None = None) -> list[Finding]:
    """Findings for every watched record (empty: durable in every crash state)."""
    calls = parse_trace(trace_text)
    m = _Model(cwd, memdir, initial_files, aliases)
    j = _Judge(m, watches)
    sync_marks: dict[int, object] = {}
    for _pos, kind, c in _events(calls):
        if kind == "entry":
            _on_entry(m, j, c, sync_marks)
        else:
            _on_exit(m, j, c, sync_marks)
    unacked = [p for p in j.paths if p not in j.acked]
    for path in unacked:
        # The reply went out by a call the record does not show: judge the record as it
        # stood when the service was stopped (necessary, not sufficient).
        j.acked[path] = len(calls)
    if unacked:
        j.evaluate("at the end of the record")
    out = list(j.findings.values())
    for path in unacked:
        w = j.paths[path]
        out.append(Finding(path, "no-ack", "no write to a socket carrying the reply "
                           f"({' + '.join(w.ack)}) was recorded; judged at the end of the record",
                           tuple(j.history[path][-12:])))
    return sorted(out, key=lambda f: (f.record, f.kind))


def _fd_path(m: _Model, arg: str) -> str | None:
    dec = _decoration(arg)
    if dec and dec.startswith("/") and not dec.endswith(" (deleted)"):
        return m.canon(_unescape_path(dec))
    return None


def _at_path(m: _Model, dirfd: str, path_arg: str, pid: int | None = None) -> str | None:
    p = _string_arg(path_arg)
    if p is None:
        return None
    return m.resolve(_fd_path(m, dirfd), p, pid)


def _on_entry(m: _Model, j: _Judge, c: Call, marks: dict) -> None:
    name = c.name
    if name in ("write", "pwrite64", "writev", "pwritev", "pwritev2", "sendto", "sendmsg",
                "sendmmsg"):
        j.ack_check(c)
        ino = m.inode_of_decoration(_decoration(c.args[0]) if c.args else None)
        if ino is not None:
            m.modify(ino, data=_strings_in(c.args[1]) if len(c.args) > 1 else b"")
    elif name in ("ftruncate", "fallocate", "sendfile", "copy_file_range"):
        target = c.args[2] if name == "copy_file_range" and len(c.args) > 2 else (c.args[0] if c.args else "")
        ino = m.inode_of_decoration(_decoration(target))
        if ino is not None:
            m.modify(ino, truncate=name == "ftruncate" and len(c.args) > 1 and c.args[1].strip() == "0",
                     grows=name != "ftruncate")
    elif name in ("fsync", "fdatasync", "sync", "syncfs"):
        marks[id(c)] = (m.seq, {i: ino.mod for i, ino in m.inodes.items()})


def _on_exit(m: _Model, j: _Judge, c: Call, marks: dict) -> None:
    name = c.name
    m.saw_cwd(c.pid, c.args)
    if name in ("write", "pwrite64", "writev", "pwritev", "pwritev2"):
        ino = m.inode_of_decoration(_decoration(c.args[0]) if c.args else None)
        if ino is not None:
            m.modify(ino)
            per_write_sync = name == "pwritev2" and bool(_flags(c.args[-1]) & {"RWF_DSYNC", "RWF_SYNC"})
            if (ino.sync_writes or per_write_sync) and c.ok:
                ino.synced = ino.mod
            _note_inode(m, j, ino, c)
            j.evaluate("after " + name)
        return
    if name in ("ftruncate", "fallocate", "sendfile", "copy_file_range"):
        target = c.args[2] if name == "copy_file_range" and len(c.args) > 2 else (c.args[0] if c.args else "")
        ino = m.inode_of_decoration(_decoration(target))
        if ino is not None:
            m.modify(ino)
            _note_inode(m, j, ino, c)
            j.evaluate("after " + name)
        return
    if name in ("fsync", "fdatasync", "sync", "syncfs"):
        mark = marks.pop(id(c), None)
        if mark is None or not c.ok:
            return
        seq, mods = mark
        if name in ("sync", "syncfs"):
            for i, mod in mods.items():
                ino = m.inodes[i]
                ino.synced = max(ino.synced, mod)
            for d in m.dirs.values():
                _apply_dir_sync(d, seq)
            j.evaluate("after " + name)
            return
        path = _fd_path(m, c.args[0]) if c.args else None
        if path is not None and path in m.dirs:
            _apply_dir_sync(m.dirs[path], seq)
            for p in j.paths:
                if os.path.dirname(p) == path:
                    j.note(p, f"{name}(directory {os.path.basename(path)}/)")
        else:
            ino = m.inode_of_decoration(_decoration(c.args[0]) if c.args else None)
            if ino is not None and ino.id in mods:
                ino.synced = max(ino.synced, mods[ino.id])
                _note_inode(m, j, ino, c)
        j.evaluate("after " + name)
        return
    if not c.ok:
        return
    if name in ("open", "openat", "creat", "openat2"):
        _on_open(m, j, c)
    elif name in ("rename", "renameat", "renameat2"):
        if name == "rename":
            src, dst = (m.resolve(None, pid=c.pid, path=p) for p in (_string_arg(c.args[0]) or "", _string_arg(c.args[1]) or ""))
            flags = set()
        else:
            src, dst = _at_path(m, c.args[0], c.args[1], c.pid), _at_path(m, c.args[2], c.args[3], c.pid)
            flags = _flags(c.args[4]) if len(c.args) > 4 else set()
        if src is None or dst is None:
            return
        if src in m.dirs:
            m.dirs[dst] = m.dirs.pop(src)
            return
        a, b = m.lookup(src), m.lookup(dst)
        if dst in j.paths and a is not None:
            j.history[dst].extend(j.inode_history.get(a, [])[-6:])
        if "RENAME_EXCHANGE" in flags:
            m.bind({src: b, dst: a})
        else:
            m.bind({dst: a, src: None})
        j.note(src, f"{name}(this record -> {os.path.basename(dst)})")
        j.note(dst, f"{name}({os.path.basename(src)} -> this record"
               + (", exchange" if "RENAME_EXCHANGE" in flags else "") + ")")
        j.evaluate("after " + name)
    elif name in ("link", "linkat"):
        if name == "link":
            src, dst = m.resolve(None, pid=c.pid, path=_string_arg(c.args[0]) or ""), m.resolve(None, pid=c.pid, path=_string_arg(c.args[1]) or "")
            ino = m.lookup(src)
        else:
            dst = _at_path(m, c.args[2], c.args[3], c.pid)
            if "AT_EMPTY_PATH" in _flags(c.args[4] if len(c.args) > 4 else ""):
                dec = _decoration(c.args[0])
                ino = m.anon.get(dec) if dec else None
                if ino is None:
                    i2 = m.inode_of_decoration(dec)
                    ino = i2.id if i2 else None
            else:
                src = _at_path(m, c.args[0], c.args[1], c.pid)
                ino = m.lookup(src) if src else None
        if dst is not None and ino is not None:
            m.bind({dst: ino})
            j.note(dst, f"{name}(-> this record)")
            j.evaluate("after " + name)
    elif name in ("unlink", "unlinkat"):
        path = m.resolve(None, pid=c.pid, path=_string_arg(c.args[0]) or "") if name == "unlink" else _at_path(m, c.args[0], c.args[1], c.pid)
        if path is None or (name == "unlinkat" and "AT_REMOVEDIR" in _flags(c.args[2] if len(c.args) > 2 else "")):
            return
        if path in m.dirs:
            return
        m.bind({path: None})
        j.note(path, f"{name}(this record)")
        j.evaluate("after " + name)
    elif name in ("mkdir", "mkdirat"):
        path = m.resolve(None, pid=c.pid, path=_string_arg(c.args[0]) or "") if name == "mkdir" else _at_path(m, c.args[0], c.args[1], c.pid)
        if path:
            d = m._dir(path)
            d.known = True
    elif name == "truncate":
        path = m.resolve(None, pid=c.pid, path=_string_arg(c.args[0]) or "")
        ino_id = m.lookup(path)
        if ino_id:
            m.modify(m.inodes[ino_id], truncate=len(c.args) > 1 and c.args[1].strip() == "0")
            j.note(path, "truncate(this record)")
            j.evaluate("after truncate")
    elif name == "chdir":
        p = _string_arg(c.args[0]) if c.args else None
        if p:
            m.cwd_by_pid[c.pid] = m.resolve(None, pid=c.pid, path=p)
    elif name == "fchdir":
        p = _fd_path(m, c.args[0]) if c.args else None
        if p:
            m.cwd_by_pid[c.pid] = p


def _apply_dir_sync(d: _Dir, seq: int) -> None:
    keep = []
    for s, names in d.pending:
        if s <= seq:
            d.durable.update(names)
        else:
            keep.append((s, names))
    d.pending = keep


def _note_inode(m: _Model, j: _Judge, ino: _Inode, c: Call) -> None:
    """Keep what happened to a file by inode, so that a record's history shows the writes
    and fsyncs of its temporary file before it was renamed into place."""
    hist = j.inode_history.setdefault(ino.id, [])
    if len(hist) < 50:
        hist.append(f"{c.name}(file #{ino.id}" + (", ok" if c.ok else f", {c.ret}") + ")")
    for path in j.paths:
        if ino.id in m.possible(path):
            j.note(path, hist[-1])


def _on_open(m: _Model, j: _Judge, c: Call) -> None:
    if c.name == "creat":
        path = m.resolve(None, pid=c.pid, path=_string_arg(c.args[0]) or "")
        flags = {"O_CREAT", "O_TRUNC", "O_WRONLY"}
    elif c.name == "open":
        path = m.resolve(None, pid=c.pid, path=_string_arg(c.args[0]) or "")
        flags = _flags(c.args[1]) if len(c.args) > 1 else set()
    else:
        path = _at_path(m, c.args[0], c.args[1], c.pid) if len(c.args) > 1 else None
        flags = _flags(c.args[2]) if len(c.args) > 2 else set()
    if path is None or "O_DIRECTORY" in flags:
        return
    if "O_TMPFILE" in flags:
        dec = _ret_decoration(c.ret)
        if dec:
            ino = m._new_inode()
            m.anon[dec] = ino.id
        return
    if path in m.dirs:
        return
    ino_id = m.lookup(path)
    if ino_id is None:
        if "O_CREAT" not in flags:
            return
        ino = m._new_inode()
        m.bind({path: ino.id})
        j.note(path, f"{c.name}(create this record)")
        j.evaluate("after creating the file")
    else:
        ino = m.inodes[ino_id]
        if "O_TRUNC" in flags:
            m.modify(ino, truncate=True)
            j.note(path, f"{c.name}(truncate this record)")
            j.evaluate("after truncating the file")
    if flags & {"O_SYNC", "O_DSYNC"}:
        ino.sync_writes = True


def _ret_decoration(ret: str) -> str | None:
    m = re.match(r"^\d+<(.*)>", ret or "", re.S)
    return m.group(1) if m else None
