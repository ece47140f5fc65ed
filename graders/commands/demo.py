"""`faultdrill demo`: the newcomer's first run.

Starts the reference system through its own manifest (one process per service, on
loopback, behind the grader's fault proxies), sends tasks while injecting a few faults,
and says in plain words what it injected and how the system reacted. Then, if the graders
are installed, grades the reference and the starter side by side, and ends with a
one-minute incident drill (graders/drills/demo_drill.py; --no-drill skips it). Every step has a time
bound and everything is stopped at the end, also on Ctrl-C or an error.
"""
from __future__ import annotations

import json
import os
import random
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

from graders import paths
from graders.client import ClientError, make_request
from graders.drivers.process import ProcessDriver
from graders.faults.proxy import DropReply, Timeout
from graders.manifest import load_manifest
from graders.oracle import expected_result
from graders.topology import Topology

HELP = "start the reference, run tasks under injected faults, grade reference and starter"


def add_arguments(parser):
    parser.add_argument("--seed", type=int, default=None, help="seed for every random choice")
    parser.add_argument("--no-drill", action="store_true",
                        help="skip the one-minute incident drill at the end")
    parser.add_argument("--no-grade", action="store_true",
                        help="skip grading the reference and the starter at the end")
    parser.add_argument("--out", default=None,
                        help="folder for the grade reports (default: a new temp folder)")


class Narrator:
    """Numbered, plain-language lines; `ok`/`bad` say whether the system did the right thing."""

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stdout
        self.step = 0
        self.problems: list[str] = []

    def section(self, title: str) -> None:
        self.step += 1
        print(f"\n[{self.step}] {title}", file=self.stream, flush=True)

    def say(self, text: str) -> None:
        print(f"    {text}", file=self.stream, flush=True)

    def ok(self, text: str) -> None:
        print(f"    ok   {text}", file=self.stream, flush=True)

    def bad(self, text: str) -> None:
        self.problems.append(text)
        print(f"    FAIL {text}", file=self.stream, flush=True)

    def expect(self, condition: bool, good: str, wrong: str) -> bool:
        (self.ok if condition else self.bad)(good if condition else wrong)
        return condition


def _spec_example_input() -> dict:
    """The first submit frame of SPEC §18.1: the demo sends what the contract shows."""
    text = paths.SPEC.read_text(encoding="utf-8")
    section = text[text.index("### 18.1"):]
    block = section[section.index("```json") + 7:]
    frame = json.loads(block[:block.index("```")])
    return frame["payload"]["input"]


def _describe(reply: dict) -> str:
    if reply.get("type") == "error":
        err = reply.get("error", {})
        return f"error {err.get('code')} {err.get('name')}: {err.get('message')}"
    payload = reply.get("payload") or {}
    result = payload.get("result") or {}
    extra = " (replayed from memory)" if reply.get("replay") else ""
    return f"{reply.get('type')}: {result.get('summary', payload.get('status'))}{extra}"


def _wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _metric(topo: Topology, role: str, name: str, labels: str = "") -> float:
    from graders.client import http_get
    ep = topo.endpoint(role)
    status, _, body = http_get(ep.host, ep.http_port, "/metrics", timeout=3.0)
    total = 0.0
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith(name) and (not labels or labels in line) and not line.startswith("#"):
            head = line.split(" ")[0]
            if head == name or head.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def run_scenarios(topo: Topology, say: Narrator, rng: random.Random) -> None:
    example = _spec_example_input()
    expected = expected_result("triage", example)

    say.section("A task flows through collect -> analyze -> report")
    say.say("sending the worked example of SPEC §18.1 (6 log records, 2 of them malformed)")
    reply = topo.request("submit", {"task_type": "triage", "input": example}, task_id="demo-1")
    say.say(_describe(reply))
    result = (reply.get("payload") or {}).get("result")
    say.expect(result == expected, "the result equals the independent oracle's answer",
               f"the result differs from the oracle's: {json.dumps(result)[:200]}")

    say.section("The same task_id again: idempotency")
    reply = topo.request("submit", {"task_type": "triage", "input": example}, task_id="demo-1")
    say.say(_describe(reply))
    say.expect(reply.get("replay") is True and (reply.get("payload") or {}).get("result") == expected,
               "the stored result was replayed, nothing ran twice",
               "a duplicate was not replayed")
    changed = dict(example, source="web-2")
    reply = topo.request("submit", {"task_type": "triage", "input": changed}, task_id="demo-1")
    say.say("same task_id, different payload -> " + _describe(reply))
    say.expect((reply.get("error") or {}).get("code") == 30, "refused as an idempotency conflict",
               "a conflicting payload was not refused")

    say.section("A request with a bad token")
    frame = make_request("submit", {"task_type": "triage", "input": example},
                         token="not-the-token", task_id="demo-intruder")
    with topo.connect() as conn:
        reply = conn.request(frame)
    say.say(_describe(reply))
    say.expect((reply.get("error") or {}).get("code") == 20, "refused: unauthorized",
               "a bad token was not refused")

    say.section("Fault: the collector's reply is lost after it did the work")
    before = _metric(topo, "collector", "faultdrill_steps_executed_total")
    proxy = topo.agent_proxy["collector"]
    tid = proxy.add(DropReply(match="collect"))
    say.say("injected: drop_reply on orchestrator -> collector (the request arrives, the answer vanishes)")
    worker = threading.Thread(target=lambda: holder.append(topo.request(
        "submit", {"task_type": "triage", "input": dict(example, source="web-3")},
        task_id="demo-2")), daemon=True)
    holder: list[dict] = []
    worker.start()
    _wait_for(lambda: any(e.kind == "drop" for e in proxy.events), timeout=5.0)
    proxy.remove(tid)
    say.say("healed right after the first reply was dropped")
    worker.join(timeout=topo.default_timeout)
    reply = holder[0] if holder else {"type": "error", "error": {"message": "no reply in time"}}
    say.say(_describe(reply))
    executed = _metric(topo, "collector", "faultdrill_steps_executed_total") - before
    retries = _metric(topo, "orchestrator", "faultdrill_step_retries_total", 'step="collect"')
    say.say(f"orchestrator retried collect {int(retries)} time(s); the collector executed it "
            f"{int(executed)} time(s)")
    say.expect(reply.get("type") == "submit_ok" and executed == 1,
               "retried, the collector replayed its stored answer: exactly one execution",
               "the lost reply was not recovered with exactly one execution")

    say.section("Fault: the analyzer crashes and comes back")
    topo.deployment.kill("analyzer")
    say.say("injected: SIGKILL of the analyzer")
    holder.clear()
    worker = threading.Thread(target=lambda: holder.append(topo.request(
        "submit", {"task_type": "triage", "input": dict(example, source="web-4")},
        task_id="demo-3")), daemon=True)
    worker.start()
    time.sleep(0.3)
    topo.deployment.restart("analyzer")
    say.say("restarted the analyzer 0.3 s later (same port, same memory directory)")
    worker.join(timeout=topo.default_timeout)
    reply = holder[0] if holder else {"type": "error", "error": {"message": "no reply in time"}}
    say.say(_describe(reply))
    say.expect(reply.get("type") == "submit_ok",
               "the orchestrator retried with backoff until the analyzer was back",
               "the task did not survive an analyzer restart")

    say.section("Fault: the reporter stops answering (blackhole)")
    tid = topo.agent_proxy["reporter"].add(Timeout(timeout_ms=0))
    say.say("injected: timeout toxic on orchestrator -> reporter (data vanishes, no reply ever)")
    started = time.monotonic()
    reply = topo.request("submit", {"task_type": "triage", "input": dict(example, source="web-5")},
                         task_id="demo-4")
    took = time.monotonic() - started
    topo.agent_proxy["reporter"].remove(tid)
    say.say(_describe(reply) + f" after {took:.1f} s")
    deadline = int(topo.settings["FD_TASK_DEADLINE_MS"]) / 1000
    say.expect(reply.get("type") == "error" and took < deadline + 2,
               f"failed cleanly within the {deadline:.0f} s task deadline instead of hanging",
               "a blackholed agent was not bounded by the deadline")
    reply = topo.request("submit", {"task_type": "triage", "input": dict(example, source="web-5")},
                         task_id="demo-4")
    say.say("healed; resubmitting the failed task: " + _describe(reply))
    say.expect(reply.get("type") == "submit_ok", "a failed task runs again when resubmitted",
               "a failed task could not be resubmitted")

    say.section("Fault: the collector's memory file is corrupted, then it restarts")
    name = "records/demo-1.json"
    topo.deployment.write_memory("collector", name, b'{"format": 1, "task_id": "demo-1", "se')
    say.say(f"injected: truncated {name} in the collector's memory, then a restart")
    topo.deployment.restart("collector")
    quarantined = [f for f in topo.deployment.memory_files("collector") if f.startswith("quarantine/")]
    corrupt = _metric(topo, "collector", "faultdrill_memory_corruptions_total")
    say.say(f"quarantine/ now holds {quarantined or 'nothing'}; corruptions counted: {int(corrupt)}")
    say.expect(bool(quarantined) and corrupt >= 1 and topo.wait_ready(5.0),
               "the bad file was moved aside, counted, and the collector kept serving",
               "corrupt memory was not quarantined")


def run(args) -> int:
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    print(f"faultdrill demo (seed {seed}; replay with --seed {seed})")
    rng = random.Random(seed)
    say = Narrator()
    _sandbox_or_say_why(say)
    submission = load_manifest(paths.REFERENCE)
    say.section(f"Starting the reference from {paths.REFERENCE / 'faultdrill.toml'}")
    # Six attempts (backoff up to ~2.3 s in all) so a crashed agent has time to restart.
    topo = Topology.up(submission, ProcessDriver(), seed=seed, token=secrets.token_hex(16),
                       env_overrides={"orchestrator": {"FD_RETRY_MAX_ATTEMPTS": "6"}})
    try:
        for role in ("orchestrator", "collector", "analyzer", "reporter"):
            ep = topo.endpoint(role)
            say.say(f"{role:<12} tcp {ep.host}:{ep.port}  http http://{ep.host}:{ep.http_port}/")
        say.say("every agent hop goes through a fault proxy owned by the demo")
        run_scenarios(topo, say, rng)
    except (ClientError, OSError) as exc:
        say.bad(f"the demo could not talk to the reference: {exc}")
    finally:
        report = topo.close()
        say.section("Stopped every service")
        say.expect(report is None or report.ok, "nothing left running",
                   f"left behind: {report and report.survivors}")
    if not args.no_grade:
        grade_side_by_side(seed, say, args.out)
    if not args.no_drill:
        from graders.drills.demo_drill import run_demo_drill
        try:
            run_demo_drill(seed, say, args.out)
        except (ClientError, OSError, RuntimeError) as exc:
            say.bad(f"the drill could not run: {exc}")
    print()
    if say.problems:
        print(f"demo finished with {len(say.problems)} problem(s):")
        for p in say.problems:
            print(f"  - {p}")
        return 1
    print("demo finished: every scenario behaved as the contract says.")
    return 0


def _sandbox_or_say_why(say: Narrator) -> None:
    """The demo runs only the kit's own reference and starter, never a candidate's code, so
    where the sandbox cannot be set up (a fresh machine without bubblewrap) it goes on
    without one, says so first, and its reports carry the UNSANDBOXED banner. Grading a
    candidate (`faultdrill grade`) still refuses there unless told --unsafe-no-sandbox."""
    from graders import sandbox as sandboxing
    if not sandboxing.enabled_by_default():
        return
    found = sandboxing.probe()
    if found.ok:
        return
    os.environ[sandboxing.ENV_SWITCH] = "0"      # this process and what it starts
    say.say(f"note: no sandbox on this machine ({found.reason}). The demo runs only the kit's "
            "own code, so it goes on unsandboxed; `faultdrill grade` refuses to run a "
            "candidate's code here until the sandbox works (docs/THREAT_MODEL.md).")


def _grade(root: Path, seed: int, out: Path) -> dict:
    """Run `faultdrill grade` in-process with its output captured; return results.json
    (exit 0 all passed, 1 some failed, 3 incomplete: all graded runs, with reports)."""
    import contextlib
    import io
    from graders import cli
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        status = cli.main(["grade", str(root), "--seed", str(seed), "--out", str(out), "--quiet"])
    results = out / "results.json"
    if status not in (0, 1, 3) or not results.is_file():
        last = (buffer.getvalue().strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"grading {root} could not run here (exit {status}): {last}")
    data = json.loads(results.read_text(encoding="utf-8"))
    data.setdefault("extra_data", {})["exit_status"] = status
    return data


def incomplete_reason(results: dict) -> str | None:
    """Why a grade is INCOMPLETE (exit 3, the metadata flag, or any grader error), else
    None: such a grade is never called full marks."""
    extra = results.get("extra_data") or {}
    errors = (extra.get("verdict_counts") or {}).get("error") or 0
    if extra.get("exit_status") == 3 or extra.get("incomplete") or errors:
        names = [e.get("check") for e in extra.get("grader_errors") or [] if isinstance(e, dict)]
        return (f"{errors} grader error(s)" + (f" ({', '.join(map(str, names))})" if names else "")
                if errors else "the grade is marked INCOMPLETE")
    return None


def grade_side_by_side(seed: int, say: Narrator, out: str | None) -> None:
    """Grade the reference and the starter with the same seed and print both summaries."""
    out_root = Path(out) if out else Path(tempfile.mkdtemp(prefix="faultdrill-demo-"))
    say.section("Grading the reference and the starter with the same seed "
                "(about 25 s each)")
    scores = {}
    incomplete = {}
    for label, root in (("reference", paths.REFERENCE), ("starter", paths.STARTER)):
        target = out_root / label
        try:
            results = _grade(root, seed, target)
        except RuntimeError as exc:     # the grade refused to run here (preflight, usage)
            say.bad(f"{label}: {exc}")
            return
        incomplete[label] = incomplete_reason(results)
        tests = results.get("tests", [])
        passed = sum(1 for t in tests if t.get("status") == "passed")
        scores[label] = (results["score"], sum(t.get("max_score", 0) for t in tests))
        say.say(f"{label:<10} {results['score']:6.1f} / {scores[label][1]:.1f} points, "
                f"{passed}/{len(tests)} checks passed")
        if incomplete[label]:
            say.say(f"{'':<10} INCOMPLETE: {incomplete[label]}: part of it was not graded")
        say.say(f"{'':<10} report: {target / 'report.html'}")
    (ref, ref_max), (starter, starter_max) = scores["reference"], scores["starter"]
    if incomplete["reference"]:
        say.bad(f"the reference's grade is INCOMPLETE ({incomplete['reference']}), so it is not full "
                "marks: fix the machine (the report says what failed) and run the demo again")
    else:
        say.expect(ref == ref_max, "the reference scores full marks",
                   "the reference lost points: a bug in the reference or the graders")
    say.expect(0 < starter < starter_max,
               "the starter scores more than zero and less than full: the challenges are the rest",
               "the starter's score is out of its expected range")
