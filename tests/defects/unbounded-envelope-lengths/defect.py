"""No length limits on msg_id and task_id: any length is accepted.

The mistake: the envelope check tests the characters of msg_id and task_id but not their
length, so a 129-character msg_id or a 65-character task_id is served (and a task_id that
long names a record file) instead of being a schema_violation (SPEC §5: msg_id 1–128
characters, task_id at most 64). Patched: the envelope's ``validate`` sees both fields
cut to their maximum length.
"""
from launch_common import patch


def _make(original):
    def validate(instance, schema_name, path="$"):
        if schema_name == "envelope_request" and isinstance(instance, dict):
            cut = dict(instance)
            for name, limit in (("msg_id", 128), ("task_id", 64)):
                if isinstance(cut.get(name), str):
                    cut[name] = cut[name][:limit]
            instance = cut
        return original(instance, schema_name, path)
    return validate


patch("reference_impl.protocol.envelope:validate", _make)
