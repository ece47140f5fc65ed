"""No real health: the orchestrator's /readyz always says ready.

The mistake: a hard-coded readiness endpoint that does not look at the agents, so a
load balancer keeps sending work to an orchestrator whose reporter is dead or whose
collector speaks another protocol version (SPEC §13 readiness).
Patched: ``OrchestratorService.readiness`` returns (True, []).
"""
from launch_common import patch

patch("reference_impl.orchestrator.service:OrchestratorService.readiness",
      lambda original: (lambda self: (True, [])))
