"""The orchestrator's dashboard and the HTML grade report, looked at in a real browser.

Why a browser and not an HTML parse: what a person sees is what a page's CSS, markup and
(any) scripts produce together; a row that parses but is hidden or empty on screen is a
broken page. Debian's headless Chromium, driven by Playwright's Python package (never
`playwright install`: it downloads browsers). Dashboard screenshots are kept in
test-artifacts/; report screenshots are written under each test's tmp dir and copied to
$FAULTDRILL_ARTIFACTS when that is set (keep_artifact).

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


def keep_artifact(path: Path) -> Path:
    """Screenshots are written under the test's tmp dir; with FAULTDRILL_ARTIFACTS set
    (CI) they are copied there too, so a run keeps what the browser showed."""
    dest = os.environ.get("FAULTDRILL_ARTIFACTS")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(dest) / path.name)
    return path


def _synthetic_grade(out: Path):
    """A grade shaped like the one issue 12 looked at: most checks failing, long evidence
    with the differing field ~1,400 characters in, a fault timeline per failing check,
    one grader error (so the grade is INCOMPLETE)."""
    from graders.checks.registry import all_checks
    from graders.harness import RunResult, Verdict
    from graders.report import write_reports
    from graders.scoring import credits_from_verdicts, score
    specs = all_checks()
    verdicts = []
    for i, spec in enumerate(specs):
        status = "pass" if i % 4 == 0 else "fail"
        if i == 7:
            status = "error"
        v = Verdict(spec.id, spec.title, status, "ok" if status == "pass" else
                    f"{spec.id}: a resubmitted task must replay the stored result, got replay:false " + "x" * 300,
                    0.3, 2024, 0, started_at=float(i))
        v.timeline = [{"t": 0.01 * k, "kind": "fault" if k % 2 == 0 else "reaction",
                       "text": f"{spec.id} event {k}"} for k in range(6)]
        if status == "fail":
            v.sent = {"type": "submit", "payload": {"task_id": f"t-{i}", "input": {"records": ["r" * 80] * 12}}}
            v.expected = {"replay": True}
            v.received = {"v": 1, "type": "submit_ok",
                          "payload": {"task_id": f"t-{i}", "result": {"summary": "s" * 1300}, "replay": False}}
            v.hint = "look the task_id up before running anything"
            v.log_lines = {"orchestrator": [f'{{"level": "info", "msg": "line {k}"}}' for k in range(30)]}
        if status == "error":
            v.trace = "Traceback (most recent call last): ..."
        verdicts.append(v)
    result = RunResult(seed=2024, runs=1, driver="process", submission="candidate", verdicts=verdicts,
                       duration=21.0)
    rubric = load_rubric()
    sheet = score(credits_from_verdicts(verdicts), rubric, {s.id: s.weight for s in specs})
    write_reports(result, sheet, rubric, specs, out)
    return verdicts


def test_html_report_first_screen_says_what_failed(browser, tmp_path):
    """At 1280x800: the INCOMPLETE banner and a failure summary listing every failure
    (each a working anchor) on the first screen; each failure's fault timeline inside
    its own section; passing checks collapsed; a page height a person can scroll."""
    out = tmp_path / "grade"
    verdicts = _synthetic_grade(out)
    bad = [v for v in verdicts if v.status != "pass"]
    passed = [v for v in verdicts if v.status == "pass"]
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto((out / "report.html").as_uri(), wait_until="load")
        first_screen = tmp_path / "report-first-screen.png"
        page.screenshot(path=str(first_screen))
        keep_artifact(first_screen)
        banner = page.locator(".banner.incomplete")
        assert banner.is_visible() and banner.bounding_box()["y"] < 150
        summary = page.locator("#failures")
        assert summary.bounding_box()["y"] < 300, "the failure summary starts on the first screen"
        for v in bad:
            link = page.locator(f'#failures a[href="#check-{v.check_id}"]')
            assert link.count() == 1, f"{v.check_id} is not in the failure summary"
            box = link.bounding_box()
            assert box and box["y"] >= 0 and box["y"] + box["height"] <= 800, (
                f"{v.check_id}'s line is not on the first screen: {box}")
        # why, not just which: each line carries the failure's message
        first = page.locator("#failures li").first.inner_text()
        assert "must replay the stored result" in first

        # the anchors work: the last failure's section comes to the top of the window
        target = bad[-1].check_id
        page.locator(f'#failures a[href="#check-{target}"]').click()
        page.wait_for_function("() => window.scrollY > 0")
        top = page.locator(f'[id="check-{target}"]').bounding_box()["y"]
        assert -2 <= top <= 80, f"clicking the summary link left the section at y={top}"
        assert page.evaluate("location.hash") == f"#check-{target}"

        # each failure: what differs, then its own timeline, inside its section
        failing = next(v for v in bad if v.status == "fail")
        section = page.locator(f'[id="check-{failing.check_id}"]')
        assert "$.payload.replay: expected true, received false" in section.locator("ul.diff").inner_text()
        events = section.locator("ol.tl li")
        assert events.count() == len(failing.timeline)
        assert f"{failing.check_id} event 0" in events.first.inner_text()
        sbox, ebox = section.bounding_box(), events.first.bounding_box()
        assert sbox["y"] <= ebox["y"] <= sbox["y"] + sbox["height"], "the timeline sits in its failure's section"

        # passing checks collapsed, one click away
        details = page.locator("details#passed")
        assert details.get_attribute("open") is None
        assert page.locator("#passed > ul > li").count() == len(passed)
        assert not page.locator("#passed > ul > li").first.is_visible()
        details.locator("summary").first.click()
        assert page.locator("#passed > ul > li").first.is_visible()

        height = page.evaluate("document.documentElement.scrollHeight")
        assert height < 700 * len(bad) + 4000, f"the page is {height} px tall for {len(bad)} failures"
        full = tmp_path / "report-full.png"
        page.screenshot(path=str(full), full_page=True)
        keep_artifact(full)
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
    # an --only run is a replay: its reports go to a new <out>-replay-<time> folder
    out = next(tmp_path.glob("grade-replay-*"))
    results = json.loads((out / "results.json").read_text())
    scored = {aid: a for aid, a in results["extra_data"]["areas"].items() if a["score"] is not None}
    assert scored, "the grade run scored no area"
    titles = {a["id"]: a["title"] for a in load_rubric()["areas"]}

    ctx, page = _page(browser)
    try:
        page.goto((out / "report.html").as_uri(), wait_until="load")
        shot = tmp_path / "grade-report.png"
        page.screenshot(path=str(shot), full_page=True)
        keep_artifact(shot)
        body = page.inner_text("body")
        # an --only run is a replay, and the page says so first
        assert "PARTIAL" in body and "Points of the checks run" in body
        assert page.locator(".banner.partial").bounding_box()["y"] < 150
        table = page.locator("h2:has-text('Areas') + table")
        assert table.is_visible()
        for aid, area in scored.items():
            row = table.locator("tr", has_text=titles[aid])
            assert row.count() == 1, f"area {titles[aid]!r} is not in the report's table"
            cell = row.locator("td").nth(1).inner_text()
            assert re.search(r"\b\d{1,3}%", cell), f"area {titles[aid]!r} shows no score: {cell!r}"
            assert cell.strip().endswith(f"{100 * area['score']:.0f}%")
        # every check that ran is listed: the reference passes them all, so they sit in
        # the collapsed "passed" list, and the summary says nothing failed
        assert "passed" in page.locator("#failures").inner_text()
        passed = page.locator("#passed > ul > li")
        assert passed.count() == len(only.split(","))
        page.locator("details#passed > summary").click()
        for cid in only.split(","):
            assert page.locator("#passed li", has_text=cid).first.is_visible()
    finally:
        ctx.close()
