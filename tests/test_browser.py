"""The orchestrator's dashboard and the HTML grade report, looked at in a real browser.

Why a browser and not an HTML parse: what a person sees is what a page's CSS, markup and
(any) scripts produce together; a row that parses but is hidden or empty on screen is a
broken page. Debian's headless Chromium, driven by Playwright's Python package (never
`playwright install`: it downloads browsers). Screenshots are kept in test-artifacts/.

Skipped, with the reason, only when Chromium or Playwright is absent and
FAULTDRILL_REQUIRE_BROWSER is not set; CI sets it (.ci/browser-setup.sh installs both).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from graders.paths import REFERENCE, REPO_ROOT
from graders.scoring import load_rubric
sys.path.insert(0, str(Path(__file__).resolve().parent))  # refsystem.py sits next to this file
from refsystem import FAST_ENV, RefSystem  # noqa: E402

ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


def _missing() -> str | None:
    reasons = []
    if _chromium() is None:
        reasons.append("no chromium executable (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reasons.append("the playwright Python package is not installed (pip install playwright)")
    return "; ".join(reasons) or None


@pytest.fixture(scope="module")
def browser():
    why = _missing()
    if why:
        if os.environ.get("FAULTDRILL_REQUIRE_BROWSER"):
            pytest.fail(f"FAULTDRILL_REQUIRE_BROWSER is set but {why} (run .ci/browser-setup.sh)")
        pytest.skip(f"browser tests need Debian's chromium and playwright: {why} (.ci/browser-setup.sh)")
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS, headless=True, timeout=30_000)
        try:
            yield b
        finally:
            b.close()


def _page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(10_000)
    return ctx, page


def _records(n_ok: int, source: str) -> dict:
    recs = [f"2026-11-29T10:00:{i:02d}Z {'ERROR' if i % 3 == 0 else 'info'} payments {100 + i} msg {i}"
            for i in range(n_ok)] + ["not a log line", 42]
    return {"source": source, "records": recs}


@pytest.mark.slow
def test_dashboard_lists_tasks_with_timelines_and_errors(browser, tmp_path):
    run = uuid.uuid4().hex[:6]
    ok_ids = [f"web-{run}-1", f"web-{run}-2"]
    parse_id = f"parse-{run}"
    fail_id = f"fail-{run}"
    with RefSystem(tmp_path, env=FAST_ENV) as ref:
        for tid in ok_ids:
            reply = ref.submit(tid, _records(6, "web-1"))
            assert reply["type"] == "submit_ok", reply
        assert ref.submit(parse_id, _records(3, "db-1"), task_type="parse")["type"] == "submit_ok"
        with ref.client() as c:                    # two requests refused before any pipeline
            wrong = c.request({"v": 1, "type": "submit", "msg_id": "m-wrong", "task_id": "t-w",
                               "token": "WRONG-" + run, "payload": {}})
            assert wrong["error"]["name"] == "unauthorized", wrong
            bad = c.request(ref.envelope("submit", {"task_type": "triage"}, task_id=f"bad-{run}",
                                         msg_id=f"m-bad-{run}"))
            assert bad["error"]["name"] == "schema_violation", bad
        ref.kill("analyzer")                       # the next task fails at analyze
        failed = ref.submit(fail_id, _records(2, "web-2"))
        assert failed["type"] == "error" and failed["error"]["name"] == "upstream_failed", failed

        ctx, page = _page(browser)
        try:
            resp = page.goto(f"http://127.0.0.1:{ref.http_ports['orchestrator']}/", wait_until="load")
            assert resp is not None and resp.status == 200
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            body = page.inner_text("body")
            assert ref.token not in page.content()  # SPEC §12: never on the dashboard
            rows = page.locator("#tasks tbody tr")
            assert rows.count() >= 4, f"the dashboard shows {rows.count()} task rows:\n{body[:2000]}"
            for tid in ok_ids + [parse_id, fail_id]:
                assert tid in body, f"task {tid} is not visible on the dashboard"

            # Each task's step timeline: a triage task shows its three steps, visible on screen.
            row = page.locator("#tasks tbody tr", has_text=ok_ids[0])
            assert row.locator(".status").inner_text().strip() == "succeeded"
            steps = row.locator("ol.timeline > li")
            assert steps.count() == 3
            texts = [steps.nth(i).inner_text() for i in range(3)]
            for step, text in zip(("collect", "analyze", "report"), texts):
                assert text.startswith(step) and "succeeded" in text, texts
            assert steps.first.is_visible()
            # The parse route ran only collect.
            assert page.locator("#tasks tbody tr", has_text=parse_id).locator("ol.timeline > li").count() == 1

            # The failed task: status, the failing step and a readable error.
            frow = page.locator("#tasks tbody tr", has_text=fail_id)
            assert frow.locator(".status").inner_text().strip() == "failed"
            ftext = frow.inner_text()
            assert "upstream_failed" in ftext and "analyze" in ftext
            red = frow.locator(".status").evaluate("el => getComputedStyle(el).color")
            green = row.locator(".status").evaluate("el => getComputedStyle(el).color")
            assert red != green, "failed and succeeded tasks look the same"
            # Each of its analyze attempts: number, start time, duration, cause; and its trace id.
            attempts = frow.locator("li.step", has_text="analyze").locator("ul.attempts li")
            assert attempts.count() == int(FAST_ENV["FD_RETRY_MAX_ATTEMPTS"]), ftext
            first = attempts.first.inner_text()
            assert re.match(r"#1 \d\d:\d\d:\d\d\.\d{3} [\d.]+ ms transport (timeout|internal_error) \(", first), first
            assert attempts.first.is_visible()
            trace = frow.locator(".trace").inner_text().strip()
            assert re.fullmatch(r"trace [0-9a-f]{32}", trace), trace
            assert {r.get("trace_id") for r in ref.logs("orchestrator") if r.get("task_id") == fail_id} \
                == {trace.split()[1]}
            frow.scroll_into_view_if_needed()
            frow.screenshot(path=str(ARTIFACTS / "dashboard-failed-task.png"))

            # The requests refused before the pipeline: counted by reason, the recent ones listed.
            assert page.locator("h2#refused").inner_text() == "Refused requests (2)"
            counts = page.locator("p.counts").inner_text()
            assert "unauthorized 1" in counts and "schema_violation 1" in counts, counts
            recent = page.locator("#refused-recent tbody tr")
            assert recent.count() == 2 and recent.first.is_visible()
            assert f"m-bad-{run}" in recent.first.inner_text()  # newest first, its msg_id kept
            assert "WRONG-" + run not in page.content()          # nothing of the refused peer's token
            page.locator("#refused-recent").screenshot(path=str(ARTIFACTS / "dashboard-refused.png"))
        finally:
            ctx.close()


@pytest.mark.slow
def test_html_grade_report_shows_area_scores(browser, tmp_path):
    out = tmp_path / "grade"
    only = "pipeline.triage_oracle,api.status_list,security.token_refused,versioning.hello"
    proc = subprocess.run([sys.executable, "-m", "graders.cli", "grade", str(REFERENCE), "--only", only,
                           "--out", str(out), "--seed", "2024", "--quiet"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    scored = {aid: a for aid, a in results["extra_data"]["areas"].items() if a["score"] is not None}
    assert scored, "the grade run scored no area"
    titles = {a["id"]: a["title"] for a in load_rubric()["areas"]}

    ctx, page = _page(browser)
    try:
        page.goto((out / "report.html").as_uri(), wait_until="load")
        page.screenshot(path=str(ARTIFACTS / "grade-report.png"), full_page=True)
        assert "Score" in page.inner_text("body")
        table = page.locator("h2:has-text('Areas') + table")
        assert table.is_visible()
        for aid, area in scored.items():
            row = table.locator("tr", has_text=titles[aid])
            assert row.count() == 1, f"area {titles[aid]!r} is not in the report's table"
            cell = row.locator("td").nth(1).inner_text()
            assert re.search(r"\b\d{1,3}%", cell), f"area {titles[aid]!r} shows no score: {cell!r}"
            assert cell.strip().endswith(f"{100 * area['score']:.0f}%")
        # every check that ran is listed, with its verdict visible
        summaries = page.locator("details summary")
        assert summaries.count() == len(only.split(","))
        for cid in only.split(","):
            assert page.locator("summary", has_text=cid).is_visible()
    finally:
        ctx.close()
