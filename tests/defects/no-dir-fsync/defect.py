"""No directory fsync: the record file is fsynced, the rename is never made durable.

The mistake: the store writes a temporary file, fsyncs it and renames it over the
target, but never fsyncs the directory, so the new directory entry may still be only in
memory when the reply goes out; a power loss then leaves no record (or the previous
version) although the task was acknowledged (SPEC §11.2: "and the directory fsynced").
SIGKILL keeps the page cache, so nothing is lost on a process crash. Patched:
``RecordStore._fsync_dir`` does nothing.
"""
from launch_common import patch

patch("reference_impl.memory.store:RecordStore._fsync_dir",
      lambda original: staticmethod(lambda directory: None), expect=staticmethod)
