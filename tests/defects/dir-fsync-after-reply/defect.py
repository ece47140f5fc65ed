"""Directory fsync after the reply: renames are made durable by a timer, later.

The mistake: to save fsyncs, the directory is synced in the background every half
second ("group commit on a timer") and the reply does not wait for it, so every task is
acknowledged while its rename is not yet durable; a power loss in that window loses an
acknowledged record (SPEC §11.2: the reply is sent only after the directory fsync).
Nothing changes for a process crash or for any reader. Patched: the store's
``_sync_records_dir`` only records that a sync is due; one background thread per store
does the real fsync every 0.5 s (one thread, as a candidate would write it: a thread
per write would be a second mistake, running out of threads under load).
"""
import threading

from launch_common import patch

INTERVAL_S = 0.5


def _make(original):
    def later(self, generation):
        with _guard:
            state = _due.setdefault(id(self), {"store": self, "generation": 0})
            state["generation"] = max(state["generation"], generation)
            if id(self) not in _threads:
                t = threading.Thread(target=_syncer, args=(id(self), original), daemon=True,
                                     name="dir-sync-timer")
                _threads[id(self)] = t
                t.start()
    return later


_guard = threading.Lock()
_due: dict = {}
_threads: dict = {}


def _syncer(key, original):
    stop = threading.Event()
    while not stop.wait(INTERVAL_S):
        with _guard:
            state = _due.get(key)
            store, generation = (state["store"], state["generation"]) if state else (None, 0)
        if store is not None and generation:
            original(store, generation)


patch("reference_impl.memory.store:RecordStore._sync_records_dir", _make)
