"""FD_QUEUE_SIZE defaults to 128 instead of 64.

The mistake: the queue's default is copied from the neighbouring row of SPEC §2's table
(`FD_MAX_CONNECTIONS`, 128) instead of its own (`FD_QUEUE_SIZE` default `64`). With the
variable set, admission is right; unset (or empty), the orchestrator queues up to 128
tasks, so the 65th waiting task is admitted instead of being answered `busy`. Patched:
``load_config`` fills in 128 when the variable is unset or blank.
"""
from launch_common import patch_default

patch_default("FD_QUEUE_SIZE", "queue_size", 128)
