"""The incident catalogue: one TOML file per incident in `incidents/` (the answer key).

Why data: an incident is reviewed, rendered into the rubric (rubric/INCIDENTS.md) and
tested against the live system (its stated symptoms must appear when it is injected and
disappear after heal) without touching code. `load_incidents` validates every file fully
(faults through the same validator the live API uses, symptom kinds and their fields,
four levels, a hint ladder, debrief questions) and says exactly what is wrong.

Schema of one file:
    id, title, challenge, guide_area, optional (bool), briefing (read to the candidate),
    summary (the answer key's one-liner)
    [[faults]]   at_s, optional repeat_every_s and jitter_s (seeded delay of each
                 occurrence), then one live fault (graders/live/actions.py)
    [[symptoms]] kind + fields (SYMPTOM_KINDS), says = what an operator sees,
                 optional persists_after_heal = true (evidence that stays, e.g. a counter)
    [answer]     diagnosis, resolution, hints = [...] (vague to precise), debrief = [...]
    [levels]     strong_no_hire, leaning_no_hire, leaning_hire, strong_hire
"""
from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..live.actions import FaultError, check_fault
from ..manifest import ROLES

__all__ = ["Incident", "IncidentError", "load_incidents", "incident_by_id", "pick",
           "INCIDENTS_DIR", "LEVELS", "SYMPTOM_KINDS"]

INCIDENTS_DIR = Path(__file__).resolve().parent / "incidents"
LEVELS = ("strong_no_hire", "leaning_no_hire", "leaning_hire", "strong_hire")
LEVEL_TITLES = {"strong_no_hire": "Strong no hire", "leaning_no_hire": "Leaning no hire",
                "leaning_hire": "Leaning hire", "strong_hire": "Strong hire"}

#: kind -> (required fields, optional fields)
SYMPTOM_KINDS = {
    "metric": ({"service", "metric", "change", "min"}, {"labels", "exclude", "window_s"}),
    "metric_mean": ({"service", "metric", "min"}, {"labels", "window_s"}),
    "log": ({"service", "min"}, {"event", "fields", "window_s"}),
    "alert": ({"name"}, set()),
    "readyz": ({"service", "mentions"}, set()),
    "livez": ({"service"}, set()),
    "dashboard": (set(), {"error", "cause", "step", "any_of"}),
    "traffic": (set(), {"outcome", "mean_latency_s", "window_s"}),
    "memory": ({"service", "folder", "min"}, set()),
}
_COMMON = {"kind", "says", "persists_after_heal"}


class IncidentError(ValueError):
    """An incident file that is not valid (file and problem named)."""


@dataclass(frozen=True)
class Incident:
    id: str
    title: str
    challenge: str
    guide_area: str
    optional: bool
    briefing: str
    summary: str
    faults: tuple[dict, ...]
    symptoms: tuple[dict, ...]
    diagnosis: str
    resolution: str
    hints: tuple[str, ...]
    debrief: tuple[str, ...]
    levels: dict

    def as_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "challenge": self.challenge,
                "guide_area": self.guide_area, "optional": self.optional,
                "briefing": self.briefing, "summary": self.summary,
                "faults": [dict(f) for f in self.faults], "symptoms": [dict(s) for s in self.symptoms],
                "diagnosis": self.diagnosis, "resolution": self.resolution,
                "hints": list(self.hints), "debrief": list(self.debrief), "levels": dict(self.levels)}


def _text(raw: dict, key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise IncidentError(f"{where}: {key!r} must be a non-empty string")
    return value


def _check_symptom(s: dict, where: str) -> dict:
    if not isinstance(s, dict) or s.get("kind") not in SYMPTOM_KINDS:
        raise IncidentError(f"{where}: kind must be one of {', '.join(SYMPTOM_KINDS)}")
    required, optional = SYMPTOM_KINDS[s["kind"]]
    missing = sorted(required - set(s))
    extra = sorted(set(s) - required - optional - _COMMON)
    if missing or extra:
        raise IncidentError(f"{where}: {s['kind']} symptom " + (f"lacks {missing}" if missing else "")
                            + (f" has unknown {extra}" if extra else ""))
    _text(s, "says", where)
    if "service" in s and s["service"] not in ROLES:
        raise IncidentError(f"{where}: service must be one of {', '.join(ROLES)}")
    if s["kind"] == "metric" and s["change"] not in ("increase", "above"):
        raise IncidentError(f"{where}: change must be 'increase' or 'above'")
    for key in ("min", "window_s", "mean_latency_s"):
        if key in s and (isinstance(s[key], bool) or not isinstance(s[key], (int, float)) or s[key] <= 0):
            raise IncidentError(f"{where}: {key} must be a positive number")
    if s["kind"] == "dashboard" and not ({"error", "cause", "any_of"} & set(s)):
        raise IncidentError(f"{where}: a dashboard symptom names an error, a cause or any_of")
    if s["kind"] == "traffic" and not ({"outcome", "mean_latency_s"} & set(s)):
        raise IncidentError(f"{where}: a traffic symptom names an outcome or mean_latency_s")
    return s


def _load_one(path: Path) -> Incident:
    where = path.name
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise IncidentError(f"{where}: not valid TOML: {exc}") from None
    if raw.get("id") != path.stem:
        raise IncidentError(f"{where}: id must be the file name without .toml ({path.stem!r})")
    faults = raw.get("faults") or []
    if not faults:
        raise IncidentError(f"{where}: at least one [[faults]] entry")
    for i, f in enumerate(faults):
        fw = f"{where}: faults[{i}]"
        at = f.get("at_s")
        if isinstance(at, bool) or not isinstance(at, (int, float)) or at < 0:
            raise IncidentError(f"{fw}: at_s must be a number >= 0")
        rep = f.get("repeat_every_s")
        if rep is not None and (isinstance(rep, bool) or not isinstance(rep, (int, float)) or rep < 0.5):
            raise IncidentError(f"{fw}: repeat_every_s must be at least 0.5")
        jit = f.get("jitter_s")
        if jit is not None and (isinstance(jit, bool) or not isinstance(jit, (int, float)) or jit < 0
                                or (rep and jit >= rep)):
            raise IncidentError(f"{fw}: jitter_s must be >= 0 (and below repeat_every_s)")
        try:
            check_fault({k: v for k, v in f.items() if k not in ("at_s", "repeat_every_s", "jitter_s")})
        except FaultError as exc:
            raise IncidentError(f"{fw}: {exc}") from None
    symptoms = raw.get("symptoms") or []
    if not symptoms:
        raise IncidentError(f"{where}: at least one [[symptoms]] entry")
    for i, s in enumerate(symptoms):
        _check_symptom(s, f"{where}: symptoms[{i}]")
    if all(s.get("persists_after_heal") for s in symptoms):
        raise IncidentError(f"{where}: at least one symptom must disappear after heal")
    answer = raw.get("answer") or {}
    hints, debrief = answer.get("hints") or [], answer.get("debrief") or []
    if len(hints) < 2 or not all(isinstance(h, str) and h for h in hints):
        raise IncidentError(f"{where}: answer.hints must be a ladder of at least 2 hints")
    if len(debrief) < 2 or not all(isinstance(q, str) and q for q in debrief):
        raise IncidentError(f"{where}: answer.debrief must have at least 2 questions")
    levels = raw.get("levels") or {}
    if sorted(levels) != sorted(LEVELS) or not all(isinstance(v, str) and v for v in levels.values()):
        raise IncidentError(f"{where}: [levels] must define exactly {', '.join(LEVELS)}")
    if not isinstance(raw.get("optional"), bool):
        raise IncidentError(f"{where}: optional must be true or false")
    return Incident(id=raw["id"], title=_text(raw, "title", where), challenge=_text(raw, "challenge", where),
                    guide_area=_text(raw, "guide_area", where), optional=raw["optional"],
                    briefing=_text(raw, "briefing", where), summary=_text(raw, "summary", where),
                    faults=tuple(faults), symptoms=tuple(symptoms),
                    diagnosis=_text(answer, "diagnosis", where + " [answer]"),
                    resolution=_text(answer, "resolution", where + " [answer]"),
                    hints=tuple(hints), debrief=tuple(debrief), levels={k: levels[k] for k in LEVELS})


def load_incidents(folder: Path = INCIDENTS_DIR) -> list[Incident]:
    """Every incident, core ones first, then by file name."""
    found = [_load_one(p) for p in sorted(Path(folder).glob("*.toml"))]
    return sorted(found, key=lambda i: (i.optional, i.id))


def incident_by_id(incident_id: str, folder: Path = INCIDENTS_DIR) -> Incident:
    incidents = load_incidents(folder)
    for inc in incidents:
        if inc.id == incident_id:
            return inc
    raise IncidentError(f"no incident {incident_id!r}; incidents: {', '.join(i.id for i in incidents)}")


def pick(seed: int, *, include_optional: bool = False, folder: Path = INCIDENTS_DIR) -> Incident:
    """The incident the seed chooses (core incidents only unless include_optional)."""
    pool = [i for i in load_incidents(folder) if include_optional or not i.optional]
    return random.Random(f"faultdrill-drill:{seed}").choice(pool)
