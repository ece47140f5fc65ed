"""Readability fixes seen in real-browser screenshots (H12 item e): timestamps and task
ids do not wrap mid-string, a failed step's error is not printed twice, and an area's
percentage stays on the line of its bar. (tests/test_browser.py looks at the rendered
pages; these check the markup that makes it so, without a browser.)"""
from __future__ import annotations

import re

from graders.report.html import _bar, _pct, report_html
from reference_impl.orchestrator import dashboard

ERR = {"code": 40, "name": "upstream_failed", "definite": True, "retryable": True,
       "message": "step analyze failed on analyzer after 4 attempts: connection refused",
       "details": {"step": "analyze", "agent": "analyzer", "attempts": 4,
                   "cause": {"code": 14, "name": "internal_error", "message": "connection refused"}}}


def _task(step_error, task_error):
    return {"task_id": "fail-6eb3ba", "task_type": "triage", "status": "failed",
            "submitted_at": "2026-11-29T15:21:33.337Z", "finished_at": "2026-11-29T15:21:33.958Z",
            "error": task_error, "result": None,
            "steps": [{"step": "collect", "agent": "collector", "status": "succeeded", "attempts": 1,
                       "started_at": "2026-11-29T15:21:33.339Z", "finished_at": "2026-11-29T15:21:33.344Z",
                       "error": None},
                      {"step": "analyze", "agent": "analyzer", "status": "failed", "attempts": 4,
                       "started_at": "2026-11-29T15:21:33.345Z", "finished_at": "2026-11-29T15:21:33.957Z",
                       "error": step_error}]}


def test_timestamps_and_ids_do_not_wrap():
    html = dashboard.render([_task(ERR, ERR)], [])
    assert re.search(r"\.nw\{white-space:nowrap\}", html)
    for ts in ("2026-11-29T15:21:33.337Z", "2026-11-29T15:21:33.958Z",
               "2026-11-29T15:21:33.345Z", "2026-11-29T15:21:33.957Z"):
        assert f'<span class="nw">{ts}</span>' in html, ts
    assert '<td class="id nw">fail-6eb3ba</td>' in html


def test_a_failed_steps_error_is_shown_once():
    html = dashboard.render([_task(ERR, ERR)], [])
    assert html.count("step analyze failed on analyzer after 4 attempts") == 1
    # when the step's error says something else than the task's, both are shown
    timeout = {"code": 1, "name": "timeout", "message": "task deadline of 3000 ms passed during step analyze",
               "details": {"step": "analyze", "timeout_ms": 3000}}
    html = dashboard.render([_task(ERR, timeout)], [])
    assert html.count("step analyze failed on analyzer") == 1 and "task deadline of 3000 ms" in html


def test_area_percentage_stays_next_to_its_bar():
    from types import SimpleNamespace as NS
    area = NS(id="memory", title="Persistent memory per agent", score=0.5, level="leaning_no_hire",
              optional=False, items=[])
    sheet = NS(overall=0.5, core=0.5, areas=[area], level_note=lambda which, titles: "Leaning no hire")
    model = {"sheet": sheet, "level_titles": {"leaning_no_hire": "Leaning no hire"}, "counts":
             {"pass": 1, "fail": 1, "error": 0}, "submission": "s", "kit_version": "0", "driver": "process",
             "seed": 1, "runs": 1, "duration": 1.0, "score": 1, "max_score": 2, "decision_note": "n",
             "stopped_at_stage": None, "grader_errors": [], "checks": [], "timeline": [], "cleanup": []}
    html = report_html(model)
    assert f'<td class="nw">{_bar(0.5)}{_pct(0.5)}</td>' in html
    assert ".nw{white-space:nowrap}" in html
