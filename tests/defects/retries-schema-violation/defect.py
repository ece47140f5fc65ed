"""Retries schema_violation replies: "the agent may be mid-upgrade, try again".

The mistake: the orchestrator treats an agent's schema_violation (21) error reply as
transient and retries it until the attempts run out, although the agent said
definitively that the request does not match its schema and will say so forever (SPEC
§10.3: never retry a definite, non-retryable error). Every other error reply is handled
right. Patched: ``AgentClient.call`` turns a schema_violation error reply into a
transport failure.
"""
from launch_common import patch


def _make(original):
    from reference_impl.orchestrator.pipeline import Attempt

    def call(self, step, payload, **kwargs):
        result = original(self, step, payload, **kwargs)
        if result.kind == "error" and isinstance(result.error, dict) \
                and result.error.get("name") == "schema_violation":
            return Attempt("transport", error=result.error)
        return result
    return call


patch("reference_impl.orchestrator.client:AgentClient.call", _make)
