"""FD_MAX_CONNECTIONS defaults to 1024 instead of 128.

The mistake: the connection cap's default is taken from the usual file-descriptor limit
(1024) instead of SPEC §2's table (`FD_MAX_CONNECTIONS` default `128`). With the variable
set, the cap is right; unset (or empty), a service keeps a 129th connection open instead
of answering it `busy` and closing it. Patched: ``load_config`` fills in 1024 when the
variable is unset or blank.
"""
import dataclasses

from launch_common import patch


def _make(original):
    def load_config(role, environ):
        config = original(role, environ)
        if not (environ.get("FD_MAX_CONNECTIONS") or "").strip(" \t"):
            config = dataclasses.replace(config, max_connections=1024)
        return config
    return load_config


patch("reference_impl.runtime.config:load_config", _make)
