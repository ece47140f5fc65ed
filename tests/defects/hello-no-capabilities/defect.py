"""hello_ok lists no capabilities.

The mistake: hello answers with the version and the role but an empty capabilities list,
so a peer cannot learn which message types the service serves (SPEC §14.1: capabilities
lists the message types it serves beyond hello). Patched: ``FramedService.hello`` empties
the list.
"""
from launch_common import patch


def _make(original):
    def hello(self, request, trace):
        reply = original(self, request, trace)
        if isinstance(reply.get("payload"), dict):
            reply["payload"]["capabilities"] = []
        return reply
    return hello


patch("reference_impl.agents.base:FramedService.hello", _make)
