"""Putting a fault server (a fake agent, or a relay in front of the real agent) in the
path of one agent for the length of a check.

Why here and not in the fault toolkit: this is the check-facing wiring — it reroutes the
agent's fault proxy of the check's topology to the fault server, notes the fault and the
heal in the check's evidence and restores the route however the check ends — while the
servers in `graders.faults` know nothing of checks.
"""
from __future__ import annotations

import contextlib

from graders.faults.fake_agent import MODES, FakeAgent


@contextlib.contextmanager
def _rerouted(ctx, role: str, make_server, fault: str, heal: str, *, wait_ready: bool):
    # The server is made only once the route is known: a check whose topology is missing
    # (a submission that never started) must not leave a listening fault server behind.
    topo = ctx.topo
    proxy = topo.agent_proxy[role]
    real = topo.deployment.endpoint(role)
    server = make_server((real.host, real.port))
    proxy.set_upstream(*server.address)
    proxy.close_connections()
    ctx.note("fault", fault)
    try:
        yield server
    finally:
        proxy.set_upstream(real.host, real.port)
        proxy.close_connections()
        server.close()
        ctx.note("heal", heal)
        if wait_ready:
            topo.wait_ready(5.0)


def fake_upstream(ctx, role: str, mode: str):
    """Route the orchestrator's `role` connections to a FakeAgent through the proxy; the
    deployment is waited ready again afterwards (a fake may have made it unready)."""
    if mode not in MODES:
        raise ValueError(f"unknown fake agent mode {mode!r}")
    return _rerouted(ctx, role, lambda _real: FakeAgent(role, mode),
                     f"{role} replaced by a fake agent that {MODES[mode]}", f"{role} restored", wait_ready=True)


def relayed_upstream(ctx, role: str, make_relay, *args, what: str):
    """Route the orchestrator's `role` connections through `make_relay((host, port), *args)`
    (e.g. a ReplyDropper or WorkResetter) in front of the real agent; `what` says what the
    relay does, for the evidence."""
    return _rerouted(ctx, role, lambda real: make_relay(real, *args), f"{role}: {what}",
                     f"{role} reached directly again", wait_ready=False)
