"""No idempotency in agents: a retried step runs twice.

The mistake: agents store each result but never look in memory before executing, so a
retry after a lost reply executes the step again instead of replaying it (SPEC §10.4).
Patched: ``AgentService.__init__`` gives the agent a store whose ``get`` finds nothing
(writes, metrics and readiness still use the real store).
"""
from launch_common import patch


class _WriteOnlyStore:
    def __init__(self, store):
        self._store = store

    def get(self, task_id):
        return None

    def __getattr__(self, name):
        return getattr(self._store, name)

    def __len__(self):
        return len(self._store)


def _make(original):
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.store = _WriteOnlyStore(self.store)
    return __init__


patch("reference_impl.agents.service:AgentService.__init__", _make)
