"""A malformed frame closes the connection.

The mistake: after answering malformed_frame the server hangs up, although only an
oversized frame makes the rest of a stream untrustworthy; a client that sent one bad line
loses its connection and every request queued behind it (SPEC §4: after malformed_frame
the connection stays open and the next frame is read). Patched: framing's
``_malformed`` marks its reply "close the connection".
"""
from launch_common import patch


def _make(original):
    def _malformed(message, reason):
        decoded = original(message, reason)
        return decoded._replace(close=True)
    return _malformed


patch("reference_impl.protocol.framing:_malformed", _make)
