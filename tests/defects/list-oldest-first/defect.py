"""list answers oldest first.

The mistake: the newest tasks are selected but returned in the order they were submitted,
so a client reading the first entry sees the oldest of them (SPEC §9.2: list_ok is newest
first, at most `limit`). Patched: ``TaskTable.list_payload`` reverses its list.
"""
from launch_common import patch


def _make(original):
    def list_payload(self, limit=100):
        payload = original(self, limit)
        payload["tasks"] = list(reversed(payload["tasks"]))
        return payload
    return list_payload


patch("reference_impl.orchestrator.tasks:TaskTable.list_payload", _make)
