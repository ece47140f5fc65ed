"""No connection cap: every connection is accepted.

The mistake: FD_MAX_CONNECTIONS is validated but never applied, so a flood of connections
costs a thread and a descriptor each until the process runs out (SPEC §15: one more than
the cap gets a busy frame and is closed). Patched: ``ProtocolServer.__init__`` replaces the
cap by a million.
"""
from launch_common import patch


def _make(original):
    def __init__(self, *args, **kwargs):
        kwargs["max_connections"] = 1_000_000
        original(self, *args, **kwargs)
    return __init__


patch("reference_impl.runtime.server:ProtocolServer.__init__", _make)
