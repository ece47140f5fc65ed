"""The orchestrator talks to agents in plaintext even when FD_TLS_CA is set.

The mistake: the servers are wrapped in TLS but the orchestrator's agent client never
is, so with TLS configured every step fails at the agents' TLS-only ports (SPEC §16: with
FD_TLS_CA the orchestrator connects to agents over TLS and verifies them). Patched: the
reference's ``tls.client_context`` (used only for the agent client) gives no context.
"""
from launch_common import patch

patch("reference_impl.runtime.tls:client_context", lambda original: lambda *args, **kwargs: None)
