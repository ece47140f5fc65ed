"""SIGTERM without a drain: the process stops at once.

The mistake: on SIGTERM the service closes its ports and exits without finishing the
requests and tasks it already received, so a client mid-task loses its reply (SPEC §17:
finish what was received, answering its clients, within FD_SHUTDOWN_GRACE_MS). Patched:
``Node.drain`` returns at once, reporting work cut short.
"""
from launch_common import patch

patch("reference_impl.runtime.lifecycle:Node.drain", lambda original: lambda self, grace_s: False)
