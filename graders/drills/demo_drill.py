"""The demo's last step: a one-minute drill, narrated.

The seed picks a core incident; the demo plays the interviewer with a fixed script (it
waits for the symptoms, gives one hint, marks detected / diagnosed / mitigated and a level)
only to show the machinery: the symptoms the system itself shows, when they appeared and
went away, and the report an interviewer gets. Bounded: about 15-30 s on a quiet machine,
at most the time limit below; everything is stopped at the end, also on an error.
"""
from __future__ import annotations

import io
import secrets
import tempfile
from pathlib import Path

from .. import paths
from ..manifest import load_manifest
from .catalogue import pick
from .report import write_report
from .runner import Drill, run_console

__all__ = ["run_demo_drill", "SCRIPT"]

SCRIPT = ["wait-symptoms 20", "hint", "detected", "diagnosed", "mitigated", "level leaning_hire", "end"]
TIME_LIMIT_S = 50.0


def run_demo_drill(seed: int, say, out: str | None = None) -> Path | None:
    """Run the drill, narrating through `say` (the demo's Narrator); the report folder."""
    from ..live.session import LiveSession
    from ..live.system import LIVE_SETTINGS
    incident = pick(seed)
    out_dir = Path(out) / "drill" if out else Path(tempfile.mkdtemp(prefix="faultdrill-demo-drill-"))
    say.section(f"A one-minute drill: incident {incident.id!r} ({incident.challenge}), chosen by the seed")
    say.say(f"what the interviewer reads out: \"{incident.briefing}\"")
    session = LiveSession.start(load_manifest(paths.REFERENCE), seed=seed, token=secrets.token_hex(16),
                                settings=LIVE_SETTINGS, traffic_rate=8, api_port=None)
    console = io.StringIO()
    drill = Drill(session, incident, seed=seed, out=out_dir, stream=console, warmup_s=2.0,
                  submission_name="faultdrill-reference",
                  sandbox={"enabled": getattr(session.system.deployment, "sandboxed", None)})
    try:
        say.say("system up with a fault proxy on every hop and 8 tasks/s of seeded traffic; "
                "2 s healthy, then the incident")
        drill.start()
        reason = run_console(drill, iter(SCRIPT), time_limit_s=TIME_LIMIT_S)
    finally:
        try:
            drill.finish(reason if "reason" in locals() else "error", settle_s=15.0)
        finally:
            report = session.close()
            drill.record.cleanup_ok = report is None or report.ok
    rec = drill.record.as_json()
    seen, gone = rec["symptoms_seen"], rec["symptoms_gone"]
    inject = next(e["offset_s"] for e in rec["events"] if e["kind"] == "inject")
    for i, s in enumerate(incident.symptoms):
        when = seen.get(str(i))
        say.say(f"symptom: {s['says']}: "
                + (f"visible {when - inject:.1f} s after injection" if when is not None else "NOT seen"))
    say.expect(len(seen) == len(incident.symptoms),
               "every symptom the incident states showed up in the system's own signals",
               "some stated symptoms never showed up")
    lasting = [i for i, s in enumerate(incident.symptoms) if not s.get("persists_after_heal")]
    say.expect(all(str(i) in gone for i in lasting), "after heal, they went away",
               "some symptoms stayed after heal")
    say.say("the demo played the interviewer (one hint, marks, a level) to fill the report; "
            "in an interview the console is yours: faultdrill drill --help")
    js, html = write_report(rec, out_dir)
    say.say(f"drill report: {html}")
    say.expect(drill.record.cleanup_ok, "the drill left nothing running", f"left behind: {report and report.survivors}")
    return out_dir
