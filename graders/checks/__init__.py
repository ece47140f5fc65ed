"""Grader checks, one module per area; each check observes a submission only through the
contract (protocol client, HTTP side port, logs, memory files, proxy records) and compares
with the independent oracle. Importing this package registers every check."""
from graders.checks import (connections, contract, drift, durability, faults,  # noqa: F401
                            idempotency, lifecycle, memory, observability, overload, pipeline, security)

ALL_MODULES = (pipeline, idempotency, security, drift, faults, connections, memory, durability,
               observability, overload, lifecycle, contract)
