"""Version negotiation ignored: work is sent to an agent that shares no protocol version.

The mistake: the orchestrator says hello but does not act on the answer, so an agent
that refused with ``unsupported_version`` still gets the work request (SPEC §14.1).
Readiness still reflects the failed hello; only the pipeline ignores it.
Patched: ``AgentClient._hello`` reports an ``unsupported_version`` refusal as success.
"""
from launch_common import patch


def _make(original):
    def _hello(self, sock, decoder, deadline, step, timeout_ms):
        err = original(self, sock, decoder, deadline, step, timeout_ms)
        if err is not None and err.get("name") == "unsupported_version":
            return None
        return err
    return _hello


patch("reference_impl.orchestrator.client:AgentClient._hello", _make)
