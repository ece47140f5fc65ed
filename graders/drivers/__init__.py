"""Drivers start one submission's four services and give the graders control over them.

`base` defines the interface every check codes against; `process` runs services as local
process groups (the default); other drivers (docker) implement the same `Deployment`.
"""
from .base import CleanupReport, Deployment, Driver, Endpoint, StartError

__all__ = ["CleanupReport", "Deployment", "Driver", "Endpoint", "StartError"]

DRIVERS = ("process", "docker")


def get_driver(name: str, *, sandbox: bool | None = None) -> Driver:
    """The driver called `name`; docker's SDK is imported only when it is asked for.
    `sandbox` (process driver): True requires the sandbox, False runs unsandboxed, None
    follows graders.sandbox.enabled_by_default()."""
    if name == "process":
        from .process import ProcessDriver
        return ProcessDriver(sandbox=sandbox)
    if name == "docker":
        from graders.sandbox import enabled_by_default
        from .docker import DockerDriver
        # The network isolation is the Docker driver's sandbox: off when it is off.
        off = sandbox is False or (sandbox is None and not enabled_by_default())
        return DockerDriver(isolate_network=False if off else sandbox)
    raise ValueError(f"unknown driver {name!r}; drivers are {', '.join(DRIVERS)}")
