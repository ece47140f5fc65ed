"""Atomically swap two directory entries (Linux ``renameat2(..., RENAME_EXCHANGE)``).

Why: the record store recycles inodes instead of deleting one file and creating another
on every write (see ``store.py``). Replacing a record with ``os.replace`` frees the old
version's inode; exchanging the new temporary file with the target is just as atomic
(after a crash at any moment the target holds the old or the new complete record) and
leaves the old version at the temporary name, ready to be truncated and reused. The
standard library has no wrapper for ``renameat2``, so it is called through ``ctypes``;
where it is missing (another OS, an old libc, a filesystem without the flag) ``exchange``
says so and the store falls back to ``os.replace``.
"""
from __future__ import annotations

import errno
import os

__all__ = ["exchange", "supported"]

AT_FDCWD = -100
RENAME_EXCHANGE = 2

try:
    import ctypes

    _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    _renameat2.restype = ctypes.c_int
except (ImportError, OSError, AttributeError):
    _renameat2 = None

# Errors meaning "this system cannot exchange": remembered, so the store stops asking.
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP),
                errno.EOPNOTSUPP}
_disabled = _renameat2 is None


def supported() -> bool:
    return not _disabled


def exchange(a: os.PathLike | str, b: os.PathLike | str) -> bool:
    """Swap the entries ``a`` and ``b`` (both must exist) in one atomic step.

    True when swapped; False when the system cannot (the caller uses ``os.replace``) or
    one of the two does not exist (ENOENT). Other failures raise OSError."""
    global _disabled
    if _disabled:
        return False
    if _renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        _disabled = True
        return False
    if err == errno.ENOENT:
        return False
    raise OSError(err, os.strerror(err), os.fspath(a), None, os.fspath(b))
