"""A connection reset ends the step: transport failures other than timeouts are final.

The mistake: the orchestrator's client catches ``ConnectionResetError`` as if the agent
had refused the request for good, so a step whose connection is reset once fails the
task at once instead of being retried (SPEC §10.3: a reset is a transport failure,
retryable). Timeouts are still retried, so the backoff and deadline behaviour is intact.
Patched: ``AgentClient.call`` turns a "connection reset" transport failure into a
definite, non-retryable error reply.
"""
from launch_common import patch


def _make(original):
    from reference_impl.orchestrator.pipeline import Attempt

    def call(self, step, payload, **kwargs):
        result = original(self, step, payload, **kwargs)
        cause = result.error or {}
        if result.kind == "transport" and "reset" in str(cause.get("message", "")):
            return Attempt("error", error=dict(cause, retryable=False, definite=True))
        return result
    return call


patch("reference_impl.orchestrator.client:AgentClient.call", _make)
