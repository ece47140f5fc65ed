"""Drivers start one submission's four services and give the graders control over them.

`base` defines the interface every check codes against; `process` runs services as local
process groups (the default); other drivers (docker) implement the same `Deployment`.
"""
from .base import CleanupReport, Deployment, Driver, Endpoint, StartError

__all__ = ["CleanupReport", "Deployment", "Driver", "Endpoint", "StartError"]
