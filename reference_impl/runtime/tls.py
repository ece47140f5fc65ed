"""TLS contexts for the protocol port (SPEC §16).

Kept apart from the server so that the server only ever sees an ``ssl.SSLContext`` (or
None) and the orchestrator's agent client can build the matching client side from the
same settings. TLS 1.2 is the floor on both sides; the HTTP side port never uses TLS.
"""

from __future__ import annotations

import ssl


def server_context(cert: str, key: str, ca: str | None = None,
                   client_auth: bool = False) -> ssl.SSLContext:
    """A server-side context; with ``client_auth`` it demands a client cert signed by ``ca``.

    Mutual TLS without a CA bundle cannot verify anything, so that combination is an
    error rather than a silent downgrade.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile=cert, keyfile=key)
    if client_auth:
        if not ca:
            raise ValueError("client authentication requires a CA bundle")
        ctx.load_verify_locations(cafile=ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_context(ca: str, cert: str | None = None, key: str | None = None,
                   client_auth: bool = False) -> ssl.SSLContext:
    """A client-side context verifying the peer against ``ca`` (hostname checked).

    With ``client_auth`` the client presents ``cert``/``key`` so that servers running
    with ``FD_TLS_CLIENT_AUTH=1`` accept it.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=ca)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if client_auth and cert and key:
        ctx.load_cert_chain(certfile=cert, keyfile=key)
    return ctx
