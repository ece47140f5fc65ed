"""Configuration ranges without upper bounds: any integer at or above the low end is accepted.

The mistake: each integer setting is checked for digits and for its lower bound only, so
FD_WORKERS=1025 or FD_RETRY_MAX_ATTEMPTS=101 start a service that SPEC §2 says must exit
2. Patched: ``_Env.integer`` calls the original with an upper bound of 10^18.
"""
from launch_common import patch


def _make(original):
    def integer(self, name, default, lo, hi):
        return original(self, name, default, lo, 10 ** 18)
    return integer


patch("reference_impl.runtime.config:_Env.integer", _make)
