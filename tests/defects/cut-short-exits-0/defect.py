"""A drain that cut work short still exits 0.

The mistake: the process reports a clean shutdown whatever the drain found, so a
supervisor cannot tell a SIGTERM that lost a task from one that finished everything
(SPEC §17: exit 1 when work was cut short by the grace period, else 0). The waiting
client is still answered timeout. Patched: ``Node.drain`` always says the drain was clean.
"""
from launch_common import patch


def _make(original):
    def drain(self, grace_s):
        original(self, grace_s)
        return True
    return drain


patch("reference_impl.runtime.lifecycle:Node.drain", _make)
