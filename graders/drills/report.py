"""The drill report: `drill.json` (the record) and `drill.html` (one self-contained page).

The page is for the interviewer (it names the incident and shows the answer key): the
incident's timeline drawn against the system's own metrics (one small chart per series that
moved, with vertical marks for the injection, each fault, hints, detected / diagnosed /
mitigated and heal), the marks with their delay after injection, the symptoms with when
they became visible and when they went away, and the interviewer's level highlighted among
the incident's four behavioural anchors. Pure: a record dict in, HTML out; every value is
escaped.
"""
from __future__ import annotations

import json
from html import escape
from pathlib import Path

from .catalogue import LEVEL_TITLES, LEVELS
from .recorder import MARKS, SERIES

__all__ = ["render_html", "write_report"]

_W, _H, _PAD = 760, 110, 34
_MARK_COLOURS = {"inject": "#c00", "heal": "#080", "hint": "#d80", "detected": "#06c",
                 "diagnosed": "#609", "mitigated": "#088", "fault": "#f66"}


def _e(v) -> str:
    return escape("" if v is None else str(v), quote=True)


def _fmt(seconds) -> str:
    if seconds is None:
        return "—"
    s = float(seconds)
    return f"{int(s // 60)}:{s % 60:04.1f}"


def _chart(name: str, label: str, samples: list[dict], events: list[dict], span: float) -> str:
    points = [(s["offset_s"], s.get(name)) for s in samples if s.get(name) is not None]
    if not points or max(v for _t, v in points) <= 0:
        return ""
    top = max(v for _t, v in points) * 1.15 or 1.0
    x = lambda t: _PAD + (_W - 2 * _PAD) * (t / span if span else 0)  # noqa: E731
    y = lambda v: _H - 18 - (_H - 30) * (v / top)  # noqa: E731
    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
    marks = []
    for ev in events:
        colour = _MARK_COLOURS.get(ev["kind"])
        if colour is None or (ev["kind"] == "fault" and len(events) > 60):
            continue
        xe = x(ev["offset_s"])
        marks.append(f'<line x1="{xe:.1f}" y1="8" x2="{xe:.1f}" y2="{_H - 18}" stroke="{colour}" '
                     f'stroke-dasharray="3,2"><title>{_e(ev["kind"])} at {_fmt(ev["offset_s"])}: '
                     f'{_e(ev.get("text"))}</title></line>')
    return (f'<figure class="chart" data-series="{_e(name)}"><figcaption>{_e(label)} '
            f'(max {max(v for _t, v in points):g})</figcaption>'
            f'<svg viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" aria-label="{_e(label)}">'
            f'<line x1="{_PAD}" y1="{_H - 18}" x2="{_W - _PAD}" y2="{_H - 18}" stroke="#999"/>'
            f'<text x="{_PAD}" y="{_H - 4}" font-size="10">0:00</text>'
            f'<text x="{_W - _PAD - 30}" y="{_H - 4}" font-size="10">{_fmt(span)}</text>'
            + "".join(marks) +
            f'<polyline fill="none" stroke="#333" stroke-width="1.5" points="{line}"/></svg></figure>')


def render_html(rec: dict) -> str:
    inc = rec["incident"]
    events, samples = rec["events"], rec["samples"]
    span = max([rec.get("duration_s") or 0.0] + [s["offset_s"] for s in samples] + [e["offset_s"] for e in events]) or 1.0
    charts = "".join(_chart(name, label, samples, events, span) for name, (label, _u) in SERIES.items())
    marks = rec["marks_after_injection_s"]
    mark_rows = "".join(f"<tr><td>{m}</td><td class=\"mark-{m}\">{_fmt(marks.get(m))}</td></tr>" for m in MARKS)
    levels = "".join(
        f'<tr class="{"chosen" if rec.get("level") == k else ""}"><td>{_e(LEVEL_TITLES[k])}</td>'
        f'<td>{_e(inc["levels"][k])}</td></tr>' for k in LEVELS)
    chosen = LEVEL_TITLES.get(rec.get("level") or "", "not marked")
    seen, gone = rec.get("symptoms_seen", {}), rec.get("symptoms_gone", {})
    symptom_rows = "".join(
        f"<tr><td>{_e(s['says'])}</td><td>{_e(s['kind'])}</td><td>{_fmt(seen.get(str(i)))}</td>"
        f"<td>{'stays (evidence)' if s.get('persists_after_heal') else _fmt(gone.get(str(i)))}</td></tr>"
        for i, s in enumerate(inc["symptoms"]))
    event_rows = "".join(
        f'<tr class="ev-{_e(e["kind"])}"><td>{_fmt(e["offset_s"])}</td><td>{_e(e["kind"])}</td>'
        f'<td>{_e(e.get("text"))}</td></tr>' for e in events)
    hints = "".join(f"<li>{_e(h)}</li>" for h in inc["hints"])
    debrief = "".join(f"<li>{_e(q)}</li>" for q in inc["debrief"])
    banner = ""
    if rec.get("sandbox", {}).get("enabled") is False:
        banner += '<p class="banner">UNSANDBOXED: the services ran without the grader\'s sandbox.</p>'
    if rec.get("cleanup_ok") is False:
        banner += '<p class="banner">INCOMPLETE: something could not be stopped at the end of the drill.</p>'
    for w in [e for e in events if e["kind"] == "warning"]:
        banner += f'<p class="banner">WARNING: {_e(w.get("text"))}</p>'
    legend = " ".join(f'<span style="color:{c}">&#9646; {k}</span>' for k, c in _MARK_COLOURS.items())
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>faultdrill drill: {_e(inc['title'])}</title>"
        "<style>body{font-family:sans-serif;margin:1.2em;max-width:62em}table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px;vertical-align:top}"
        ".chosen{background:#e6f2ff;font-weight:bold}.banner{background:#fdd;padding:.5em;font-weight:bold}"
        "figure{margin:.4em 0}figcaption{font-size:12px;color:#333}</style></head><body>"
        + banner +
        f"<h1>Drill: {_e(inc['title'])}</h1>"
        f"<p>Incident <code>{_e(inc['id'])}</code> (challenge: {_e(inc['challenge'])}; {_e(inc['guide_area'])}). "
        f"Seed {_e(rec['seed'])} (replay: <code>faultdrill drill --incident {_e(inc['id'])} --seed {_e(rec['seed'])}</code>). "
        f"Submission: {_e(rec.get('submission'))}. Duration {_fmt(rec.get('duration_s'))}; ended: {_e(rec.get('end_reason'))}.</p>"
        f"<h2>Marks</h2><p>Level marked by the interviewer: <b id=\"level\">{_e(chosen)}</b>; hints given: "
        f"<b id=\"hints\">{_e(rec.get('hints_given'))}</b> of {len(inc['hints'])}.</p>"
        f"<table id=\"marks\"><tr><th>mark</th><th>after injection (m:s)</th></tr>{mark_rows}</table>"
        f"<table id=\"levels\"><tr><th>level</th><th>anchor</th></tr>{levels}</table>"
        f"<h2>Timeline against the system's metrics</h2><p class=\"legend\">{legend}</p>{charts or '<p>no metric moved</p>'}"
        f"<h2>Symptoms</h2><table id=\"symptoms\"><tr><th>what the operator sees</th><th>kind</th>"
        f"<th>visible at</th><th>gone at</th></tr>{symptom_rows}</table>"
        f"<h2>Events</h2><table id=\"events\"><tr><th>at</th><th>event</th><th>detail</th></tr>{event_rows}</table>"
        f"<h2>Answer key</h2><p><b>What happened.</b> {_e(inc['summary'])}</p>"
        f"<p><b>Expected diagnosis.</b> {_e(inc['diagnosis'])}</p><p><b>Resolution.</b> {_e(inc['resolution'])}</p>"
        f"<p><b>Hint ladder.</b></p><ol>{hints}</ol><p><b>Debrief questions.</b></p><ul>{debrief}</ul>"
        "</body></html>\n")


def write_report(rec: dict, out: Path) -> tuple[Path, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    js, html = out / "drill.json", out / "drill.html"
    js.write_text(json.dumps(rec, indent=1, default=str) + "\n", encoding="utf-8")
    html.write_text(render_html(rec), encoding="utf-8")
    return js, html
