"""No fsync at all: records are written and renamed into place, never synced.

The mistake: the store writes each record to a temporary file and renames it over the
target - atomic against a crash of the process - but never calls fsync, neither on the
file nor on the directory ("the OS will write it out"). A process crash keeps the page
cache, so nothing is lost on SIGKILL; a power loss after the reply loses the record, or
leaves an empty file where it was renamed (SPEC §11.2). Patched: the store module's
``os.fsync`` does nothing.
"""
from launch_common import patch


class _NoFsyncOs:
    """The os module, except that fsync returns at once without syncing anything."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    @staticmethod
    def fsync(fd):
        return None


patch("reference_impl.memory.store:os", lambda original: _NoFsyncOs(original))
