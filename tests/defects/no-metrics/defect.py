"""No metrics: GET /metrics is not implemented (404) on any service.

The mistake: observability left out. Health endpoints work; the Prometheus exposition
(SPEC §13.1) does not exist, so nothing can be counted from outside - including the
"executed once" evidence that idempotency, auth and memory checks rely on.
Patched: ``SidePort.dispatch`` answers 404 for /metrics.
"""
from launch_common import patch


def _make(original):
    from reference_impl.runtime.http import json_response

    def dispatch(self, path):
        if path.split("?", 1)[0] == "/metrics":
            return json_response(404, {"error": "not_found"})
        return original(self, path)
    return dispatch


patch("reference_impl.runtime.http:SidePort.dispatch", _make)
