"""Retention never prunes: memory grows without bound.

The mistake: FD_MEMORY_RETENTION is read but the store never deletes the oldest records
after a write, so a service keeps every task it ever saw (SPEC §11.3: after storing, the
oldest are deleted until N remain). Patched: ``RecordStore._prune_locked`` deletes nothing.
"""
from launch_common import patch

patch("reference_impl.memory.store:RecordStore._prune_locked",
      lambda original: lambda self, *, recycle=True: 0)
