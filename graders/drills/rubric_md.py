"""rubric/INCIDENTS.md, generated from the incident files (the single source).

    python3 -m graders.drills.rubric_md > rubric/INCIDENTS.md     (or faultdrill drill --rubric)

A test keeps the committed file identical to this output.
"""
from __future__ import annotations

import sys

from .catalogue import LEVEL_TITLES, LEVELS, Incident, load_incidents

__all__ = ["render"]


def _one(inc: Incident) -> list[str]:
    out = [f'<a id="{inc.id}"></a>', "", f"## {inc.title} (`{inc.id}`)", "",
           f"*Challenge:* {inc.challenge} · *area:* {inc.guide_area}"
           + (" · optional area" if inc.optional else ""), "",
           f"*Read to the candidate:* \"{inc.briefing}\"", "",
           f"**What happens.** {inc.summary}", "",
           "**Faults (seeded schedule).**", ""]
    for f in inc.faults:
        when = (f"at {f['at_s']:g} s" + (f", every {f['repeat_every_s']:g} s" if f.get("repeat_every_s") else "")
                + (f" (+ up to {f['jitter_s']:g} s, by seed)" if f.get("jitter_s") else ""))
        rest = ", ".join(f"{k} {v}" for k, v in f.items()
                         if k not in ("at_s", "repeat_every_s", "jitter_s", "action"))
        out.append(f"- {when}: `{f['action']}` {rest}")
    out += ["", "**What an operator sees** (checked against the live system by tests/test_drill_incidents.py):", ""]
    out += [f"- {s['says']} ({s['kind']}" + (", stays after heal as evidence)" if s.get("persists_after_heal") else ")")
            for s in inc.symptoms]
    out += ["", f"**Expected diagnosis.** {inc.diagnosis}", "", f"**Resolution.** {inc.resolution}", "",
            "**Hint ladder** (one at a time, recorded by the console's `hint`):", ""]
    out += [f"{i}. {h}" for i, h in enumerate(inc.hints, 1)]
    out += ["", "**Debrief questions.**", ""] + [f"- {q}" for q in inc.debrief]
    out += ["", "| level | observable evidence |", "|---|---|"]
    out += [f"| {LEVEL_TITLES[k]} | {inc.levels[k]} |" for k in LEVELS]
    return out + [""]


def render(incidents: list[Incident] | None = None) -> str:
    incidents = incidents if incidents is not None else load_incidents()
    lines = ["# Incident drills: the catalogue", "",
             "<!-- Generated from graders/drills/incidents/*.toml by `faultdrill drill --rubric`;"
             " do not edit by hand. -->", "",
             "Interviewer material: each incident's faults, symptoms, expected diagnosis and",
             "resolution, hint ladder, debrief questions and behaviourally anchored levels. How to",
             "run a drill and score it: [INTERVIEWER_GUIDE.md](INTERVIEWER_GUIDE.md#running-a-drill).", "",
             "| incident | challenge | optional |", "|---|---|---|"]
    lines += [f"| [`{i.id}`](#{i.id}) {i.title} | {i.challenge} | {'yes' if i.optional else ''} |"
              for i in incidents]
    lines.append("")
    for inc in incidents:
        lines += _one(inc)
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
