"""hello handled before the version check: a hello in a v2 envelope is answered hello_ok.

The mistake: hello is treated as the negotiation itself, so its envelope version is never
checked and a v2 envelope gets hello_ok for the versions it lists (SPEC §7 step 3: the
version check comes first for every type, hello included). Patched: ``parse_request``
reads a hello's envelope as v1.
"""
from launch_common import patch


def _make(original):
    def parse_request(obj, *, token, served_types):
        if isinstance(obj, dict) and obj.get("type") == "hello" and "v" in obj:
            obj = dict(obj, v=1)
        return original(obj, token=token, served_types=served_types)
    return parse_request


patch("reference_impl.agents.base:parse_request", _make)
