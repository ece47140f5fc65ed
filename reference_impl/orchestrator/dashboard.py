"""The orchestrator's HTML dashboard (SPEC §13): recent tasks, each one's step timeline, errors.

Pure: records in, HTML string out. Every value that came from a client or an agent
(task ids, sources, error messages) is HTML-escaped, so a hostile task payload cannot
inject markup. The page never sees the token: it is rendered only from task records,
which never contain it.
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


def render(tasks: list[dict], alerts: list[dict], *, title: str = "faultdrill orchestrator") -> str:
    """The whole page. ``tasks`` newest first (status payloads), ``alerts`` as /api/alerts.

    A failed step's error is shown in its timeline entry only when it says something the
    task's error (last column) does not: the step that ended a task usually carries the
    very same error object, and printing it twice made the row hard to read."""
    rows = []
    for t in tasks:
        steps = []
        task_error = _error_text(t.get("error"))
        for s in t.get("steps") or []:
            step_error = _error_text(s.get("error"))
            steps.append(
                f'<li class="step {_e(s.get("status"))}"><b>{_e(s.get("step"))}</b> '
                f'on {_e(s.get("agent"))}: {_e(s.get("status"))}, {_e(s.get("attempts"))} attempt(s), '
                f'{_ts(s.get("started_at"))} &rarr; {_ts(s.get("finished_at"))}'
                + (f'<div class="err">{_e(step_error)}</div>'
                   if step_error and step_error != task_error else "")
                + "</li>")
        rows.append(
            "<tr>"
            f'<td class="id nw">{_e(t.get("task_id"))}</td>'
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
        ".err{color:#a00}.timeline{margin:0;padding-left:1.2em}.nw{white-space:nowrap}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f"<h2>Alerts</h2><ul>{alert_items}</ul>"
        f"<h2>Recent tasks ({len(tasks)})</h2>"
        "<table><thead><tr><th>task</th><th>type</th><th>status</th><th>submitted</th>"
        "<th>finished</th><th>steps</th><th>error</th></tr></thead><tbody>"
        + "".join(rows) +
        "</tbody></table></body></html>\n")
