"""Running a drill: the system, its traffic, the incident's schedule, the interviewer's
console, the symptom watch, the metric sampler and the candidate's log files.

Timeline of a drill: start the system and traffic -> a healthy warm-up (`warmup_s`, the
charts' baseline) -> inject (the schedule starts) -> the interviewer marks hints,
detected, diagnosed, mitigated, a level -> `heal` (or the end) -> the symptoms are watched
until they are gone (bounded) -> report -> everything is stopped.

The console reads one command per line from any iterator of lines (stdin, a --script file,
a test), so a drill is scriptable; `wait` and `wait-symptoms` exist for scripts. Every wait
is bounded; Ctrl-C ends the drill, the report is still written and everything is stopped.
"""
from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Iterable, TextIO

from ..manifest import ROLES
from .catalogue import LEVEL_TITLES, LEVELS, Incident
from .recorder import MARKS, DrillRecord, MetricSampler
from .schedule import Schedule
from .symptoms import Observer, measure, wait_for

__all__ = ["Drill", "COMMANDS", "run_console"]

COMMANDS = {
    "hint": "read the next hint of the ladder to the candidate (recorded)",
    "detected [NOTE]": "the candidate noticed something is wrong",
    "diagnosed [NOTE]": "the candidate named the cause",
    "mitigated [NOTE]": "the candidate proposed or applied the resolution",
    "note TEXT": "a free note, timestamped",
    "level LEVEL": "your mark against the incident's levels: " + ", ".join(LEVELS),
    "heal": "end the incident (every fault healed), keep the drill open",
    "key": "show the answer key again",
    "status": "clock, symptoms visible, traffic",
    "wait SECONDS": "(scripts) pause up to 120 s",
    "wait-symptoms [SECONDS]": "(scripts) wait until every stated symptom was seen",
    "end": "finish: heal, write the report, stop everything",
}
MAX_WAIT_S = 120.0
MAX_LINE = 4096                # console lines are cut there (a runaway input cannot grow memory)


class Drill:
    def __init__(self, session, incident: Incident, *, seed: int, out: Path, stream: TextIO,
                 warmup_s: float = 2.0, submission_name: str = "", sandbox: dict | None = None):
        self.session, self.incident, self.seed = session, incident, seed
        self.out = Path(out)
        self.stream = stream
        self.warmup_s = warmup_s
        self.observer = Observer(session.system, session.traffic)
        self.record = DrillRecord(incident=incident.as_dict(), seed=seed, submission=submission_name,
                                  sandbox=sandbox or {})
        self.sampler = MetricSampler(self.observer, self.record)
        self.schedule: Schedule | None = None
        self.healed = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._log_files: dict[str, Path] = {}

    # --- output ----------------------------------------------------------------------------
    def clock(self) -> str:
        s = int(self.record.offset())
        return f"{s // 60:02d}:{s % 60:02d}"

    def say(self, text: str) -> None:
        print(f"[{self.clock()}] {text}", file=self.stream, flush=True)

    def show_key(self) -> None:
        inc = self.incident
        lines = [f"ANSWER KEY (interviewer only): {inc.title} [{inc.id}; challenge: {inc.challenge}]",
                 f"  what happens:  {inc.summary}",
                 f"  diagnosis:     {inc.diagnosis}",
                 f"  resolution:    {inc.resolution}",
                 "  symptoms the candidate can see:"]
        lines += [f"    - {s['says']}" for s in inc.symptoms]
        lines += [f"  hints ({len(inc.hints)}, `hint` gives the next):"]
        lines += [f"    {i}. {h}" for i, h in enumerate(inc.hints, 1)]
        lines += ["  levels:"] + [f"    {LEVEL_TITLES[k]}: {inc.levels[k]}" for k in LEVELS]
        lines += ["  debrief:"] + [f"    - {q}" for q in inc.debrief]
        print("\n".join(lines), file=self.stream, flush=True)

    def candidate_view(self) -> list[str]:
        """What to give the candidate: nothing here names the incident."""
        dep = self.session.system.deployment
        orch = dep.endpoint("orchestrator")
        lines = ["CANDIDATE VIEW (share these; nothing here names the incident):",
                 f"  dashboard:  http://{orch.host}:{orch.http_port}/",
                 "  metrics:    " + "  ".join(f"{r} http://{dep.endpoint(r).host}:{dep.endpoint(r).http_port}/metrics"
                                              for r in ROLES),
                 "  health:     /livez and /readyz on the same ports",
                 f"  logs:       {self.out / 'candidate-logs'}/<service>.log (JSON lines, live)",
                 f"  this sheet: {self.out / 'CANDIDATE.txt'}",
                 f"  protocol:   orchestrator tcp {':'.join(map(str, self.session.system.public_address('orchestrator')))}"
                 f"  token {self.session.system.token}",
                 f"  try:        faultdrill task --port {self.session.system.public_address('orchestrator')[1]} "
                 f"--token {self.session.system.token} FILE.json"]
        return lines

    # --- lifecycle ---------------------------------------------------------------------------
    def _spawn(self, fn, name: str) -> None:
        t = threading.Thread(target=fn, daemon=True, name=name)
        self._threads.append(t)
        t.start()

    def _relay_logs(self) -> None:
        folder = self.out / "candidate-logs"
        folder.mkdir(parents=True, exist_ok=True)
        seen = {r: 0 for r in ROLES}
        handles = {r: open(folder / f"{r}.log", "a", encoding="utf-8") for r in ROLES}
        try:
            while not self._stop.wait(0.3):
                for r in ROLES:
                    lines = self.session.system.deployment.logs(r)
                    for line in lines[seen[r]:]:
                        handles[r].write(line + "\n")
                    seen[r] = len(lines)
                    handles[r].flush()
        finally:
            for h in handles.values():
                h.close()

    def _watch_symptoms(self) -> None:
        """Record when each stated symptom is first visible after injection."""
        symptoms = list(self.incident.symptoms)
        todo = list(range(len(symptoms)))
        while todo and not self._stop.is_set() and not self.healed:
            for r in measure(self.observer, symptoms, todo):
                if r.present and r.index not in self.record.symptoms_seen and not self.healed:
                    self.record.symptoms_seen[r.index] = self.record.offset()
                    self.record.add("symptom", symptoms[r.index]["says"], index=r.index, value=r.value)
            todo = [i for i in todo if i not in self.record.symptoms_seen]
            self._stop.wait(0.3)

    def start(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        # The candidate's sheet: the same lines as on the console, nothing else.
        (self.out / "CANDIDATE.txt").write_text("\n".join(self.candidate_view()) + "\n", encoding="utf-8")
        self.record.add("start", f"system up, traffic {getattr(self.session.traffic, 'rate', 0)} tasks/s")
        self.sampler.start()
        self._spawn(self._relay_logs, "drill-logs")
        self.say(f"healthy warm-up for {self.warmup_s:g} s, then the incident is injected")
        self._stop.wait(self.warmup_s)
        if self.session.traffic is not None:
            warm = self.session.traffic.recent(max(self.warmup_s, 0.5))
            bad = [o for o in warm if o.outcome != "ok"]
            if not warm or bad:
                text = (f"the system was not healthy before the injection: {len(bad)} of {len(warm)} "
                        "tasks failed during the warm-up; symptoms may not be the incident's")
                self.record.add("warning", text)
                self.say("WARNING: " + text)
        self.schedule = Schedule(self.session.actions, self.incident.faults, seed=self.seed,
                                 on_event=lambda e: self.record.add(
                                     "fault", _fault_text(e), fault=e["fault"], error=e.get("error")))
        self.record.add("inject", f"incident {self.incident.id} injected")
        self.schedule.start()
        self.say("incident injected; the clock runs")
        self._spawn(self._watch_symptoms, "drill-symptoms")

    def heal(self) -> None:
        if self.healed:
            self.say("already healed")
            return
        self.healed = True
        if self.schedule is not None:
            self.schedule.stop()
        result = self.session.actions.heal()
        self.record.add("heal", "; ".join(result["done"]) or "nothing to heal", ready=result["ready"])
        self.say("healed: " + ("; ".join(result["done"]) or "nothing was active"))

    def finish(self, reason: str, *, settle_s: float = 15.0) -> None:
        """Heal (if not yet), watch the symptoms go (bounded), stop the helpers."""
        self.record.end_reason = reason
        if not self.healed:
            self.heal()
        gone = wait_for(self.observer, list(self.incident.symptoms), present=False,
                        timeout=settle_s, skip_persistent=True)
        base = self.record.first("heal")["offset_s"]
        self.record.symptoms_gone = {i: round(base + s, 2) for i, s in gone.seen.items()}
        self.record.add("settled" if gone.ok else "not_settled",
                        "every symptom is gone" if gone.ok else
                        "still visible after heal: " + "; ".join(gone.missing(list(self.incident.symptoms))))
        never = [s["says"] for i, s in enumerate(self.incident.symptoms) if i not in self.record.symptoms_seen]
        if never:
            text = (f"{len(never)} of the incident's stated symptoms never appeared on this system "
                    f"(the answer key may not match what the candidate saw): {'; '.join(never)}")
            self.record.add("warning", text)
            self.say("WARNING: " + text)
        self._stop.set()
        self.sampler.stop()
        for t in self._threads:
            t.join(5.0)
        self.record.ended_at = time.time()
        self.record.add("end", reason)

    # --- console -----------------------------------------------------------------------------
    def command(self, line: str) -> bool:
        """Run one console command; False when the drill should end."""
        words = line.strip().split(None, 1)
        if not words or words[0].startswith("#"):
            return True
        cmd, rest = words[0].lower(), (words[1] if len(words) > 1 else "")
        if cmd in ("end", "quit", "exit"):
            return False
        if cmd == "hint":
            if self.record.hints_given >= len(self.incident.hints):
                self.say("no hints left")
                return True
            text = self.incident.hints[self.record.hints_given]
            self.record.hints_given += 1
            self.record.add("hint", text, number=self.record.hints_given)
            self.say(f"hint {self.record.hints_given}/{len(self.incident.hints)} (read it out): {text}")
        elif cmd in MARKS:
            if self.record.first(cmd) is not None:
                self.say(f"{cmd} was already marked; adding a note instead")
                self.record.add("note", f"{cmd} again: {rest}".strip())
            else:
                self.record.add(cmd, rest)
                self.say(f"marked {cmd}" + (f": {rest}" if rest else ""))
        elif cmd == "note":
            self.record.add("note", rest)
            self.say("noted")
        elif cmd == "level":
            key = rest.strip().lower().replace(" ", "_").replace("-", "_")
            if key not in LEVELS:
                self.say(f"level must be one of: {', '.join(LEVELS)}")
                return True
            self.record.level = key
            self.record.add("level", LEVEL_TITLES[key], level=key)
            self.say(f"level: {LEVEL_TITLES[key]} - {self.incident.levels[key]}")
        elif cmd == "heal":
            self.heal()
        elif cmd == "key":
            self.show_key()
        elif cmd == "status":
            seen = len(self.record.symptoms_seen)
            stats = self.session.traffic.stats(5.0) if self.session.traffic else {}
            self.say(f"symptoms visible: {seen}/{len(self.incident.symptoms)}; hints {self.record.hints_given}; "
                     f"marks {self.record.marks()}; traffic last 5 s {stats.get('recent')}")
        elif cmd == "wait":
            try:
                seconds = min(MAX_WAIT_S, max(0.0, float(rest)))
            except ValueError:
                self.say("wait SECONDS")
                return True
            self._stop.wait(seconds)
        elif cmd == "wait-symptoms":
            try:
                limit = min(MAX_WAIT_S, float(rest)) if rest else 20.0
            except ValueError:
                limit = 20.0
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline and len(self.record.symptoms_seen) < len(self.incident.symptoms):
                self._stop.wait(0.2)
            self.say(f"symptoms visible: {len(self.record.symptoms_seen)}/{len(self.incident.symptoms)}")
        elif cmd == "help":
            for c, what in COMMANDS.items():
                print(f"    {c:<24} {what}", file=self.stream)
        else:
            self.say(f"unknown command {cmd!r}; `help` lists them")
        return True


def _fault_text(entry: dict) -> str:
    f = entry["fault"]
    parts = [f"{k}={v}" for k, v in f.items() if k != "action"]
    text = f"{f['action']} " + " ".join(parts)
    return text + (f" FAILED: {entry['error']}" if entry.get("error") else "")


def run_console(drill: Drill, lines: Iterable[str], *, time_limit_s: float) -> str:
    """Feed console lines to the drill until `end`, the input ends, or the time limit;
    returns why it ended. Lines are read on a daemon thread so the limit always holds."""
    q: "queue.Queue[str | None]" = queue.Queue()

    def reader() -> None:
        try:
            if hasattr(lines, "readline"):      # a file or stdin: every line is bounded
                while True:
                    line = lines.readline(MAX_LINE)
                    if not line:
                        break
                    q.put(line)
            else:
                for line in lines:
                    q.put(line[:MAX_LINE])
        finally:
            q.put(None)

    threading.Thread(target=reader, daemon=True, name="drill-console").start()
    deadline = time.monotonic() + time_limit_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            drill.say(f"time limit of {time_limit_s:g} s reached")
            return "time limit"
        try:
            line = q.get(timeout=min(left, 0.5))
        except queue.Empty:
            continue
        if line is None:
            return "console input ended"
        if not drill.command(line):
            return "ended by the interviewer"
