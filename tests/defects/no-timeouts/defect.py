"""No timeouts: a blackholed agent hangs the pipeline.

The mistake: sockets to agents are blocking without a read timeout, so an agent that
accepts a request and never answers holds the task (and a worker) far past
FD_ATTEMPT_TIMEOUT_MS and FD_TASK_DEADLINE_MS (SPEC §10.3). Connecting is still bounded.
Patched: ``AgentClient._connect`` returns the socket in blocking mode, ignoring every
later ``settimeout``.
"""
from launch_common import patch


class _Blocking:
    def __init__(self, sock):
        sock.settimeout(None)
        self._sock = sock

    def settimeout(self, value):
        return None

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _make(original):
    def _connect(self, deadline, step, timeout_ms):
        return _Blocking(original(self, deadline, step, timeout_ms))
    return _connect


patch("reference_impl.orchestrator.client:AgentClient._connect", _make)
