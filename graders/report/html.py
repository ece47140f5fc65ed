"""report.html: one self-contained page (inline CSS, no scripts, no external assets).

Laid out for the person reading it in a browser (tests/test_browser.py looks at it in
Chromium at 1280x800):
- the first screen says what failed and why: INCOMPLETE / PARTIAL / UNSANDBOXED banners
  (graders/report/model.py: banners), the score, then a failure summary with one line per
  failed check (and per check the grader could not run), each a link to its section;
  with many failures the list takes two columns so it still fits;
- each failure's section leads with its message and the fields that differ
  (graders/feedback.py), then the faults injected and the system's reactions *for that
  check*, then the evidence, hint, log lines and the replay command;
- passing checks are collapsed into one <details>; the whole run's timeline, for
  reference, into another, at the bottom.

Everything that came from the candidate (replies, log lines, messages) is HTML-escaped:
a submission must not be able to inject markup into the interviewer's report.
"""
from __future__ import annotations

from html import escape

from graders.feedback import differences_to_show
from graders.report.model import banners, show

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1rem 2rem;color:#1b1b1b;max-width:80rem}
h1{font-size:1.45rem;margin:.2rem 0 .3rem}h2{font-size:1.15rem;margin:1.1rem 0 .4rem}h3{font-size:1rem;margin:0 0 .3rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}.pass{color:#0a6b2d}.fail{color:#b00020;font-weight:600}.error{color:#8a5a00;font-weight:600}
pre{background:#f6f6f6;padding:.5rem;overflow:auto;white-space:pre-wrap;word-break:break-all;max-height:14rem;margin:.2rem 0 .5rem}
details{margin:.3rem 0}summary{cursor:pointer}.fault{color:#b00020}.reaction{color:#0a4f8a}.muted{color:#666}
.nw{white-space:nowrap}.bar{display:inline-block;height:.7rem;background:#0a6b2d;vertical-align:middle}.barbox{display:inline-block;width:8rem;background:#eee;margin-right:.4rem}
.banner{border:2px solid #b00020;background:#fdecee;padding:.45rem .6rem;margin:.3rem 0;font-size:1.02rem}
.banner.unsandboxed{border-color:#8a5a00;background:#fff4e0}
.banner.not-run{border-color:#555;background:#f2f2f2}
.headline{margin:.3rem 0;font-size:1.02rem}
#failures{border:1px solid #e3b3b9;background:#fffafa;padding:.3rem .8rem .5rem;margin:.4rem 0}
#failures h2{margin:.2rem 0 .3rem}
ol.failsum{margin:0;padding-left:1.6rem}ol.failsum.cols{columns:2;column-gap:2rem}
ol.failsum li{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;line-height:1.4;break-inside:avoid}
ol.failsum .why{color:#444}
section.check{border-left:4px solid #b00020;padding:.3rem .8rem;margin:.8rem 0;background:#fcfcfc}
section.check.is-error{border-left-color:#8a5a00}
.back{font-size:.85rem;font-weight:normal;margin-left:.6rem}
ul.diff{margin:.2rem 0 .4rem;padding-left:1.4rem}ul.diff code{white-space:pre-wrap;word-break:break-all}
ol.tl{margin:.2rem 0 .4rem;padding-left:1.6rem;max-height:12rem;overflow:auto}
.replay{font-family:monospace;font-size:.9rem}
"""


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def _bar(x) -> str:
    w = 0 if x is None else max(0, min(100, round(100 * x)))
    return f'<span class="barbox"><span class="bar" style="width:{w}%"></span></span>'


def anchor_id(check_id: str) -> str:
    """The id of a check's section (check ids are dotted names, valid in an id)."""
    return "check-" + "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in check_id)


def _first_line(text: str, limit: int = 240) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[:limit] + "…"


def _headline(model: dict, titles: dict) -> list[str]:
    e = escape
    sheet = model["sheet"]
    c = model["counts"]
    counts = f"{c['pass']} passed, {c['fail']} failed, {c['error']} grader errors (left out of the level; 0 points until regraded)"
    if model.get("partial"):
        return [f'<p class="headline">Points of the checks run: {model["score"]:g} / {model["max_score"]:g} — '
                f"{counts}. A replay, not a grade: no overall score, no suggested level.</p>"]
    if model.get("incomplete"):
        return [f'<p class="headline"><strong>Score {model["score"]:g} / {model["max_score"]:g}</strong> '
                f"(INCOMPLETE) — overall {_pct(sheet.overall)}, core areas {_pct(sheet.core)} of what was "
                f"graded; no level suggested · {counts}.</p>"]
    flag = ""
    return [f'<p class="headline"><strong>Score {model["score"]:g} / {model["max_score"]:g}</strong>{flag} — '
            f"overall {_pct(sheet.overall)} (suggested: {e(sheet.level_note('overall', titles))}); core areas "
            f"{_pct(sheet.core)} (suggested: {e(sheet.level_note('core', titles))}) · {counts}.</p>"]


def _failure_summary(model: dict, bad: list[dict]) -> list[str]:
    e = escape
    total = len(model["checks"])
    fails = [ch for ch in bad if ch["status"] == "fail"]
    errors = [ch for ch in bad if ch["status"] == "error"]
    h = ['<section id="failures">']
    if not bad:
        h.append(f'<h2 class="pass">Every one of the {total} checks run passed</h2>')
    else:
        head = f"What failed: {len(fails)} of {total} checks"
        if errors:
            head += f"; {len(errors)} could not be graded"
        h.append(f"<h2>{e(head)}</h2>")
        cls = "failsum cols" if len(bad) > 14 else "failsum"
        h.append(f'<ol class="{cls}">')
        for ch in bad:
            word = "FAIL" if ch["status"] == "fail" else "not graded"
            h.append(f'<li><a href="#{anchor_id(ch["id"])}"><span class="{ch["status"]}">{word}</span> '
                     f'<code>{e(ch["id"])}</code></a> <span class="why">{e(_first_line(ch["verdict"]["message"]))}</span></li>')
        h.append("</ol>")
    if model["stopped_at_stage"] is not None:
        h.append(f'<p class="muted">Stopped after stage {model["stopped_at_stage"]} (first failing stage).</p>')
    h.append("</section>")
    return h


def _timeline_list(events: list[dict]) -> list[str]:
    e = escape
    h = ['<ol class="tl">']
    h += [f'<li class="{e(str(t["kind"]))}">{t["t"]:.3f}s {e(str(t["kind"]))}: {e(str(t["text"]))}</li>'
          for t in events[:300]]
    if len(events) > 300:
        h.append(f"<li class=muted>... {len(events) - 300} more events</li>")
    h.append("</ol>")
    return h


def _check_section(ch: dict) -> list[str]:
    e = escape
    v = ch["verdict"]
    cls = ch["status"]
    word = {"fail": "FAIL", "error": "GRADER ERROR"}[cls]
    hidden = " (interviewer-only)" if ch["visibility"] == "hidden" else ""
    h = [f'<section class="check is-{cls}" id="{anchor_id(ch["id"])}">',
         f'<h3><span class="{cls}">{word}</span> stage {ch["stage"]} <code>{e(ch["id"])}</code> '
         f'{e(ch["title"])}{hidden} — {ch["passes"]}/{ch["passes"] + ch["fails"]} runs'
         f'<a class="back" href="#failures">↑ summary</a></h3>',
         f'<p class="msg">{e(v["message"])}</p>']
    if cls == "error":
        h.append("<p class=muted>The grader itself could not run this check; it is left out of the "
                 "suggested level and earns no points until a regrade.</p>")
    diffs = differences_to_show(v.get("expected"), v.get("received"))
    if diffs:
        h.append('<p>what differs:</p><ul class="diff">')
        h += [f"<li><code>{e(d.line())}</code></li>" for d in diffs[:12]]
        if len(diffs) > 12:
            h.append(f"<li class=muted>... and {len(diffs) - 12} more</li>")
        h.append("</ul>")
    if v.get("timeline"):
        h.append(f"<p>faults injected and reactions during this check ({len(v['timeline'])}):</p>")
        h += _timeline_list(v["timeline"])
    evidence = [(label, v[label]) for label in ("sent", "expected", "received") if v.get(label) is not None]
    if evidence:
        h.append(f'<details{"" if diffs else " open"}><summary>evidence: '
                 f'{", ".join(label for label, _ in evidence)}</summary>')
        h += [f"<p>{label}:</p><pre>{e(show(value, 6000))}</pre>" for label, value in evidence]
        h.append("</details>")
    if v.get("hint"):
        h.append(f"<p><strong>Hint:</strong> {e(v['hint'])}</p>")
    if v.get("trace"):
        h.append(f"<details><summary>grader traceback</summary><pre>{e(v['trace'])}</pre></details>")
    for role, lines in (v.get("log_lines") or {}).items():
        h.append(f"<details><summary>your_{e(role)} log lines ({len(lines[-20:])})</summary>"
                 f"<pre>{e(chr(10).join(lines[-20:]))}</pre></details>")
    h.append(f'<p class="replay">replay: faultdrill grade PATH --seed {v["seed"]} --only {e(ch["id"])}</p>')
    h.append("</section>")
    return h


def report_html(model: dict) -> str:
    e = escape
    sheet = model["sheet"]
    titles = model["level_titles"]
    lv = lambda x: e(titles.get(x, "—")) if x else "—"  # noqa: E731
    checks = sorted(model["checks"], key=lambda c: (c["stage"], c["id"]))
    bad = [ch for ch in checks if ch["status"] != "pass"]
    bad.sort(key=lambda ch: (ch["status"] == "error", ch["stage"], ch["id"]))  # failures first
    passed = [ch for ch in checks if ch["status"] == "pass"]
    h = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         '<meta name="viewport" content="width=device-width, initial-scale=1">',
         f"<title>faultdrill grade: {e(str(model['submission']))}</title>",
         f"<style>{_CSS}</style></head><body>",
         f"<h1>faultdrill grade: {e(str(model['submission']))}</h1>"]
    # INCOMPLETE / PARTIAL / UNSANDBOXED first (graders/report/model.py: banners)
    for kind, text in banners(model):
        label, _, rest = text.partition(":")
        h.append(f'<p class="banner {e(kind)}" role="alert"><strong>{e(label)}</strong>:{e(rest)}</p>')
    h += _headline(model, titles)
    h.append(f'<p class="muted">kit {e(model["kit_version"])} · driver {e(model["driver"])} · seed '
             f'{model["seed"]} · runs {model["runs"]} · {model["duration"]:.1f} s</p>')
    h += _failure_summary(model, bad)
    h.append(f"<p><em>{e(model['decision_note'])}</em></p>")
    h.append("<h2>Areas</h2><table><tr><th>area</th><th>score</th><th>suggested level</th><th>items</th></tr>")
    for a in sheet.areas:
        items = "<br>".join(f"{_pct(it.score)} {e(it.title)}" + (" <span class=error>(grader errors: "
                            + e(", ".join(it.errored)) + ")</span>" if it.errored else "")
                            for it in a.items)
        h.append(f"<tr><td>{e(a.title)}</td>"
                 f'<td class="nw">{_bar(a.score)}{_pct(a.score)}</td><td>{lv(a.level)}</td><td>{items}</td></tr>')
    h.append("</table>")
    if bad:
        h.append('<h2 id="failed-checks">Failed checks, each with its faults and reactions</h2>')
        for ch in bad:
            h += _check_section(ch)
    if passed:
        h.append(f'<details id="passed"><summary><span class="pass">{len(passed)} passed checks</span> '
                 "(click to show)</summary><ul>")
        for ch in passed:
            hidden = " (interviewer-only)" if ch["visibility"] == "hidden" else ""
            runs = f"{ch['passes']}/{ch['passes'] + ch['fails']} runs"
            tl = ch["verdict"].get("timeline") or []
            h.append(f'<li id="{anchor_id(ch["id"])}"><span class="pass">pass</span> stage {ch["stage"]} '
                     f"<code>{e(ch['id'])}</code> {e(ch['title'])}{hidden} — {runs}, seed {ch['verdict']['seed']}")
            if tl:
                h.append(f"<details><summary>{len(tl)} faults and reactions</summary>")
                h += _timeline_list(tl)
                h.append("</details>")
            h.append("</li>")
        h.append("</ul></details>")
    if model["timeline"]:
        h.append(f'<details id="timeline"><summary>Timeline of the whole run: injected faults vs system '
                 f"reactions ({len(model['timeline'])} events)</summary><table>"
                 "<tr><th>t (s)</th><th>run</th><th>check</th><th>kind</th><th>what</th></tr>")
        for t in model["timeline"][:1000]:
            h.append(f'<tr class="{e(t["kind"])}"><td>{t["t"]:.3f}</td><td>{t["run"]}</td>'
                     f"<td><code>{e(t['check'])}</code></td><td>{e(t['kind'])}</td><td>{e(t['text'])}</td></tr>")
        h.append("</table></details>")
    if model["cleanup"]:
        h.append("<h2>Cleanup notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in model["cleanup"]) + "</ul>")
    h.append("</body></html>")
    return "\n".join(h) + "\n"
