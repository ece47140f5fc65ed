"""Fault injection toolkit: the TCP fault proxy, memory damage, auth attacks, schema drift
(including a drifted agent) and hypothesis strategies for hostile frames."""
