"""A crash on corrupt memory: a damaged record file stops the service from starting.

The mistake: loading memory raises on the first file that is not a valid record instead
of moving it aside and going on (SPEC §11.4: keep running, quarantine, log, count).
Patched: ``RecordStore._quarantine`` raises instead of quarantining.
"""
from launch_common import patch


class CorruptMemory(RuntimeError):
    pass


def _make(original):
    def _quarantine(self, path, reason):
        raise CorruptMemory(f"corrupt memory file {path}: {reason}")
    return _quarantine


patch("reference_impl.memory.store:RecordStore._quarantine", _make)
