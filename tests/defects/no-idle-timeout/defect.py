"""No idle timeout: a protocol connection that sends nothing is kept open forever.

The mistake: FD_IDLE_TIMEOUT_MS is read and validated but never applied, so a silent or
vanished peer holds a connection slot (and a thread) indefinitely (SPEC §4: a server
never waits unboundedly on a peer).
Patched: ``ProtocolServer.__init__`` replaces the configured idle timeout by a year.
"""
from launch_common import patch


def _make(original):
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.idle_timeout_s = 365 * 24 * 3600.0
    return __init__


patch("reference_impl.runtime.server:ProtocolServer.__init__", _make)
