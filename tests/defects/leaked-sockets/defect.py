"""Leaked sockets: every connection the orchestrator opens to an agent stays open.

The mistake: after a successful attempt the connection is neither returned to the pool
nor closed - it is only kept in a list - so each attempt opens a new connection and the
agents' connection slots and the orchestrator's file descriptors fill up until the
agents' idle timeout reclaims them.
Patched: ``AgentClient._checkin`` keeps a reference to the connection (so garbage
collection cannot close it either) instead of pooling or closing it.
"""
from launch_common import patch

_LEAKED = []


def _make(original):
    def _checkin(self, conn):
        _LEAKED.append(conn)
    return _checkin


patch("reference_impl.orchestrator.client:AgentClient._checkin", _make)
