"""Observing a live system the way an operator does, and judging an incident's symptoms.

Why: an incident file states what an operator sees (a counter climbing, an alert, a
failed dashboard row, a log event, /readyz naming an agent). The kit must prove those
statements against the running system - they are the drill's answer key - so each symptom
kind has one reading here, taken only from the operator's surfaces: /metrics, /api/alerts,
/api/tasks, /readyz, /livez, the services' logs, the memory folders and what clients get.

`measure` reads every symptom once over a window (counters are read at both ends);
`wait_for` repeats measurements until each symptom has been seen present (or absent),
within a time bound. Nothing waits unbounded: every HTTP read has a timeout.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..checks import promtext
from ..client import http_get
from ..decode import decode_json

__all__ = ["Observer", "Reading", "WaitResult", "wait_for", "measure"]


def candidate_json(data):
    """Candidate bytes through the one bounded decoder (graders/decode.py): a ValueError
    for anything that is not bounded JSON (`[` x 3000, invalid UTF-8, NaN...)."""
    return decode_json(data, what="candidate JSON", max_bytes=16 * 1024 * 1024)


HTTP_TIMEOUT = 1.5
DASHBOARD_TASKS = 10


@dataclass
class Reading:
    index: int
    kind: str
    present: bool
    value: object = None
    detail: str = ""


@dataclass
class WaitResult:
    ok: bool
    seen: dict[int, float] = field(default_factory=dict)      # symptom index -> seconds
    last: list[Reading] = field(default_factory=list)
    rounds: int = 0

    def missing(self, symptoms) -> list[str]:
        return [f"[{i}] {s['kind']}: {s['says']} (last: {self._last_detail(i)})"
                for i, s in enumerate(symptoms) if i not in self.seen and self._relevant(s)]

    def _relevant(self, s) -> bool:
        return True

    def _last_detail(self, i: int) -> str:
        for r in self.last:
            if r.index == i:
                return f"{r.value!r} {r.detail}".strip()
        return "no reading"


class Observer:
    """Reads the operator's surfaces of a `LiveSystem` (and its traffic generator)."""

    def __init__(self, system, traffic=None):
        self.system, self.traffic = system, traffic

    # --- raw reads ------------------------------------------------------------------------
    def _http(self, role: str, path: str, timeout: float = HTTP_TIMEOUT):
        ep = self.system.deployment.endpoint(role)
        try:
            return http_get(ep.host, ep.http_port, path, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - an unreachable side port is a reading too
            return None, {}, str(exc).encode()

    def metrics(self, role: str) -> dict:
        status, _h, body = self._http(role, "/metrics")
        if status != 200:
            return {}
        families, _problems = promtext.parse(body.decode("utf-8", "replace"))
        return families

    @staticmethod
    def metric_value(families: dict, name: str, labels: dict | None = None,
                     exclude: dict | None = None) -> float:
        if not exclude:
            return promtext.value(families, name, **(labels or {}))
        fam = families.get(name)
        total = 0.0
        for sname, lab, v in (fam.samples if fam else []):
            if sname != name:
                continue
            if labels and not all(lab.get(k) == str(x) for k, x in labels.items()):
                continue
            if all(lab.get(k) == str(x) for k, x in exclude.items()):
                continue
            total += v
        return total

    def log_lines(self, role: str) -> list[str]:
        return self.system.deployment.logs(role)

    @staticmethod
    def log_matches(line: str, event: str | None, fields: dict | None) -> bool:
        if event is None and not fields:
            return True
        try:
            obj = candidate_json(line)
        except ValueError:
            return False
        if not isinstance(obj, dict):
            return False
        if event is not None and obj.get("event") != event:
            return False
        return all(obj.get(k) == v for k, v in (fields or {}).items())

    def alerts(self) -> list[str]:
        status, _h, body = self._http("orchestrator", "/api/alerts")
        try:
            return [a.get("name") for a in candidate_json(body).get("alerts", [])] if status == 200 else []
        except (ValueError, AttributeError):
            return []

    def recent_tasks(self, n: int = DASHBOARD_TASKS) -> list[dict]:
        """The newest `n` finished tasks with their details, as the dashboard shows them."""
        status, _h, body = self._http("orchestrator", "/api/tasks")
        if status != 200:
            return []
        try:
            listed = candidate_json(body).get("tasks", [])
        except (ValueError, AttributeError):
            return []
        out = []
        for t in listed if isinstance(listed, list) else []:
            if not isinstance(t, dict) or t.get("status") not in ("succeeded", "failed"):
                continue
            if t["status"] == "failed":
                st, _h, detail = self._http("orchestrator", f"/api/tasks/{t.get('task_id')}")
                try:
                    t = candidate_json(detail) if st == 200 else t
                except ValueError:
                    pass
            out.append(t)
            if len(out) >= n:
                break
        return out

    # --- one symptom -----------------------------------------------------------------------
    def start(self, s: dict):
        """What a windowed reading needs at the start of its window (None: instantaneous)."""
        kind = s["kind"]
        if kind == "metric" and s["change"] == "increase":
            return self.metric_value(self.metrics(s["service"]), s["metric"], s.get("labels"), s.get("exclude"))
        if kind == "metric_mean":
            fams = self.metrics(s["service"])
            return (self.metric_value(fams, s["metric"] + "_sum", s.get("labels")),
                    self.metric_value(fams, s["metric"] + "_count", s.get("labels")))
        if kind == "log":
            return len(self.log_lines(s["service"]))
        return None

    def finish(self, i: int, s: dict, begin) -> Reading:
        kind = s["kind"]
        if kind == "metric":
            v = self.metric_value(self.metrics(s["service"]), s["metric"], s.get("labels"), s.get("exclude"))
            if s["change"] == "increase":
                delta = v - (begin or 0.0)
                return Reading(i, kind, delta >= s["min"], delta, f"increase over {s.get('window_s', 2.0)} s")
            return Reading(i, kind, v >= s["min"], v, "current value")
        if kind == "metric_mean":
            fams = self.metrics(s["service"])
            total = self.metric_value(fams, s["metric"] + "_sum", s.get("labels")) - begin[0]
            count = self.metric_value(fams, s["metric"] + "_count", s.get("labels")) - begin[1]
            mean = total / count if count >= 1 else None
            return Reading(i, kind, mean is not None and mean >= s["min"], mean, f"mean of {int(count)}")
        if kind == "log":
            lines = self.log_lines(s["service"])[begin:]
            n = sum(1 for line in lines if self.log_matches(line, s.get("event"), s.get("fields")))
            return Reading(i, kind, n >= s["min"], n, "matching new lines")
        if kind == "alert":
            names = self.alerts()
            return Reading(i, kind, s["name"] in names, names, "firing alerts")
        if kind == "readyz":
            status, _h, body = self._http(s["service"], "/readyz")
            text = body.decode("utf-8", "replace")
            return Reading(i, kind, status == 503 and s["mentions"] in text, status, text[:200])
        if kind == "livez":
            status, _h, body = self._http(s["service"], "/livez", timeout=1.0)
            return Reading(i, kind, status != 200, status, body.decode("utf-8", "replace")[:120])
        if kind == "dashboard":
            tasks = self.recent_tasks()
            hits = [t["task_id"] for t in tasks if _dashboard_match(t, s)]
            return Reading(i, kind, bool(hits), len(hits), f"of the newest {len(tasks)} finished tasks")
        if kind == "traffic":
            window = s.get("window_s", 2.0)
            recent = self.traffic.recent(window) if self.traffic is not None else []
            if "outcome" in s:
                n = sum(1 for o in recent if o.outcome == s["outcome"])
                return Reading(i, kind, n >= 1, n, f"{s['outcome']} replies in {window} s")
            lat = [o.latency_s for o in recent]
            mean = sum(lat) / len(lat) if lat else None
            return Reading(i, kind, mean is not None and mean >= s["mean_latency_s"], mean, "mean latency")
        if kind == "memory":
            files = [f for f in self.system.deployment.memory_files(s["service"])
                     if f.startswith(s["folder"].rstrip("/") + "/")]
            return Reading(i, kind, len(files) >= s["min"], len(files), f"files in {s['folder']}/")
        raise ValueError(f"unknown symptom kind {kind!r}")


def _dashboard_match(task: dict, s: dict) -> bool:
    if task.get("status") != "failed":
        return False
    err = task.get("error") or {}
    cause = ((err.get("details") or {}).get("cause") or {})
    names = {err.get("name"), cause.get("name")}
    if "error" in s and err.get("name") != s["error"]:
        return False
    if "cause" in s and cause.get("name") != s["cause"]:
        return False
    if "any_of" in s and not names & set(s["any_of"]):
        return False
    if "step" in s:
        failed = [st.get("step") for st in task.get("steps") or [] if st.get("status") == "failed"]
        step = (err.get("details") or {}).get("step")
        if s["step"] not in failed and step != s["step"]:
            return False
    return True


def measure(observer: Observer, symptoms, indexes=None) -> list[Reading]:
    """One reading of each symptom (windowed ones over the longest window asked)."""
    idx = list(range(len(symptoms))) if indexes is None else list(indexes)
    windowed = [i for i in idx if symptoms[i]["kind"] in ("metric", "metric_mean", "log")
                and (symptoms[i]["kind"] != "metric" or symptoms[i]["change"] == "increase")]
    begin = {i: observer.start(symptoms[i]) for i in windowed}
    window = max([symptoms[i].get("window_s", 2.0) for i in windowed], default=0.0)
    if window:
        time.sleep(window)
    return [observer.finish(i, symptoms[i], begin.get(i)) for i in idx]


def wait_for(observer: Observer, symptoms, *, present: bool, timeout: float,
             skip_persistent: bool = False) -> WaitResult:
    """Measure repeatedly until every symptom was seen `present` (or absent) at least once,
    or `timeout` seconds passed (the last round may end up to one window later)."""
    t0 = time.monotonic()
    todo = [i for i, s in enumerate(symptoms) if not (skip_persistent and s.get("persists_after_heal"))]
    result = WaitResult(ok=False)
    while True:
        readings = measure(observer, symptoms, todo)
        result.rounds += 1
        result.last = readings
        for r in readings:
            if r.present == present and r.index not in result.seen:
                result.seen[r.index] = round(time.monotonic() - t0, 2)
        todo = [i for i in todo if i not in result.seen]
        if not todo:
            result.ok = True
            return result
        if time.monotonic() - t0 >= timeout:
            result.ok = False
            return result
        time.sleep(0.2)
