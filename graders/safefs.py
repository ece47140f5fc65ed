"""File handling that candidate data cannot redirect: the report directory, reads and
writes beneath a candidate-writable directory, and removal of candidate-touched trees.

Why a module of its own: candidate code can leave symbolic links anywhere it may write
(its memory directory, its files, the submission folder it ships), and the grader runs
with more rights than the candidate (root on CI and Gradescope). Any grader operation
that resolves a path through candidate-controlled components can therefore be turned
into "write my 60/60 report over yours", "overwrite /etc/passwd" or "chmod 0700 /home".
Every such operation goes through here, and here every path is walked one component at
a time from a directory file descriptor the grader holds, with ``O_NOFOLLOW`` on every
component: a planted link is refused (reads, writes) or removed as a link (cleanup),
never followed. Nothing is looked up by name twice, so there is no check-then-use race.

The pieces:

- ``prepare_out_dir``: the ``--out`` directory of a grade. It is created, or verified to
  be an empty directory or one holding only a previous grade's output (whose stale files
  are removed at once, so a grade that later fails cannot leave an old score lying
  there); a symbolic link, a non-directory, a directory inside the submission (whose
  shipped files could be links, and which the next candidate would see), a directory
  every user may write, or one holding anything else is refused with a sentence saying
  what to do. The returned
  ``OutDir`` holds the directory open and writes each file as a new ``O_EXCL |
  O_NOFOLLOW`` temporary that is renamed over the final name (a rename replaces a link
  instead of following it, and readers never see half a report).
- ``open_beneath`` / ``read_beneath`` / ``write_beneath``: files under a candidate's
  directory without following any link on the way.
- ``remove_tree``: delete a candidate-touched tree. Directories are made writable through
  a descriptor opened with ``O_NOFOLLOW`` (never ``chmod`` by name), links are unlinked
  as links, other file systems (a mount point) are never entered, and the walk holds one
  directory descriptor at a time, so a tree of any depth is removed.
"""
from __future__ import annotations

import errno
import itertools
import os
import stat
from pathlib import Path

MARKER = ".faultdrill-out"
# Files a grade (or the Gradescope wrapper around it) writes into its output directory.
# A directory holding only these, plus names a previous grade listed in its MARKER, is
# previous output and is emptied before the next grade; anything else makes it refused.
KNOWN_OUTPUTS = frozenset({"results.json", "junit.xml", "report.md", "report.html",
                           "grade.log", MARKER})

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_counter = itertools.count()


class UnsafePath(OSError, ValueError):
    """A path the grader refuses to use (a link, outside its base, not what it should be).
    The message is one sentence for the person running the grader.

    An OSError, so that a reader which treats an unreadable candidate file as the
    candidate's failure (`except OSError`) treats a refused link the same way, instead of
    letting a planted link turn a check into a grader error; a ValueError for callers that
    validate paths."""


# --- names and paths ------------------------------------------------------------------

def _plain_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise UnsafePath(f"{name!r} is not a plain file name")
    return name


def _parts(relpath: str | os.PathLike) -> list[str]:
    text = os.fspath(relpath)
    if not text or os.path.isabs(text) or "\0" in text:
        raise UnsafePath(f"{text!r} must be a relative path")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UnsafePath(f"{text!r} must stay beneath its directory (no '..')")
    return parts


def is_within(path: Path, root: Path) -> bool:
    """True when `path` is `root` or below it, after resolving both."""
    path, root = Path(path).resolve(), Path(root).resolve()
    return path == root or root in path.parents


def _open_dir_at(dir_fd: int | None, name: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link_at(dir_fd, name):
            raise UnsafePath(f"{name!r} is a symbolic link; the grader does not follow links "
                             "in candidate data") from None
        raise


def _is_link_at(dir_fd: int | None, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


# --- reads and writes beneath a directory ---------------------------------------------

def open_beneath(base: Path, relpath: str | os.PathLike, flags: int = os.O_RDONLY, mode: int = 0o600,
                 *, make_parents: bool = False) -> int:
    """A descriptor for `base/relpath`, opened without following any symbolic link in any
    component below `base` (`base` itself is the grader's own directory). Raises
    UnsafePath for a link or a `..`, OSError (FileNotFoundError, ...) otherwise."""
    parts = _parts(relpath)
    fd = _walk_dirs(base, parts[:-1], make_parents=make_parents)
    try:
        last = parts[-1]
        try:
            return os.open(last, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and _is_link_at(fd, last)):
                raise UnsafePath(f"{os.fspath(relpath)!r} is a symbolic link; the grader does not "
                                 "follow links in candidate data") from None
            raise
    finally:
        os.close(fd)


def _walk_dirs(base: Path, dirs: list[str], *, make_parents: bool) -> int:
    """A descriptor of base/dirs[0]/dirs[1]/..., each opened with O_NOFOLLOW."""
    fd = os.open(os.fspath(base), _DIR_FLAGS)
    try:
        for part in dirs:
            try:
                nxt = _open_dir_at(fd, part)
            except FileNotFoundError:
                if not make_parents:
                    raise
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                nxt = _open_dir_at(fd, part)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_beneath(base: Path, relpath: str | os.PathLike, *, limit: int | None = None) -> bytes:
    """The bytes of a regular file beneath `base` (at most `limit` of them, if given)."""
    fd = open_beneath(base, relpath, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePath(f"{os.fspath(relpath)!r} is not a regular file")
        chunks, left = [], (limit if limit is not None else -1)
        while left != 0:
            chunk = os.read(fd, 1 << 20 if left < 0 else min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            if left > 0:
                left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_beneath(base: Path, relpath: str | os.PathLike, data: bytes, *, mode: int = 0o644,
                  make_parents: bool = True) -> None:
    """Replace `base/relpath` by `data`. An existing link at that name is replaced as a
    link (unlinked, never followed); a link on the way there is refused."""
    parts = _parts(relpath)
    dfd = _walk_dirs(base, parts[:-1], make_parents=make_parents)
    try:
        _replace_at(dfd, parts[-1], data, mode)
    finally:
        os.close(dfd)


def _replace_at(dir_fd: int, name: str, data: bytes, mode: int) -> None:
    tmp = f".{name}.{os.getpid()}.{next(_counter)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                 dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.close(fd)
    try:
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        os.unlink(tmp, dir_fd=dir_fd)
        raise


# --- the report directory -------------------------------------------------------------

class OutDir:
    """A report directory the grader created or verified, held open by descriptor, so
    every write lands in that very directory even if its path is swapped afterwards."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self.fd = fd
        self.written: list[str] = []

    def write_bytes(self, name: str, data: bytes) -> Path:
        _replace_at(self.fd, _plain_name(name), data, 0o644)
        if name not in self.written:
            self.written.append(name)
            self._mark()
        return self.path / name

    def write_text(self, name: str, text: str) -> Path:
        return self.write_bytes(name, text.encode("utf-8"))

    def _mark(self) -> None:
        body = ("# Written by faultdrill: this directory holds a grade's reports; the next grade\n"
                "# into it removes the files listed here first.\n" + "".join(f"{n}\n" for n in self.written))
        _replace_at(self.fd, MARKER, body.encode("utf-8"), 0o644)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "OutDir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten close must not leak the descriptor
        try:
            self.close()
        except OSError:
            pass


def _listed_in_marker(dir_fd: int) -> set[str]:
    try:
        fd = os.open(MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return set()
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return set()
        text = os.read(fd, 65536).decode("utf-8", "replace")
    finally:
        os.close(fd)
    names = set()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "/" not in line and line not in (".", ".."):
            names.add(line)
    return names


def prepare_out_dir(path: Path, *, submission_root: Path | None = None) -> OutDir:
    """Create or verify the report directory `path` and empty it of a previous grade's
    files; raise UnsafePath saying why it cannot be used."""
    path = Path(path)
    shown = str(path)
    if path.is_symlink():
        raise UnsafePath(f"--out {shown} is a symbolic link; give a real directory (the grader "
                         "never writes reports through a link)")
    if path.exists() and not path.is_dir():
        raise UnsafePath(f"--out {shown} exists and is not a directory")
    if submission_root is not None and is_within(path, submission_root):
        raise UnsafePath(f"--out {shown} is inside the submission {submission_root}: its files "
                         "could redirect the reports and the next candidate would see them; "
                         "write the reports outside it (e.g. --out ../grade-out)")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        pass
    fd = os.open(os.fspath(path), _DIR_FLAGS)   # O_NOFOLLOW: a link swapped in now is refused
    try:
        if os.fstat(fd).st_mode & stat.S_IWOTH:
            raise UnsafePath(f"--out {shown} is writable by every user (anyone could replace the "
                             "reports in it); give a directory only you can write")
        known = KNOWN_OUTPUTS | _listed_in_marker(fd)
        entries = os.listdir(fd)
        foreign = sorted(n for n in entries if n not in known and not _is_our_temp(n))
        if foreign:
            more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
            raise UnsafePath(f"--out {shown} already holds files faultdrill did not write "
                             f"({', '.join(foreign[:5])}{more}); give a new or empty directory")
        for name in entries:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise UnsafePath(f"--out {shown}: {name} is a directory, not a previous report; "
                                 "give a new or empty directory")
            os.unlink(name, dir_fd=fd)             # a link is removed as a link
    except BaseException:
        os.close(fd)
        raise
    return OutDir(path, fd)


def _is_our_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


# --- removing candidate-touched trees -------------------------------------------------

def remove_tree(path: Path) -> list[str]:
    """Remove `path` and everything below it without following any symbolic link and
    without entering another file system; returns what could not be removed (empty when
    all is gone). A link at `path` itself is removed as a link."""
    path = Path(path)
    errors: list[str] = []
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return errors
    except OSError as exc:
        return [f"{path}: {exc.strerror}"]
    if not stat.S_ISDIR(st.st_mode):
        try:
            os.unlink(path)
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror}")
        return errors
    parent = os.open(os.fspath(path.parent), _DIR_FLAGS & ~os.O_NOFOLLOW)
    try:
        _remove_dir_at(parent, path.name, st.st_dev, str(path), errors)
    finally:
        os.close(parent)
    return errors


def _open_for_removal(parent_fd: int, name: str) -> int:
    """Open directory `name` (never a link) and make it searchable and writable through
    the descriptor, so its entries can be listed and unlinked."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except PermissionError:
        # Mode 000 (as the grader is not root): change it through an O_PATH descriptor of
        # that very inode (a link would have been refused by O_NOFOLLOW + the type check).
        pfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        try:
            if not stat.S_ISDIR(os.fstat(pfd).st_mode):
                raise
            os.chmod(f"/proc/self/fd/{pfd}", 0o700)
        finally:
            os.close(pfd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & 0o700 != 0o700:
        try:
            os.fchmod(fd, mode | 0o700)
        except OSError:
            pass
    return fd


def _remove_dir_at(parent_fd: int, name: str, dev: int, shown: str, errors: list[str]) -> None:
    """Iterative post-order removal holding one directory descriptor at a time: going
    down opens a child by name (O_NOFOLLOW), going up opens '..' and checks it is the
    directory it came from (same device and inode). Each directory is listed once."""
    try:
        fd = _open_for_removal(parent_fd, name)
    except OSError as exc:
        errors.append(f"{shown}: {exc.strerror}")
        return
    top_parent = os.fstat(parent_fd)
    # Each level: [name in its parent, (dev, ino) of that parent, shown path, names left].
    stack: list[list] = [[name, (top_parent.st_dev, top_parent.st_ino), shown, None]]
    try:
        while stack:
            level = stack[-1]
            entry_name, parent_id, where = level[0], level[1], level[2]
            if level[3] is None:
                level[3] = os.listdir(fd)
            pending: list[str] = level[3]
            descended = False
            while pending:
                child = pending.pop()
                try:
                    st = os.stat(child, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    try:
                        os.unlink(child, dir_fd=fd)
                    except OSError as exc:
                        errors.append(f"{where}/{child}: {exc.strerror}")
                    continue
                if st.st_dev != dev:
                    errors.append(f"{where}/{child}: another file system is mounted there; not entered")
                    continue
                try:
                    child_fd = _open_for_removal(fd, child)
                except OSError as exc:
                    errors.append(f"{where}/{child}: {exc.strerror}")
                    continue
                here = os.fstat(fd)
                stack.append([child, (here.st_dev, here.st_ino), f"{where}/{child}", None])
                os.close(fd)
                fd = child_fd
                descended = True
                break
            if descended:
                continue
            # This directory is as empty as it will get: go up and remove it.
            stack.pop()
            up = os.open("..", _DIR_FLAGS, dir_fd=fd) if stack else None
            if up is not None:
                ust = os.fstat(up)
                if (ust.st_dev, ust.st_ino) != parent_id:
                    os.close(up)
                    errors.append(f"{where}: its parent changed during removal; stopped")
                    return
            os.close(fd)
            fd = -1
            try:
                os.rmdir(entry_name, dir_fd=up if up is not None else parent_fd)
            except OSError as exc:
                errors.append(f"{where}: {exc.strerror}")
            if up is not None:
                fd = up
    finally:
        if fd >= 0:
            os.close(fd)
