"""Retries on definite errors: every error reply from an agent is retried.

The mistake: the orchestrator treats an agent's error reply like a lost connection, so
``unauthorized``, ``schema_violation`` or ``unsupported_version`` are retried until the
attempts run out, although they will give the same answer forever (SPEC §10.3).
Patched: ``AgentClient.call`` turns every error reply into a transport failure.
"""
from launch_common import patch


def _make(original):
    from reference_impl.orchestrator.pipeline import Attempt

    def call(self, step, payload, **kwargs):
        result = original(self, step, payload, **kwargs)
        if result.kind == "error":
            return Attempt("transport", error=result.error)
        return result
    return call


patch("reference_impl.orchestrator.client:AgentClient.call", _make)
