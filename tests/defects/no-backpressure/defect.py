"""No back-pressure: the orchestrator admits every submit and queues without bound.

The mistake: FD_WORKERS bounds concurrency but nothing bounds the queue, so overload
turns into ever longer waits instead of a prompt ``busy`` (SPEC §15).
Patched: ``OrchestratorService.__init__`` sets the admission capacity to "unbounded".
"""
import sys

from launch_common import patch


def _make(original):
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.capacity = sys.maxsize
    return __init__


patch("reference_impl.orchestrator.service:OrchestratorService.__init__", _make)
