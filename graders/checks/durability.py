"""Stage 6, crash-restart: power-loss durability of acknowledged records.

Why a module of its own: memory.durable_task_log kills a process, which keeps the page
cache, so a service that never fsyncs passes it. This check observes the system calls
instead: every service runs once under strace (`Deployment.start_wrapped`, the tracer as
the service's parent inside its sandbox), and the record is replayed by
`graders.faults.fstrace` against an abstract file system that loses, at a power cut,
everything not yet fsynced. The verdict depends only on the order of the service's own
calls (deterministic, any language).
"""
from __future__ import annotations

import os
import shutil

from graders import oracle
from graders.checks.common import expect_ok, submit
from graders.checks.registry import CheckFailed, GraderError, check

AGENT_STEPS = {"collector": "collect", "analyzer": "analyze", "reporter": "report"}
ROLES = ("collector", "analyzer", "reporter", "orchestrator")
MAX_TRACE_BYTES = 256 * 1024 * 1024
TASKS = 3


def _read_trace(path: str) -> str:
    """The strace record of one wrapped run (bounded: a flood cannot exhaust the grader)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_TRACE_BYTES + 1)
    except OSError as exc:
        raise GraderError(f"the system-call record {path} could not be read: {exc}") from None
    if len(data) > MAX_TRACE_BYTES:
        raise GraderError(f"the system-call record {path} is over {MAX_TRACE_BYTES} bytes")
    return data.decode("utf-8", "replace")


@check(id="memory.power_loss", title="acknowledged records survive a power loss at any moment",
       items=["memory.durability"], weight=2, stage=6, challenge="crash-restart",
       visibility="hidden", timeout=45.0, drivers=("process",))
def power_loss(ctx):
    """Every service is restarted under strace (file-system calls and socket writes
    recorded); three triage tasks run; the services are killed and restarted normally.
    Replayed ALICE-style (graders/faults/fstrace.py): from each _ok reply on, at every
    point, each acknowledged record records/<task_id>.json must be present and complete
    in every state a power loss may leave - written and fsynced, renamed into place and
    records/ fsynced before the reply - and no crash may ever leave the name holding an
    unsynced (torn or empty) file. A power loss drops unsynced file data and directory
    entries not yet fsynced; directories count as durable once created."""
    from graders.drivers.base import StartError, WrapUnsupported
    from graders.faults import fstrace

    strace = shutil.which("strace")
    if strace is None:
        raise GraderError("strace is not installed: power-loss durability is observed by recording "
                          "each service's system calls (install the strace package)")
    dep = ctx.deployment
    runs, initial, tids = {}, {}, []
    try:
        for role in ROLES:
            dep.stop(role)
            initial[role] = dep.memory_files(role)
            try:
                runs[role] = dep.start_wrapped(role, fstrace.strace_argv(strace, "{output}"))
            except WrapUnsupported as exc:
                raise GraderError(f"{exc}: power-loss durability is observed with strace, which "
                                  "needs the process driver") from None
            except StartError as exc:
                # strace's own complaints (ptrace refused, ...) are the grader's problem.
                said = [ln for ln in exc.output_tail if "strace:" in ln]
                if said:
                    raise GraderError(f"strace could not trace {role}: {said[0][:300]}") from None
                raise
        ctx.topo.wait_ready(5.0)
        ctx.note("action", "every service restarted under strace (file-system calls recorded)")
        for _ in range(TASKS):
            tid = ctx.task_id()
            req, reply = submit(ctx, tid, oracle.generate_input(ctx.rng, 4))
            expect_ok(reply, "submit", sent=req, token=ctx.token, what="a task while its calls are recorded")
            tids.append(tid)
        ctx.note("action", f"{len(tids)} tasks acknowledged")
    finally:
        for role in ROLES:
            if role in runs:
                dep.kill(role)    # strace writes its record as it goes: nothing is lost
        for role in ROLES:
            if not dep.running(role):
                dep.start(role, None)
        ctx.topo.wait_ready(5.0)
        ctx.note("heal", "services restarted without strace")
    problems = []
    for role in ROLES:
        run = runs[role]
        marker = "submit_ok" if role == "orchestrator" else f"{AGENT_STEPS[role]}_ok"
        # The orchestrator's record is stored twice (accepted, finished): the acknowledged
        # version is the finished one.
        extra = ('"succeeded"',) if role == "orchestrator" else ()
        watches = [fstrace.Watch(record=f"{run.memory_dir}/records/{tid}.json",
                                 ack=(f'"{tid}"', f'{marker}"'), content=(f'"{tid}"',) + extra)
                   for tid in tids]
        aliases = {os.path.realpath(p): p for p in (run.memory_dir, run.cwd)}
        findings = fstrace.judge(_read_trace(run.output), cwd=run.cwd, memdir=run.memory_dir,
                                 initial_files=initial[role], watches=watches, aliases=aliases)
        unseen = 0
        for f in findings:
            if f.kind == "no-ack":
                unseen += 1
                continue
            problems.append({"service": role, "record": f.record.replace(run.memory_dir, "$FD_MEMORY_DIR"),
                             "finding": f.kind, "what": f.message, "calls": list(f.calls)})
        if unseen:
            ctx.note("note", f"{role}: {unseen} replies not found among the recorded socket writes; "
                     "those records were judged as they stood when the service was stopped")
    ctx.note("reaction", f"{len(problems)} durability findings over {len(tids)} tasks x 4 services")
    if problems:
        lost = [p for p in problems if p["finding"] == "lost"]
        first = (lost or problems)[0]
        raise CheckFailed(f"{first['service']}: {first['record']}: {first['what']}",
                          expected="before each _ok reply: the record written to a temporary file, "
                                   "fsynced, renamed over records/<task_id>.json, and records/ fsynced",
                          received=problems[:6],
                          hint="fsync the file before the rename and an fd of the directory after it, "
                               "both before replying (SPEC §11.2).")


def process_driver_only() -> tuple[str, ...]:
    """Ids of the checks of this module: they need `Deployment.start_wrapped` (the process
    driver), so they are registered with drivers=("process",) and not run under another
    driver. (Computed, so that no interviewer-only id is written here.)"""
    from graders.checks.registry import all_checks
    return tuple(c.id for c in all_checks() if c.func.__module__ == __name__)
