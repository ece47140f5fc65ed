"""Fault injection toolkit: the TCP fault proxy, a line relay that loses or resets chosen
frames, a fake agent (failing or drifted), memory damage, auth attacks, drifted client
frames and hypothesis strategies for hostile frames."""
