"""Runs checks against one submission: stages, verdicts, seeds, runs, cleanup.

Why a harness apart from the checks: checks say what to observe; the harness decides how
many deployments exist, in which order checks run, how long each may take, what counts
against the candidate (fail) and what does not (error: the grader could not run it), and
guarantees that everything it started is stopped, even on Ctrl-C.

Speed: one shared deployment (four services behind fault proxies) serves every check that
can share it; a check that changes a service's environment restores it; after each check
the harness heals every fault and restarts anything that is down.
"""
from __future__ import annotations

import random
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from graders.checks.registry import CheckFailed, CheckSpec, GraderError
from graders.ids import GradeIds

ROLES = ("orchestrator", "collector", "analyzer", "reporter")
#: Bound of each liveness read (GET /livez, one protocol reply) after a failed check.
PROBE_S = 3.0

# Settings for the shared deployment: short timeouts so a full grade stays fast, and small
# limits so overload is reachable with a few dozen connections.
SHARED_ENV = {
    "FD_ATTEMPT_TIMEOUT_MS": "500",
    "FD_TASK_DEADLINE_MS": "3000",
    "FD_RETRY_BASE_MS": "100",
    "FD_RETRY_CAP_MS": "800",
    "FD_RETRY_MAX_ATTEMPTS": "4",
    "FD_WORKERS": "2",
    "FD_QUEUE_SIZE": "4",
    "FD_MAX_CONNECTIONS": "32",
    "FD_IDLE_TIMEOUT_MS": "10000",
    "FD_SHUTDOWN_GRACE_MS": "3000",
}


@dataclass
class Verdict:
    check_id: str
    title: str
    status: str                     # pass | fail | error
    message: str
    duration: float
    seed: int
    run: int
    sent: object = None
    expected: object = None
    received: object = None
    hint: str | None = None
    log_lines: dict = field(default_factory=dict)
    timeline: list = field(default_factory=list)
    trace: str | None = None        # grader traceback, for errors only
    started_at: float = 0.0         # seconds since the run started


@dataclass
class RunResult:
    seed: int
    runs: int
    driver: str
    submission: str
    verdicts: list[Verdict]
    duration: float
    stopped_at_stage: int | None = None
    cleanup: list[str] = field(default_factory=list)
    setup_error: str | None = None
    # The grade's metadata (RULES.md): `partial` for an --only run, `sandbox` as the driver
    # describes it, `leftovers` what the grader could not clean up (incomplete).
    partial: bool = False
    sandbox: dict = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)
    survivors: list = field(default_factory=list)
    # Checks selected but not run because this driver cannot observe what they check
    # (CheckSpec.drivers): {"id", "reason"}; left out of the score, named in every report.
    not_run: list = field(default_factory=list)

    @property
    def incomplete_reasons(self) -> list[str]:
        """Why this grade is INCOMPLETE ([] = complete): a grader error, a setup error,
        something the grader could not clean up."""
        reasons = []
        errors = sorted({v.check_id for v in self.verdicts if v.status == "error"})
        if errors:
            reasons.append(f"{len(errors)} check(s) with grader errors: {', '.join(errors)}")
        if self.setup_error:
            reasons.append(f"setup error: {self.setup_error}")
        reasons += [f"cleanup: {note}" for note in self.leftovers]
        if self.survivors:
            reasons.append(f"candidate processes outlived the grade: {self.survivors}")
        return reasons

    @property
    def incomplete(self) -> bool:
        return bool(self.incomplete_reasons)


class Progress:
    """Progress lines, CodeCrafters style: `[grader:check-id] ...` for the grader,
    `[your_<role>] ...` for relayed candidate output. Thread-safe."""

    def __init__(self, stream=None, quiet: bool = False):
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self._lock = threading.Lock()

    def say(self, tag: str, msg: str) -> None:
        if self.quiet:
            return
        with self._lock:
            for line in str(msg).splitlines() or [""]:
                print(f"[grader:{tag}] {line}", file=self.stream, flush=True)

    def relay(self, role: str, lines) -> None:
        if self.quiet:
            return
        with self._lock:
            for line in lines:
                print(f"[your_{role}] {line}", file=self.stream, flush=True)


def stray_note(when: str, pids, role: str | None = None) -> str:
    who = f"your {role}" if role else "a service"
    return (f"NOTE: {who} left {len(list(pids))} process(es) running after its main process exited "
            f"(pids {', '.join(map(str, pids))}), found {when}; the grader killed them. A service "
            "must not leave children behind: stop worker processes on exit, never daemonise "
            "(not scored; see the interviewer guide).")




# Exception classes (matched by name anywhere in the MRO, so that subclasses count and
# no driver module must be imported here) that can only come from talking to the
# candidate: the protocol client (ClientError covers ClientTimeout, ConnectionClosed,
# BadReply and an oversized HTTP body), a service that would not start or stop, a peer
# that refused, reset or timed out, a broken TLS handshake, a garbled HTTP answer on a
# side port (http.client.HTTPException: BadStatusLine, IncompleteRead, LineTooLong...),
# candidate bytes the one bounded decoder (graders/decode.py) refused.
CANDIDATE_EXCEPTIONS = frozenset({
    "ClientError", "ClientTimeout", "ConnectionClosed", "BadReply", "StartError",
    "ConnectionError", "TimeoutError", "SSLError", "CertificateError", "HTTPException",
    "CandidateDataError",   # graders.decode: bytes the bounded decoder refused
})


def is_candidate_failure(exc: BaseException) -> bool:
    """Exceptions raised while talking to the candidate are the candidate's failures;
    anything else raised inside grader code is a grader error.

    Data-shape problems (a reply member of the wrong type, a missing record file) are not
    recognised here on purpose: checks read candidate data through
    `graders.checks.common.dig/as_dict/read_record` and raise CheckFailed with evidence, so
    an AttributeError or FileNotFoundError that still escapes is a grader bug to fix."""
    if isinstance(exc, CheckFailed):
        return True
    if isinstance(exc, GraderError):
        return False
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & CANDIDATE_EXCEPTIONS)


class GradeEnv:
    """What the checks of one run share: submission, driver, seed, token, the shared
    topology (created on first use) and a list of extra deployments to close."""

    def __init__(self, submission, driver, seed: int, progress: Progress, *,
                 env_overrides: dict | None = None, driver_name: str = "process"):
        self.submission = submission
        self.driver = driver
        self.driver_name = driver_name
        self.seed = seed
        self.progress = progress
        # Ids and the token come from a secret random per grade (graders/ids.py), never
        # from the seed or the check: a submission cannot tell which check is running
        # from what it receives. Inputs and faults still come from the seed (replays).
        self.ids = GradeIds()
        self.token = self.ids.token()
        # Task ids issued by hidden checks: redacted from every visible check's evidence,
        # so nothing a hidden check sent reaches a candidate-visible output.
        self.hidden_ids: set[str] = set()
        self.env_overrides = dict(SHARED_ENV, **(env_overrides or {}))
        self._topo = None
        self._start_failure: BaseException | None = None
        self._extra: list = []
        self.cleanup_notes: list[str] = []
        self.stray_notes: list[str] = []
        self._strays_seen: set[int] = set()
        self.t0 = time.monotonic()
        # Why the submission cannot proceed (it did not start, or a fresh deployment does
        # not answer): once set, every later check fails at once with it (issue 12 §11).
        self.dead: str | None = None
        self.dead_evidence = None

    # -- the shared topology -------------------------------------------------------------
    def shared(self):
        """The shared topology, started on first use. A start that fails gets one more
        try (a transient must not cost the whole grade); if that fails too, the same
        StartError is raised for every later check at once and the submission is known
        dead, instead of waiting for another start timeout per check."""
        if self._topo is None:
            if self._start_failure is not None:
                raise self._start_failure
            from graders.drivers.base import StartError
            from graders.topology import Topology
            try:
                try:
                    self._topo = Topology.up(self.submission, self.driver, seed=self.seed,
                                             token=self.token, env_overrides=self.env_overrides)
                except StartError as first:
                    self.progress.say("setup", f"the submission did not start ({first.role}: "
                                               f"{first.message}); trying once more")
                    self._topo = Topology.up(self.submission, self.driver, seed=self.seed,
                                             token=self.token, env_overrides=self.env_overrides)
            except StartError as exc:
                self._start_failure = exc
                self.dead = f"the submission did not start: {exc.role}: {exc.message}"
                self.dead_evidence = list(exc.output_tail) or None
                raise
        return self._topo

    @property
    def has_shared(self) -> bool:
        return self._topo is not None

    def restore(self) -> None:
        """Heal every fault and bring every service back with its base environment."""
        topo = self._topo
        if topo is None:
            return
        topo.heal()
        dep = topo.deployment
        for role, proxy in topo.agent_proxy.items():
            ep = dep.endpoint(role)
            if tuple(proxy.upstream) != (ep.host, ep.port):
                proxy.set_upstream(ep.host, ep.port)
                proxy.close_connections()
        restarted = False
        for role in ROLES:
            if not dep.running(role):
                dep.start(role, None)
                restarted = True
        if restarted:
            topo.wait_ready(5.0)

    def probe(self, bound: float = PROBE_S) -> str | None:
        """None when every service of the shared deployment is alive, else why not.

        Alive means: the process runs, GET /livez answers within `bound` seconds, and the
        protocol port accepts a connection and reacts to one request within `bound`
        (any reply, even an error or a close, counts: only silence or refusal is death).
        Run only after a check failed, so a passing submission never sees a probe."""
        from graders.client import ClientError, ClientTimeout, Connection, http_get, make_request
        topo = self._topo
        if topo is None:
            return None
        dep = topo.deployment
        for role in ROLES:
            if not dep.running(role):
                return f"your {role} is not running (it exited and did not come back when restarted)"
            ep = dep.endpoint(role)
            try:
                status = http_get(ep.host, ep.http_port, "/livez", timeout=bound)[0]
            except Exception as exc:  # noqa: BLE001 - any failure to answer is the finding
                return (f"your {role} did not answer GET /livez on port {ep.http_port} within "
                        f"{bound:.0f} s ({type(exc).__name__}: {exc})")
            if status != 200:
                return f"your {role} answered GET /livez with {status}, not 200"
            if role == "orchestrator":
                frame = make_request("status", {}, token=self.token, task_id=self.ids.task_id(),
                                     msg_id=self.ids.msg_id())
            else:
                frame = make_request("hello", {"versions": [1], "role": "orchestrator"}, token=self.token,
                                     msg_id=self.ids.msg_id())
            try:
                with Connection(ep.host, ep.port, timeout=bound) as conn:
                    conn.send(frame)
                    conn.recv_line(bound)
            except ClientTimeout:
                return (f"your {role} accepted a connection on port {ep.port} but sent nothing back "
                        f"within {bound:.0f} s of a `{frame['type']}` request")
            except ConnectionRefusedError:
                return f"your {role} does not accept connections on port {ep.port}"
            except (ClientError, OSError):
                pass   # it reacted (a reply the checks judge, a close, a reset): not dead
        return None

    def assess_liveness(self) -> None:
        """After a failed check: is the submission known dead? A failed probe gets one
        fresh deployment (a deadlock or a crash loop left by the last check is not death);
        when that one fails the probe too, or cannot start, `dead` is set."""
        if self.dead is not None:
            return
        try:
            if self._topo is None:
                self.shared()
            reason = self.probe()
            if reason is None:
                return
            self.progress.say("setup", f"the submission does not answer ({reason}); trying a fresh deployment")
            self.drop_shared()
            self.shared()
            reason = self.probe()
        except Exception:  # noqa: BLE001 - StartError sets `dead`; other failures leave it to the checks
            return
        if reason is not None:
            self.dead = reason

    def drop_shared(self) -> None:
        if self._topo is not None:
            topo, self._topo = self._topo, None
            self._close(topo)

    def track(self, closable) -> None:
        """Register an extra deployment/topology/server that must be closed at the end."""
        self._extra.append(closable)

    def _close(self, obj) -> None:
        try:
            report = obj.close()
        except Exception as exc:  # cleanup must go on whatever happens
            self.cleanup_notes.append(f"cleanup of {type(obj).__name__} failed: {exc}")
            return
        if report is None:
            return
        for role, pids in self._strays_of(getattr(obj, "deployment", obj)).items():
            note = stray_note("when the deployment was closed", pids, role)
            self.stray_notes.append(note)
            self.progress.say("cleanup", note)
        strays = [p for p in (getattr(report, "stray_pids", None) or []) if p not in self._strays_seen]
        if strays:
            self._strays_seen.update(strays)
            note = stray_note("at the end of the run", strays)
            self.stray_notes.append(note)
            self.progress.say("cleanup", note)
        if getattr(report, "ok", True) is False:
            self.cleanup_notes.append(str(report))

    def new_strays(self) -> dict[str, list[int]]:
        """Processes the driver found alive after a service's main process exited (and
        killed), not reported before: {role: [pid, ...]}.

        Why the harness reports them: a service that leaves children behind (a worker
        that survives its parent, a daemonised helper) leaks in production exactly as it
        does here; the driver cleans up silently, so without this the candidate never
        learns it happened. Reported as a note, not scored (rubric/INTERVIEWER_GUIDE.md)."""
        if self._topo is None:
            return {}
        return self._strays_of(self._topo.deployment)

    def _strays_of(self, dep) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        getter = getattr(dep, "stray_pids", None)
        try:
            if callable(getter):
                raw = getter()
                per_role = raw if isinstance(raw, dict) else {"service": list(raw or [])}
            else:
                services = getattr(dep, "services", {}) or {}
                per_role = {role: list(getattr(svc, "strays", []) or []) for role, svc in services.items()}
        except Exception:  # noqa: BLE001 - a driver without the information reports nothing
            return {}
        for role, pids in per_role.items():
            fresh = [p for p in pids if p not in self._strays_seen]
            if fresh:
                self._strays_seen.update(fresh)
                found[role] = fresh
        return found

    def close(self) -> None:
        while self._extra:
            self._close(self._extra.pop())
        self.drop_shared()

    def logs_snapshot(self) -> dict:
        if self._topo is None:
            return {}
        dep = self._topo.deployment
        out = {}
        for role in ROLES:
            try:
                out[role] = len(dep.logs(role, "stderr"))
            except Exception:
                out[role] = 0
        return out

    def logs_since(self, snapshot: dict, *, limit: int = 40) -> dict:
        if self._topo is None:
            return {}
        dep = self._topo.deployment
        out = {}
        for role in ROLES:
            try:
                lines = dep.logs(role, "stderr")
            except Exception:
                continue
            start = snapshot.get(role, 0)
            new = lines[start:] if len(lines) >= start else lines
            if new:
                out[role] = new[-limit:]
        return out


class CheckContext:
    """Handed to each check: the shared topology, a seeded rng, a timeline, progress."""

    def __init__(self, env: GradeEnv, spec: CheckSpec, run: int, seed: int):
        self.env = env
        self.spec = spec
        self.run = run
        self.seed = seed
        self.rng = random.Random(f"{seed}:{spec.id}")
        self.token = env.token
        self.timeline: list[dict] = []
        self._t0 = time.monotonic()
        self.log_roles_of_interest: set[str] = set()

    @property
    def topo(self):
        return self.env.shared()

    @property
    def deployment(self):
        return self.env.shared().deployment

    def say(self, msg: str) -> None:
        self.env.progress.say(self.spec.id, msg)

    def note(self, kind: str, text: str) -> None:
        """Timeline entry: kind is 'fault' (injected), 'action' (grader did), 'reaction'
        (system did), 'heal'."""
        self.timeline.append({"t": round(time.monotonic() - self._t0, 3), "kind": kind,
                              "text": text})

    def task_id(self, _label: str | None = None) -> str:
        """A fresh task id from the grade's secret (graders/ids.py). An argument, if a
        check passes one, is ignored: nothing about the check may reach the id."""
        tid = self.env.ids.task_id()
        if self.spec.visibility == "hidden":
            self.env.hidden_ids.add(tid)
        return tid

    def msg_id(self) -> str:
        return self.env.ids.msg_id()

    def fail(self, message: str, **kw):
        raise CheckFailed(message, **kw)


def _dead_verdict(env: GradeEnv, spec: CheckSpec, run: int, seed: int) -> Verdict:
    """The verdict of a check that cannot proceed because the submission is known dead:
    a failure (it is the candidate's), at once, saying why."""
    return Verdict(spec.id, spec.title, "fail",
                   f"could not proceed: {env.dead}. The grader stopped waiting on a submission "
                   "that does not answer, so this check was not attempted.",
                   0.0, seed, run, received=env.dead_evidence,
                   hint="Every service must start (SPEC §3: its TCP port accepts connections and "
                        "GET /livez answers 200 within 10 s) and answer every request (SPEC §4). "
                        "Check its stderr below.",
                   started_at=round(time.monotonic() - env.t0, 3))


def _run_one(env: GradeEnv, spec: CheckSpec, run: int, seed: int) -> Verdict:
    if env.dead is not None:
        v = _dead_verdict(env, spec, run, seed)
        _redact_verdict(v, env.token)
        return v
    ctx = CheckContext(env, spec, run, seed)
    started = time.monotonic() - env.t0
    snap = env.logs_snapshot()
    box: dict = {}

    def target():
        try:
            spec.func(ctx)
            box["ok"] = True
        except BaseException as exc:  # reported, never lost
            box["exc"] = exc
            box["tb"] = traceback.format_exc()

    t0 = time.monotonic()
    th = threading.Thread(target=target, name=f"check-{spec.id}", daemon=True)
    th.start()
    th.join(spec.timeout)
    duration = time.monotonic() - t0
    v = Verdict(spec.id, spec.title, "pass", "ok", round(duration, 3), seed, run,
                timeline=ctx.timeline, started_at=round(started, 3))
    if th.is_alive():
        v.status = "fail"
        v.message = (f"the check did not finish within {spec.timeout:.0f} s: a service stopped "
                     "answering (every grader wait is bounded, so this adds up bounded waits)")
        v.hint = "Look for a blocking call without a timeout, or a lock held across I/O."
        env.drop_shared()  # unblocks the stuck thread's sockets; a fresh deployment follows
        th.join(5.0)
    elif "exc" in box:
        exc = box["exc"]
        if isinstance(exc, CheckFailed):
            v.status, v.message = "fail", exc.message
            v.sent, v.expected, v.received, v.hint = exc.sent, exc.expected, exc.received, exc.hint
        elif is_candidate_failure(exc):
            v.status = "fail"
            v.message = f"{type(exc).__name__}: {exc}"
            v.hint = _hint_for(exc)
            v.received = getattr(exc, "raw", None) or getattr(exc, "output_tail", None)
        else:
            v.status = "error"
            v.message = f"grader error: {type(exc).__name__}: {exc}"
            v.trace = box.get("tb")
    v.log_lines = env.logs_since(snap)
    _redact_verdict(v, env.token)
    if spec.visibility != "hidden":
        for tid in sorted(env.hidden_ids):
            _redact_verdict(v, tid, "<hidden task>")
    return v


def _redact(obj, secret: str, mark: str = "<TOKEN>"):
    if isinstance(obj, str):
        return obj.replace(secret, mark)
    if isinstance(obj, bytes):
        return obj.replace(secret.encode(), mark.encode())
    if isinstance(obj, dict):
        return {_redact(k, secret, mark) if isinstance(k, str) else k: _redact(x, secret, mark)
                for k, x in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_redact(x, secret, mark) for x in obj]
    return obj


def _redact_verdict(v: Verdict, secret: str, mark: str = "<TOKEN>") -> None:
    """Reports are shared; the run's token never appears in them, even when a candidate
    leaked it into a log line or a reply (and a visible check's evidence never shows a
    hidden check's task id)."""
    if not secret:
        return
    for name in ("message", "sent", "expected", "received", "hint", "log_lines", "timeline", "trace"):
        setattr(v, name, _redact(getattr(v, name), secret, mark))


def _hint_for(exc) -> str:
    name = type(exc).__name__
    if name == "ClientTimeout":
        return "No reply within the timeout: is every request answered, one reply per frame, ending in \\n?"
    if name == "ConnectionClosed":
        return "The service closed the connection (EOF) without replying: did it crash, or close after one request? Connections are persistent."
    if name == "BadReply":
        return "The reply was not one JSON object on one line: check for pretty-printing, extra prints on the socket, or a missing \\n."
    if name == "CandidateDataError":
        return ("The grader refused to decode what the service sent: SPEC §4 wants UTF-8 JSON, "
                "at most 32 levels deep, without NaN/Infinity or numbers too large for a double.")
    if name == "StartError":
        return "The service did not start: its TCP port must accept connections and GET /livez must answer 200 within 10 s."
    if "HTTPException" in {cls.__name__ for cls in type(exc).__mro__}:
        return "The HTTP side port did not answer valid HTTP/1.1 (status line, headers, body length)."
    if "Reset" in name or "Refused" in name:
        return "Connection refused or reset: is the service still running? Check its stderr below."
    return "See the candidate log lines below."


def select_checks(specs: list[CheckSpec], *, only=None, visible_only=False,
                  challenge=None) -> list[CheckSpec]:
    out = list(specs)
    if visible_only:
        out = [c for c in out if c.visibility == "visible"]
    if challenge:
        out = [c for c in out if c.challenge == challenge]
    if only:
        wanted = set(only)
        known = {c.id for c in specs}
        unknown = wanted - known
        if unknown:
            raise ValueError(f"unknown check id(s): {', '.join(sorted(unknown))}")
        out = [c for c in out if c.id in wanted]
    return out


def run_checks(specs: list[CheckSpec], *, submission, driver, seed: int, runs: int = 1,
               progress: Progress | None = None, stop_at_failing_stage: bool = False,
               env_overrides: dict | None = None, driver_name: str = "process",
               relay_on_failure: bool = True,
               on_verdict: Callable[[Verdict], None] | None = None) -> RunResult:
    """Run `specs` `runs` times (run r uses seed + r; every seed is printed). Returns all
    verdicts. Everything started is closed before returning, even on KeyboardInterrupt."""
    progress = progress or Progress()
    # Checks this driver cannot observe (CheckSpec.drivers) are not run, and say so.
    from graders.checks.registry import runs_under
    not_run = [s for s in specs if not runs_under(s, driver_name)]
    for s in not_run:
        progress.say("setup", f"not run under the {driver_name} driver: {s.id} (needs the "
                              f"{' or '.join(s.drivers)} driver)")
    restore_sigterm = _sigterm_as_interrupt()
    try:
        result = _run_all([s for s in specs if runs_under(s, driver_name)], submission=submission,
                          driver=driver, seed=seed, runs=runs,
                          progress=progress, stop_at_failing_stage=stop_at_failing_stage,
                          env_overrides=env_overrides, driver_name=driver_name,
                          relay_on_failure=relay_on_failure, on_verdict=on_verdict)
    finally:
        restore_sigterm()
    result.not_run = [{"id": s.id, "reason": f"cannot be observed under the {driver_name} driver "
                       f"(needs the {' or '.join(s.drivers)} driver)"} for s in not_run]
    return result


def _sigterm_as_interrupt():
    """While checks run, SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C so that every
    deployment is closed; returns a function restoring the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, previous)


def _note_strays(env: GradeEnv, v: Verdict, spec: CheckSpec, when: str) -> None:
    """Strays found since the last look are evidence on the check during which they were
    found (its timeline), a progress line, and a note in the run's cleanup list."""
    try:
        found = env.new_strays()
    except Exception:  # noqa: BLE001 - reporting must never break a grade
        return
    for role, pids in found.items():
        note = stray_note(when, pids, role)
        v.timeline.append({"t": round(v.duration, 3), "kind": "note", "text": note})
        env.stray_notes.append(f"{spec.id}: {note}")
        env.progress.say(spec.id, note)


def _run_all(specs, *, submission, driver, seed, runs, progress, stop_at_failing_stage,
             env_overrides, driver_name, relay_on_failure, on_verdict) -> RunResult:
    t0 = time.monotonic()
    verdicts: list[Verdict] = []
    stopped = None
    cleanup: list[str] = []
    leftovers: list[str] = []
    for r in range(runs):
        run_seed = seed + r
        progress.say("setup", f"run {r + 1}/{runs} seed {run_seed} (replay: --seed {run_seed} --runs 1)")
        env = GradeEnv(submission, driver, run_seed, progress, env_overrides=env_overrides,
                       driver_name=driver_name)
        try:
            failed_stage = None
            for spec in specs:
                if failed_stage is not None and spec.stage > failed_stage:
                    stopped = failed_stage
                    break
                progress.say(spec.id, f"stage {spec.stage} ({spec.challenge}): {spec.title}")
                v = _run_one(env, spec, r, run_seed)
                _note_strays(env, v, spec, "during this check")
                verdicts.append(v)
                word = {"pass": "passed", "fail": "FAILED", "error": "GRADER ERROR"}[v.status]
                progress.say(spec.id, f"{word} in {v.duration:.2f}s" + ("" if v.status == "pass" else f": {v.message}"))
                if on_verdict:
                    on_verdict(v)
                if v.status == "fail" and relay_on_failure:
                    for role, lines in v.log_lines.items():
                        progress.relay(role, lines[-10:])
                if v.status == "fail" and stop_at_failing_stage:
                    failed_stage = spec.stage
                if env.dead is not None:
                    continue    # nothing to restore or probe: later checks fail at once
                try:
                    env.restore()
                except Exception as exc:
                    progress.say("setup", f"could not restore the shared deployment ({exc}); starting a fresh one")
                    env.drop_shared()
                _note_strays(env, v, spec, "when services were restarted after this check")
                if v.status == "fail":
                    env.assess_liveness()
                    if env.dead is not None:
                        progress.say("setup", f"the submission is not answering: {env.dead}; "
                                              "the remaining checks fail at once")
            if stopped is not None:
                break
        finally:
            env.close()
            cleanup.extend(env.stray_notes)
            cleanup.extend(env.cleanup_notes)
            leftovers.extend(env.cleanup_notes)
    return RunResult(seed=seed, runs=runs, driver=driver_name,
                     submission=getattr(submission, "name", str(submission)),
                     verdicts=verdicts, duration=round(time.monotonic() - t0, 3),
                     stopped_at_stage=stopped, cleanup=cleanup, leftovers=leftovers)
