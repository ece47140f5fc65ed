"""Corrupt memory deleted instead of quarantined.

The mistake: a corrupt record is counted and logged, but then removed, destroying the
evidence an operator needs (SPEC §11.4: move it into quarantine/, never delete it).
Patched: ``RecordStore._quarantine`` unlinks the file (a directory cannot be unlinked
and is left in place) and reports ``quarantined_to`` as None.
"""
import os

from launch_common import patch


def _make(original):
    def _quarantine(self, path, reason):
        self.counters["corruptions"] += 1
        try:
            os.unlink(path)
        except OSError:
            pass
        if self._on_corrupt is not None:
            self._on_corrupt(path, reason, None)
        return None
    return _quarantine


patch("reference_impl.memory.store:RecordStore._quarantine", _make)
