"""The three agent services (collector, analyzer, reporter): one generic service, one step each.

``base.FramedService`` is the frame path every service shares (orchestrator included);
``service.AgentService`` adds idempotency and durable memory around a pure step.
"""
