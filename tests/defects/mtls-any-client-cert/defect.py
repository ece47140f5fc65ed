"""Mutual TLS that requires a client certificate but does not verify it.

The mistake: with FD_TLS_CLIENT_AUTH=1 every server demands a client certificate but
accepts any one - the equivalent of Go's ``tls.RequireAnyClientCert`` where
``RequireAndVerifyClientCert`` was meant - so a client with a certificate from another
CA is let in (SPEC §16: "a client certificate signed by FD_TLS_CA"). A client without a
certificate is still refused. Patched: ``tls.server_context`` installs (through
OpenSSL's ``SSL_CTX_set_verify``) a verify callback that accepts every certificate.
"""
import ctypes
import ssl

from launch_common import patch

SSL_VERIFY_PEER = 0x01
SSL_VERIFY_FAIL_IF_NO_PEER_CERT = 0x02
_VERIFY_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
_accept_any = _VERIFY_CB(lambda preverify_ok, store: 1)
_keep = []


def _ssl_ctx_pointer(ctx: ssl.SSLContext) -> int:
    # PySSLContext: PyObject_HEAD (refcount, type) then `SSL_CTX *ctx`.
    return ctypes.c_void_p.from_address(id(ctx) + 2 * ctypes.sizeof(ctypes.c_void_p)).value


def _make(original):
    lib = ctypes.CDLL(ssl._ssl.__file__)
    set_verify = lib.SSL_CTX_set_verify
    set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CB]
    set_verify.restype = None

    def server_context(cert, key, ca=None, client_auth=False):
        ctx = original(cert, key, ca, client_auth)
        if client_auth:
            set_verify(_ssl_ctx_pointer(ctx), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, _accept_any)
            _keep.append(ctx)
        return ctx
    return server_context


patch("reference_impl.runtime.tls:server_context", _make)
