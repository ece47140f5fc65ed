"""Unknown HTTP paths answer 200.

The mistake: the side port falls back to a generic 200 answer for any path it does not
know, so a probe or a scraper pointed at a wrong path believes it is talking to a healthy
endpoint (SPEC §13: unknown paths -> 404). Patched: ``SidePort.dispatch`` turns a 404 for
a path outside /api/ into 200 {"status": "ok"}.
"""
from launch_common import patch


def _make(original):
    from reference_impl.runtime.http import json_response

    def dispatch(self, path):
        response = original(self, path)
        if response[0] == 404 and not path.startswith("/api/"):
            return json_response(200, {"status": "ok"})
        return response
    return dispatch


patch("reference_impl.runtime.http:SidePort.dispatch", _make)
