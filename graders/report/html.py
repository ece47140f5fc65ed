"""report.html: one self-contained page (inline CSS, no scripts, no external assets).

Everything that came from the candidate (replies, log lines, messages) is HTML-escaped:
a submission must not be able to inject markup into the interviewer's report.
"""
from __future__ import annotations

from html import escape

from graders.report.model import show

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1b1b1b;max-width:75rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}.pass{color:#0a6b2d}.fail{color:#b00020;font-weight:600}.error{color:#8a5a00}
pre{background:#f6f6f6;padding:.5rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all;max-height:24rem}
details{margin:.3rem 0}summary{cursor:pointer}.fault{color:#b00020}.reaction{color:#0a4f8a}.muted{color:#666}
.nw{white-space:nowrap}.bar{display:inline-block;height:.7rem;background:#0a6b2d;vertical-align:middle}.barbox{display:inline-block;width:8rem;background:#eee;margin-right:.4rem}
"""


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def _bar(x) -> str:
    w = 0 if x is None else max(0, min(100, round(100 * x)))
    return f'<span class="barbox"><span class="bar" style="width:{w}%"></span></span>'


def report_html(model: dict) -> str:
    e = escape
    sheet = model["sheet"]
    titles = model["level_titles"]
    lv = lambda x: e(titles.get(x, "—")) if x else "—"  # noqa: E731
    c = model["counts"]
    h = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         f"<title>faultdrill grade: {e(str(model['submission']))}</title>",
         f"<style>{_CSS}</style></head><body>",
         f"<h1>faultdrill grade: {e(str(model['submission']))}</h1>",
         f'<p class="muted">kit {e(model["kit_version"])} · driver {e(model["driver"])} · seed '
         f'{model["seed"]} · runs {model["runs"]} · {model["duration"]:.1f} s</p>',
         f"<p><strong>Score {model['score']:g} / {model['max_score']:g}</strong> — "
         f"{c['pass']} passed, {c['fail']} failed, {c['error']} grader errors (not counted).</p>",
         f"<p>Overall {_pct(sheet.overall)} (suggested: {e(sheet.level_note('overall', titles))}); core areas "
         f"{_pct(sheet.core)} (suggested: {e(sheet.level_note('core', titles))}).</p>",
         f"<p><em>{e(model['decision_note'])}</em></p>",
         "<h2>Areas</h2><table><tr><th>area</th><th>score</th><th>suggested level</th><th>items</th></tr>"]
    for a in sheet.areas:
        items = "<br>".join(f"{_pct(it.score)} {e(it.title)}" + (" <span class=error>(grader errors: "
                            + e(", ".join(it.errored)) + ")</span>" if it.errored else "")
                            for it in a.items)
        h.append(f"<tr><td>{e(a.title)}</td>"
                 f'<td class="nw">{_bar(a.score)}{_pct(a.score)}</td><td>{lv(a.level)}</td><td>{items}</td></tr>')
    h.append("</table>")
    if model["stopped_at_stage"] is not None:
        h.append(f"<p>Stopped after stage {model['stopped_at_stage']} (first failing stage).</p>")
    if model["grader_errors"]:
        h.append("<h2>Grader errors (not counted against the candidate)</h2><ul>")
        h += [f"<li><code>{e(cid)}</code></li>" for cid in model["grader_errors"]]
        h.append("</ul>")
    h.append("<h2>Checks</h2>")
    for ch in sorted(model["checks"], key=lambda c: (c["stage"], c["id"])):
        v = ch["verdict"]
        cls = ch["status"]
        word = {"pass": "pass", "fail": "FAIL", "error": "grader error"}[cls]
        h.append(f'<details{" open" if cls != "pass" else ""}><summary><span class="{cls}">{word}</span> '
                 f"stage {ch['stage']} <code>{e(ch['id'])}</code> {e(ch['title'])}"
                 f"{' (hidden)' if ch['visibility'] == 'hidden' else ''} — "
                 f"{ch['passes']}/{ch['passes'] + ch['fails']} runs</summary>")
        h.append(f"<p>{e(v['message'])}</p><p class=muted>items: {e(', '.join(ch['items']))}; seed {v['seed']}</p>")
        for label in ("sent", "expected", "received"):
            if v.get(label) is not None:
                h.append(f"<p>{label}:</p><pre>{e(show(v[label], 6000))}</pre>")
        if v.get("hint"):
            h.append(f"<p><strong>Hint:</strong> {e(v['hint'])}</p>")
        if v.get("trace"):
            h.append(f"<p>grader traceback:</p><pre>{e(v['trace'])}</pre>")
        if v.get("timeline"):
            h.append("<p>timeline:</p><ul>")
            h += [f'<li class="{e(t["kind"])}">{t["t"]:.3f}s {e(t["kind"])}: {e(t["text"])}</li>' for t in v["timeline"]]
            h.append("</ul>")
        for role, lines in (v.get("log_lines") or {}).items():
            h.append(f"<p>your_{e(role)} log lines:</p><pre>{e(chr(10).join(lines[-20:]))}</pre>")
        h.append("</details>")
    if model["timeline"]:
        h.append("<h2>Timeline: injected faults vs system reactions</h2><table>"
                 "<tr><th>t (s)</th><th>run</th><th>check</th><th>kind</th><th>what</th></tr>")
        for t in model["timeline"][:1000]:
            h.append(f'<tr class="{e(t["kind"])}"><td>{t["t"]:.3f}</td><td>{t["run"]}</td>'
                     f"<td><code>{e(t['check'])}</code></td><td>{e(t['kind'])}</td><td>{e(t['text'])}</td></tr>")
        h.append("</table>")
    if model["cleanup"]:
        h.append("<h2>Cleanup notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in model["cleanup"]) + "</ul>")
    h.append("</body></html>")
    return "\n".join(h) + "\n"
