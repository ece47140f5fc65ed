"""The token written to logs: a refused request's token is logged "to help debugging".

The mistake: the unauthorized log line records the token the client presented. The
logger still redacts the service's own token, so what leaks is every wrong token a
client sent - SPEC §12 forbids that too ("not even a wrong token a client sent").
Patched: ``FramedService._refuse`` logs ``presented_token`` before refusing.
"""
from launch_common import patch


def _make(original):
    def _refuse(self, obj, err, started, conn):
        if err.name == "unauthorized":
            self.log.warn("refusing token", event="auth_debug", presented_token=obj.get("token"))
        return original(self, obj, err, started, conn)
    return _refuse


patch("reference_impl.agents.base:FramedService._refuse", _make)
