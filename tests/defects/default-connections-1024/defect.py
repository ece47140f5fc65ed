"""FD_MAX_CONNECTIONS defaults to 1024 instead of 128.

The mistake: the connection cap's default is taken from the usual file-descriptor limit
(1024) instead of SPEC §2's table (`FD_MAX_CONNECTIONS` default `128`). With the variable
set, the cap is right; unset (or empty), a service keeps a 129th connection open instead
of answering it `busy` and closing it. Patched: ``load_config`` fills in 1024 when the
variable is unset or blank.
"""
from launch_common import patch_default

patch_default("FD_MAX_CONNECTIONS", "max_connections", 1024)
