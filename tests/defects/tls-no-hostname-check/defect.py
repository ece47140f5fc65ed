"""No hostname check: an agent certificate from the right CA is accepted for any host.

The mistake: the orchestrator verifies the agent's certificate chain against FD_TLS_CA
but not the name in it, so any service holding a certificate from that CA - issued for
another host - can impersonate the collector (SPEC §16: "hostname checked against the
host in the agent address"). Patched: ``tls.client_context`` sets ``check_hostname =
False`` (the chain is still verified).
"""
from launch_common import patch


def _make(original):
    def client_context(ca, cert=None, key=None, client_auth=False):
        ctx = original(ca, cert, key, client_auth)
        ctx.check_hostname = False
        return ctx
    return client_context


patch("reference_impl.runtime.tls:client_context", _make)
