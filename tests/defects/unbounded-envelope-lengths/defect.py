"""Off by one on msg_id and task_id lengths: one character too many is accepted.

The mistake: the length checks compare with `<=` on a count that is one too small (or a
limit one too large), so a 129-character msg_id or a 65-character task_id is served
instead of being a schema_violation (SPEC §5: msg_id 1–128 characters, task_id at most
64). Patched: the envelope's ``validate`` sees a field of exactly one character over its
limit cut to the limit.
"""
from launch_common import patch


def _make(original):
    def validate(instance, schema_name, path="$"):
        if schema_name == "envelope_request" and isinstance(instance, dict):
            cut = dict(instance)
            for name, limit in (("msg_id", 128), ("task_id", 64)):
                if isinstance(cut.get(name), str) and len(cut[name]) == limit + 1:
                    cut[name] = cut[name][:limit]
            instance = cut
        return original(instance, schema_name, path)
    return validate


patch("reference_impl.protocol.envelope:validate", _make)
