"""What every service shares at its edges: config, logs, metrics, servers, HTTP.

Submodules are imported directly (``from reference_impl.runtime.config import ...``);
nothing is re-exported here so importing one edge never drags in the others.
"""
