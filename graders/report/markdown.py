"""report.md: the grade as Markdown, for a pull request comment or a terminal."""
from __future__ import annotations

from graders.report.model import banners, show


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def _code(text: str) -> str:
    text = text.replace("```", "`\u200b``")
    return f"```\n{text}\n```"


def report_md(model: dict) -> str:
    sheet = model["sheet"]
    titles = model["level_titles"]
    lv = lambda x: titles.get(x, "—") if x else "—"  # noqa: E731
    c = model["counts"]
    out = [f"# faultdrill grade: {model['submission']}", ""]
    for _kind, text in banners(model):
        out += [f"> **{text.split(':', 1)[0]}**:{text.split(':', 1)[1]}", ""]
    out += [f"kit {model['kit_version']} · driver {model['driver']} · seed {model['seed']} · "
           f"runs {model['runs']} · {model['duration']:.1f} s", "",
           (f"Points of the checks run: {model['score']:g} / {model['max_score']:g} — checks: {c['pass']} passed, "
            if model.get("partial") else
            f"**Score {model['score']:g} / {model['max_score']:g}** — checks: {c['pass']} passed, ")
           + 
           f"{c['fail']} failed, {c['error']} grader errors (left out of the level; 0 points until regraded).", ""]
    if model.get("partial"):
        out += [f"Partial run: {sheet.level_note('overall', titles)}.", ""]
    else:
        out += [f"Overall {_pct(sheet.overall)}{' (INCOMPLETE)' if model.get('incomplete') else ''} "
                f"(suggested: {sheet.level_note('overall', titles)}); core areas "
                f"{_pct(sheet.core)} (suggested: {sheet.level_note('core', titles)}).", ""]
    out += [f"> {model['decision_note']}", "",
            "## Areas", "", "| area | score | suggested level |", "|---|---|---|"]
    for a in sheet.areas:
        out.append(f"| {a.title} | {_pct(a.score)} | {lv(a.level)} |")
    if model["stopped_at_stage"] is not None:
        out += ["", f"Stopped after stage {model['stopped_at_stage']} (first failing stage)."]
    if model["grader_errors"]:
        out += ["", "## Grader errors (unproven: no points, the grade is INCOMPLETE; re-grade)", ""]
        out += [f"- `{cid}`" for cid in model["grader_errors"]]
    out += ["", "## Checks", "", "| stage | check | result | runs |", "|---|---|---|---|"]
    checks = sorted(model["checks"], key=lambda c: (c["stage"], c["id"]))
    for ch in checks:
        res = {"pass": "pass", "fail": "**FAIL**", "error": "grader error"}[ch["status"]]
        hidden = " (hidden)" if ch["visibility"] == "hidden" else ""
        out.append(f"| {ch['stage']} | `{ch['id']}`{hidden} {ch['title']} | {res} | "
                   f"{ch['passes']}/{ch['passes'] + ch['fails']} |")
    for ch in checks:
        if ch["status"] == "pass":
            continue
        v = ch["verdict"]
        out += ["", f"### `{ch['id']}` — {ch['title']}", "", v["message"].replace("\n", " "), ""]
        for label in ("sent", "expected", "received"):
            if v.get(label) is not None:
                out += [f"{label}:", _code(show(v[label], 3000))]
        if v.get("hint"):
            out += ["", f"Hint: {v['hint']}"]
        if v.get("trace"):
            out += ["", "grader traceback:", _code(v["trace"])]
        for role, lines in (v.get("log_lines") or {}).items():
            out += ["", f"your_{role} (last lines):", _code("\n".join(lines[-15:]))]
    if model["timeline"]:
        out += ["", "## Faults and reactions", "", "| t (s) | check | kind | what |", "|---|---|---|---|"]
        for e in model["timeline"][:400]:
            out.append(f"| {e['t']:.3f} | `{e['check']}` | {e['kind']} | {e['text'].replace('|', '/')} |")
    return "\n".join(out) + "\n"
