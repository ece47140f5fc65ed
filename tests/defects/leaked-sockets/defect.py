"""Leaked sockets: every connection the orchestrator opens to an agent stays open.

The mistake: one connection per attempt (and per readiness probe) that is never closed;
the agents' connection slots and the orchestrator's file descriptors fill up until the
agents' idle timeout reclaims them.
Patched: ``AgentClient._connect`` returns a socket whose ``close`` does nothing and
keeps a reference to it so that garbage collection cannot close it either.
"""
from launch_common import patch

_LEAKED = []


class _Unclosed:
    def __init__(self, sock):
        self._sock = sock
        _LEAKED.append(sock)

    def close(self):
        return None

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _make(original):
    def _connect(self, deadline, step, timeout_ms):
        return _Unclosed(original(self, deadline, step, timeout_ms))
    return _connect


patch("reference_impl.orchestrator.client:AgentClient._connect", _make)
