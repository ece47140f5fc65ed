"""No token check: every service accepts any token, a wrong one or none at all.

The mistake: authentication left for later ("it is an internal network") - the token
comparison always says yes, so unauthenticated frames are executed and stored.
Patched: ``reference_impl.protocol.envelope.token_matches`` always returns True.
"""
from launch_common import patch

patch("reference_impl.protocol.envelope:token_matches",
      lambda original: (lambda presented, token: True))
