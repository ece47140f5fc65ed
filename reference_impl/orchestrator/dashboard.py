"""The orchestrator's HTML dashboard (SPEC §13): recent tasks, each one's step timeline, errors.

What an operator needs to answer "what happened to my request?": the requests refused
before any pipeline ran (counted by reason, the recent ones listed), each task's trace id
(to find every log line of it on all four services: ``grep <trace id>``), and for each
step every attempt with its start, duration and cause of failure.

Pure: records in, HTML string out. Every value that came from a client or an agent
(task ids, sources, error messages) is HTML-escaped, so a hostile task payload cannot
inject markup. The page never sees the token: it is rendered only from task records,
attempt entries and the refusal log, none of which contains it.
"""

from __future__ import annotations

from html import escape


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _error_text(error: dict | None) -> str:
    if not error:
        return ""
    text = f"{error.get('name')} ({error.get('code')}): {error.get('message')}"
    cause = (error.get("details") or {}).get("cause")
    if isinstance(cause, dict):
        text += f" — cause {cause.get('name')}: {cause.get('message')}"
    return text


def _ts(value: object) -> str:
    """A timestamp that never breaks across lines (it would at its hyphens)."""
    return f'<span class="nw">{_e(value)}</span>'


def _clock(value: object) -> str:
    """The time of day of an RFC 3339 timestamp (the whole value on hover)."""
    text = "" if value is None else str(value)
    short = text[11:23] if len(text) >= 23 and text[10:11] == "T" else text
    return f'<span class="nw" title="{_e(text)}">{_e(short)}</span>'


def _cause_text(cause: dict | None) -> str:
    if not cause:
        return ""
    return f"{cause.get('name')} ({cause.get('code')}): {cause.get('message')}"


def _attempts_html(entries: list[dict]) -> str:
    """One line per attempt: number, start, duration, outcome and the cause of a failure."""
    if not entries:
        return ""
    items = []
    for a in entries:
        outcome = a.get("outcome")
        cause = _cause_text(a.get("cause"))
        items.append(
            f'<li class="attempt {_e(outcome)}">#{_e(a.get("attempt"))} {_clock(a.get("started_at"))} '
            f'<span class="nw">{_e(a.get("duration_ms"))} ms</span> {_e(outcome)}'
            + (f' <span class="err">{_e(cause)}</span>' if cause else "") + "</li>")
    return f'<ul class="attempts">{"".join(items)}</ul>'


def _refused_html(refused: dict | None, shown: int = 20) -> str:
    if refused is None:
        return ""
    counts = refused.get("counts") or {}
    total = refused.get("total", 0)
    summary = ", ".join(f'<span class="reason">{_e(name)}</span> {_e(n)}' for name, n in counts.items())
    recent = list(refused.get("recent") or [])
    rows = "".join(
        "<tr>"
        f"<td>{_clock(r.get('at'))}</td>"
        f'<td class="err nw">{_e(r.get("reason"))} ({_e(r.get("code"))})</td>'
        f"<td>{_e(r.get('type'))}</td>"
        f'<td class="nw">{_e(r.get("peer"))}</td>'
        f'<td class="id">{_e(r.get("msg_id"))}</td>'
        f'<td class="id">{_e(r.get("task_id"))}</td>'
        f'<td class="trace">{_e(r.get("trace_id"))}</td>'
        f"<td>{_e(r.get('message'))}</td>"
        "</tr>" for r in recent[:shown])
    more = (f'<p class="more">{len(recent) - shown} more (and the last {_e(refused.get("capacity"))}) at '
            '<a href="/api/refused">/api/refused</a></p>' if len(recent) > shown else "")
    table = ("<table id=\"refused-recent\"><thead><tr><th>at</th><th>reason</th><th>type</th><th>peer</th>"
             "<th>msg_id</th><th>task</th><th>trace id</th><th>message</th></tr></thead><tbody>"
             + rows + "</tbody></table>") if recent else ""
    return (f'<h2 id="refused">Refused requests ({_e(total)})</h2>'
            f'<p class="counts">{summary or "none"}</p>' + table + more)


def render(tasks: list[dict], alerts: list[dict], *, refused: dict | None = None,
           title: str = "faultdrill orchestrator") -> str:
    """The whole page. ``tasks`` newest first (status payloads, each optionally with
    ``trace_id`` and ``attempt_log``: pipeline.attempt_entry dicts), ``alerts`` as
    /api/alerts, ``refused`` as /api/refused (RefusalLog.snapshot).

    A failed step's error is shown in its timeline entry only when it says something the
    task's error (last column) does not: the step that ended a task usually carries the
    very same error object, and printing it twice made the row hard to read. Attempts
    are listed under their step; a step that succeeded at its first attempt gets its
    one line too, so that every step shows how long its agent took."""
    rows = []
    for t in tasks:
        steps = []
        task_error = _error_text(t.get("error"))
        attempt_log = t.get("attempt_log") or []
        for s in t.get("steps") or []:
            step_error = _error_text(s.get("error"))
            mine = [a for a in attempt_log if a.get("step") == s.get("step")]
            steps.append(
                f'<li class="step {_e(s.get("status"))}"><b>{_e(s.get("step"))}</b> '
                f'on {_e(s.get("agent"))}: {_e(s.get("status"))}, {_e(s.get("attempts"))} attempt(s), '
                f'{_ts(s.get("started_at"))} &rarr; {_ts(s.get("finished_at"))}'
                + _attempts_html(mine)
                + (f'<div class="err">{_e(step_error)}</div>'
                   if step_error and step_error != task_error else "")
                + "</li>")
        trace = t.get("trace_id")
        rows.append(
            f'<tr id="task-{_e(t.get("task_id"))}">'
            f'<td class="id nw">{_e(t.get("task_id"))}'
            + (f'<div class="trace" title="trace id: grep it in every service\'s log">trace {_e(trace)}</div>'
               if trace else "") + "</td>"
            f'<td>{_e(t.get("task_type"))}</td>'
            f'<td class="status {_e(t.get("status"))}">{_e(t.get("status"))}</td>'
            f"<td>{_ts(t.get('submitted_at'))}</td>"
            f"<td>{_ts(t.get('finished_at'))}</td>"
            f'<td><ol class="timeline">{"".join(steps)}</ol></td>'
            f'<td class="err">{_e(task_error)}</td>'
            "</tr>")
    alert_items = "".join(
        f'<li class="alert">{_e(a.get("name"))} ({_e(a.get("severity"))}): value {_e(a.get("value"))} '
        f'since {_e(a.get("since"))}</li>' for a in alerts) or "<li>none firing</li>"
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)}</title>"
        '<meta http-equiv="refresh" content="5">'
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;width:100%}"
        "td,th{border:1px solid #ccc;padding:4px;vertical-align:top;font-size:13px}"
        ".succeeded{color:#060}.failed{color:#a00}.running,.queued{color:#a60}"
        ".err{color:#a00}.timeline{margin:0;padding-left:1.2em}.nw{white-space:nowrap}"
        ".attempts{margin:2px 0;padding-left:1.2em;font-size:12px;color:#444}"
        ".attempt.ok{color:#060}.trace{font-family:monospace;font-size:11px;color:#555}"
        ".counts .reason{font-weight:bold}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f"<h2>Alerts</h2><ul>{alert_items}</ul>"
        + _refused_html(refused) +
        f"<h2>Recent tasks ({len(tasks)})</h2>"
        "<table id=\"tasks\"><thead><tr><th>task</th><th>type</th><th>status</th><th>submitted</th>"
        "<th>finished</th><th>steps and attempts</th><th>error</th></tr></thead><tbody>"
        + "".join(rows) +
        "</tbody></table></body></html>\n")
