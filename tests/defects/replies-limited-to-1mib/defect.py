"""Agent replies read with the 1 MiB request limit: large tasks fail.

The mistake: the orchestrator reads agent replies with the same 1 MiB limit it applies to
client requests, so the collect reply of a large valid task (10,000 records, about 2 MB)
is refused as unparseable and the task fails with upstream_failed (SPEC §4: readers of
replies accept 16 MiB). Patched: the agent client's ``MAX_REPLY_BYTES`` is 1 MiB.
"""
from launch_common import patch

patch("reference_impl.orchestrator.client:MAX_REPLY_BYTES", lambda original: 1_048_576, expect=int)
