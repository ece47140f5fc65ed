"""Stage 5, dropped-sockets: connection hygiene — idle connections are closed by the
server, and the orchestrator closes (or reuses, boundedly) what it opens to agents.

Why observed directly: a leaked socket or a missing idle timeout shows up elsewhere only
by accident (connection slots running out during some later check, depending on which
checks ran before). Here the agent proxies record every connection the orchestrator opens
and every close, so the number still open after a batch of tasks is counted, not
inferred; and an idle connection's close is timed from the client side.
"""
from __future__ import annotations

import time

from graders import oracle
from graders.checks.common import expect_ok, submit
from graders.checks.registry import CheckFailed, check
from graders.client import Connection, ConnectionClosed, make_request

AGENTS = ("collector", "analyzer", "reporter")
IDLE_TIMEOUT_MS = 1000
CLOSE_SLACK_S = 1.5          # polling granularity of a server plus the grader's own threads
EARLY_SLACK_S = 0.3
SETTLE_S = 1.0               # far below the shared FD_IDLE_TIMEOUT_MS (10 s)


def _open_links(proxy, start: int) -> list[int]:
    """Connection ids accepted by `proxy` since event index `start` and not closed yet."""
    opened, ended = [], set()
    for e in proxy.events[start:]:
        if e.kind == "open":
            opened.append(e.conn_id)
        elif e.kind in ("close", "reset", "refused"):
            ended.add(e.conn_id)
    return [c for c in opened if c not in ended]


def _restart_together(dep, roles: tuple[str, ...], env: dict | None) -> None:
    """Stop `roles`, then start them so that their start-ups overlap: every role but the
    last is started without waiting, the last waits; the caller then waits for readiness
    (the orchestrator is ready only once it has heard from its agents)."""
    for role in roles:
        dep.stop(role)
    for i, role in enumerate(roles):
        dep.start(role, env, wait=(i == len(roles) - 1))


def _hello(ctx) -> dict:
    return make_request("hello", {"versions": [1], "role": "orchestrator"}, token=ctx.token)


@check(id="security.idle_timeout", title="an idle protocol connection is closed after FD_IDLE_TIMEOUT_MS",
       items=["security.connection_hygiene"], weight=1, stage=5, challenge="dropped-sockets",
       timeout=40.0)
def idle_timeout(ctx):
    """The orchestrator and the collector are restarted with FD_IDLE_TIMEOUT_MS=1000. On a
    connection to each: hello is answered; 0.5 s later a second hello is answered (the
    connection is still open and the frame restarts the idle clock); then, with nothing
    sent, the server closes the connection no earlier than 1.0 s - 0.3 s and no later than
    1.0 s + 1.5 s after that last frame (SPEC §4: a server never waits unboundedly on a
    peer)."""
    dep = ctx.deployment
    roles = ("collector", "orchestrator")
    env = {"FD_IDLE_TIMEOUT_MS": str(IDLE_TIMEOUT_MS)}
    timeout_s = IDLE_TIMEOUT_MS / 1000
    conns = {}
    try:
        _restart_together(dep, roles, env)
        ctx.topo.wait_ready(5.0)
        ctx.note("action", f"orchestrator and collector restarted with FD_IDLE_TIMEOUT_MS={IDLE_TIMEOUT_MS}")
        for role in roles:
            ep = dep.endpoint(role)
            conns[role] = Connection(ep.host, ep.port, timeout=5.0)
        for role, conn in conns.items():
            req = _hello(ctx)
            expect_ok(conn.request(req, timeout=3.0), "hello", sent=req, token=ctx.token,
                      what=f"{role}: hello on a fresh connection")
        time.sleep(timeout_s / 2)
        last = {}
        for role, conn in conns.items():
            req = _hello(ctx)
            try:
                reply = conn.request(req, timeout=3.0)
            except ConnectionClosed:
                raise CheckFailed(f"{role} closed a connection idle for {timeout_s / 2:.2f} s; "
                                  f"FD_IDLE_TIMEOUT_MS is {IDLE_TIMEOUT_MS}",
                                  expected="the connection open until it is idle for the whole timeout",
                                  received="EOF", hint="Measure idleness from the last complete frame received.") from None
            expect_ok(reply, "hello", sent=req, token=ctx.token,
                      what=f"{role}: a second hello after {timeout_s / 2:.2f} s idle")
            last[role] = time.monotonic()
        for role, conn in conns.items():
            left = last[role] + timeout_s + CLOSE_SLACK_S - time.monotonic()
            closed = conn.wait_closed(max(0.1, left))
            idle_for = time.monotonic() - last[role]
            ctx.note("reaction", f"{role}: connection {'closed' if closed else 'still open'} after "
                                 f"{idle_for:.2f} s idle")
            if not closed:
                raise CheckFailed(f"{role} did not close a connection idle for {idle_for:.1f} s "
                                  f"(FD_IDLE_TIMEOUT_MS={IDLE_TIMEOUT_MS})",
                                  expected=f"EOF within {timeout_s + CLOSE_SLACK_S:.1f} s of the last frame",
                                  received="connection still open",
                                  hint="Bound every read by the idle timeout and close the connection when it passes.")
            if idle_for < timeout_s - EARLY_SLACK_S:
                raise CheckFailed(f"{role} closed the connection after {idle_for:.2f} s idle, before "
                                  f"FD_IDLE_TIMEOUT_MS={IDLE_TIMEOUT_MS}",
                                  expected=f">= {timeout_s - EARLY_SLACK_S:.1f} s idle before the close",
                                  received=f"{idle_for:.2f} s",
                                  hint="Every complete frame received restarts the idle clock.")
    finally:
        for conn in conns.values():
            conn.close()
        _restart_together(dep, roles, None)
        ctx.topo.wait_ready(5.0)
        ctx.note("heal", "orchestrator and collector back to the shared FD_IDLE_TIMEOUT_MS")


@check(id="security.connections_closed", title="the orchestrator does not leak connections to agents",
       items=["security.connection_hygiene"], weight=1, stage=5, challenge="dropped-sockets")
def connections_closed(ctx):
    """Twelve tasks run one after another; one second later (far below the agents' idle
    timeout) the agent proxies count the connections the orchestrator opened during the
    check and has not closed. A connection per attempt must be closed after it; a pool may
    keep some open, but no more per agent than FD_WORKERS + 2 (concurrent tasks plus a
    readiness probe), never one per task."""
    topo = ctx.topo
    workers = int(topo.settings.get("FD_WORKERS", 4))
    bound = workers + 2
    n = max(12, 2 * bound + 4)
    starts = {a: len(topo.agent_proxy[a].events) for a in AGENTS}
    for _ in range(n):
        tid = ctx.task_id()
        req, reply = submit(ctx, tid, oracle.generate_input(ctx.rng, 4))
        expect_ok(reply, "submit", sent=req, token=ctx.token, what="a task while connections are counted")
    time.sleep(SETTLE_S)
    still = {a: _open_links(topo.agent_proxy[a], starts[a]) for a in AGENTS}
    opened = {a: sum(1 for e in topo.agent_proxy[a].events[starts[a]:] if e.kind == "open") for a in AGENTS}
    ctx.note("reaction", f"after {n} tasks: opened {opened}, still open {{{', '.join(f'{a}: {len(v)}' for a, v in still.items())}}}")
    leaking = {a: len(v) for a, v in still.items() if len(v) > bound}
    if leaking:
        raise CheckFailed(f"after {n} tasks and {SETTLE_S:.0f} s the orchestrator still holds connections "
                          "to agents that it no longer uses",
                          expected=f"at most FD_WORKERS + 2 = {bound} open per agent",
                          received={"still open": leaking, "opened during the check": opened},
                          hint="Close every socket in a finally block (or return it to a bounded pool), "
                               "including readiness probes and failed attempts.")
