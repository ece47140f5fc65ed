"""Directory fsync after the reply: renames are made durable by a timer, later.

The mistake: to save fsyncs, the directory is synced in the background every half
second ("group commit on a timer") and the reply does not wait for it, so every task is
acknowledged while its rename is not yet durable; a power loss in that window loses an
acknowledged record (SPEC §11.2: the reply is sent only after the directory fsync).
Nothing changes for a process crash or for any reader. Patched: the store's
``_sync_records_dir`` schedules the fsync 0.5 s later instead of doing it.
"""
import threading

from launch_common import patch


def _make(original):
    def later(self, generation):
        timer = threading.Timer(0.5, original, args=(self, generation))
        timer.daemon = True
        timer.start()
    return later


patch("reference_impl.memory.store:RecordStore._sync_records_dir", _make)
