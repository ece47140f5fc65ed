"""Agent certificates not verified: the orchestrator accepts any certificate.

The mistake: the orchestrator connects to agents over TLS but turns verification off
("the network is internal", or to silence a certificate error once), so the traffic is
encrypted but an impostor holding any certificate - another CA's, another host's, a
self-signed one - receives the work (SPEC §16: verify against FD_TLS_CA, hostname
checked). Servers and mutual TLS are unchanged. Patched: ``tls.client_context`` returns
a context with ``check_hostname = False`` and ``CERT_NONE``.
"""
import ssl

from launch_common import patch


def _make(original):
    def client_context(ca, cert=None, key=None, client_auth=False):
        ctx = original(ca, cert, key, client_auth)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return client_context


patch("reference_impl.runtime.tls:client_context", _make)
