"""Unknown envelope fields accepted: drift in a request goes unnoticed.

The mistake: the envelope check ignores members it does not know instead of refusing
them, so a client speaking a drifted (v2-shaped) envelope is served as if nothing were
wrong (SPEC §5 and §14.2: the envelope is closed; an unknown field is a schema_violation).
Patched: the envelope's ``validate`` sees only the known members.
"""
from launch_common import patch

KNOWN = ("v", "type", "msg_id", "task_id", "token", "traceparent", "payload")


def _make(original):
    def validate(instance, schema_name, path="$"):
        if schema_name == "envelope_request" and isinstance(instance, dict):
            instance = {k: v for k, v in instance.items() if k in KNOWN}
        return original(instance, schema_name, path)
    return validate


patch("reference_impl.protocol.envelope:validate", _make)
