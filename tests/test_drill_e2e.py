"""A scripted drill end to end: the incident is injected, its symptoms show in the
system's metrics and dashboard, the interviewer's marks are recorded, the report is
written and opened in the real browser (skipped without Chromium + playwright, unless
FAULTDRILL_REQUIRE_BROWSER is set, as in tests/test_browser.py)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from graders import paths
from graders.drills.catalogue import incident_by_id
from graders.drills.recorder import DrillRecord
from graders.drills.report import render_html
from graders.drills.runner import Drill, run_console

ARTIFACTS = paths.REPO_ROOT / "test-artifacts"
SCRIPT = """\
# the interviewer's console, scripted
wait-symptoms 20
hint
detected tasks fail, alert fires
wait 0.3
diagnosed the collector's address refuses connections
wait 0.3
mitigated restore the endpoint, resubmit
level strong_hire
note <script>alert(1)</script>
end
"""


def _chromium():
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def drill_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("drill")
    script = out / "console.txt"
    script.write_text(SCRIPT)
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "graders.cli", "drill", "--incident", "service-discovery",
                           "--seed", "8", "--script", str(script), "--out", str(out / "report"),
                           "--port-base", "0", "--traffic", "8", "--warmup", "2"],
                          capture_output=True, text=True, timeout=180, cwd=paths.REPO_ROOT)
    return done, out / "report", time.monotonic() - t0


@pytest.mark.slow
def test_scripted_drill_records_symptoms_marks_and_metrics(drill_run):
    done, report, took = drill_run
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "seed 8" in done.stdout and "CANDIDATE VIEW" in done.stdout
    view = done.stdout[done.stdout.index("CANDIDATE VIEW"):done.stdout.index("ANSWER KEY")]
    assert "service-discovery" not in view and "cannot be reached" not in view
    sheet = (report / "CANDIDATE.txt").read_text()
    assert "dashboard" in sheet and "service-discovery" not in sheet and "ANSWER" not in sheet
    rec = json.loads((report / "drill.json").read_text())
    kinds = [e["kind"] for e in rec["events"]]
    assert kinds[:3] == ["start", "inject", "fault"] and "warning" not in kinds
    order = [kinds.index(k) for k in ("inject", "hint", "detected", "diagnosed", "mitigated", "level", "heal", "end")]
    assert order == sorted(order)
    marks = rec["marks_after_injection_s"]
    assert 0 < marks["detected"] < marks["diagnosed"] < marks["mitigated"]
    assert rec["level"] == "strong_hire" and rec["hints_given"] == 1 and rec["cleanup_ok"] is True
    # every stated symptom was seen by the system's own observer, then went away
    inc = incident_by_id("service-discovery")
    assert sorted(rec["symptoms_seen"]) == [str(i) for i in range(len(inc.symptoms))]
    assert any(s["kind"] == "dashboard" for s in inc.symptoms) and any(s["kind"] == "metric" for s in inc.symptoms)
    assert sorted(rec["symptoms_gone"]) == [str(i) for i in range(len(inc.symptoms))]
    # the metric series: no failures before the injection, failures after it
    inject = next(e["offset_s"] for e in rec["events"] if e["kind"] == "inject")
    heal = next(e["offset_s"] for e in rec["events"] if e["kind"] == "heal")
    before = [s["tasks_failed_per_s"] for s in rec["samples"] if s["offset_s"] < inject and s["tasks_failed_per_s"] is not None]
    during = [s["tasks_failed_per_s"] or 0 for s in rec["samples"] if inject + 1 < s["offset_s"] <= heal + 0.5]
    assert before and max(before) == 0 and max(during) > 0
    assert (report / "../report/candidate-logs/orchestrator.log").resolve().stat().st_size > 0


@pytest.mark.slow
def test_drill_report_opens_in_the_real_browser(drill_run):
    done, report, _took = drill_run
    assert done.returncode == 0
    missing = []
    if _chromium() is None:
        missing.append("no chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("no playwright")
    if missing:
        if os.environ.get("FAULTDRILL_REQUIRE_BROWSER"):
            pytest.fail(f"FAULTDRILL_REQUIRE_BROWSER is set but {missing}")
        pytest.skip(", ".join(missing))
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), headless=True, timeout=30_000,
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.goto((report / "drill.html").as_uri())
            assert "The collector cannot be reached" in page.title()
            assert page.inner_text("#level") == "Strong hire"
            assert page.locator("#levels tr.chosen").inner_text().startswith("Strong hire")
            assert page.locator('figure[data-series="tasks_failed_per_s"] polyline').count() == 1
            assert page.locator("figure.chart").count() >= 2
            assert page.locator("#symptoms tr").count() == 1 + len(incident_by_id("service-discovery").symptoms)
            assert "<script>alert(1)</script>" in page.inner_text("#events")   # shown as text, not run
            page.screenshot(path=str(ARTIFACTS / "drill-report.png"), full_page=True)
        finally:
            browser.close()


def test_console_commands_and_report_escaping(tmp_path):
    """The console in-process with a stand-in session (no system): marks, hints, levels."""
    import io

    class _Traffic:
        rate = 0

        def stats(self, _w):
            return {"recent": {}}

        def recent(self, _w):
            return []

    class _Session:
        traffic = _Traffic()

    inc = incident_by_id("bloat")
    drill = Drill.__new__(Drill)
    drill.session, drill.incident, drill.seed, drill.out = _Session(), inc, 1, tmp_path
    drill.stream = io.StringIO()
    drill.record = DrillRecord(incident=inc.as_dict(), seed=1, submission="x")
    drill.healed, drill._threads = True, []
    import threading
    drill._stop = threading.Event()
    drill.record.add("inject", "x")
    lines = ["hint", "hint", "hint", "hint", "detected", "detected again", "level great", "level leaning hire",
             "bogus", "note <b>x</b>", "end", "never read"]
    assert run_console(drill, iter(lines), time_limit_s=10) == "ended by the interviewer"
    text = drill.stream.getvalue()
    assert "no hints left" in text and "unknown command" in text and "level must be one of" in text
    assert drill.record.hints_given == 3 and drill.record.level == "leaning_hire"
    assert [e["kind"] for e in drill.record.events].count("detected") == 1
    html = render_html(drill.record.as_json())
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    # a console that never ends is bounded by the time limit
    slow = iter(lambda: time.sleep(0.2) or "status", None)
    started = time.monotonic()
    assert run_console(drill, slow, time_limit_s=0.6) == "time limit"
    assert time.monotonic() - started < 3


@pytest.mark.slow
def test_ctrl_c_ends_a_drill_with_a_report_and_nothing_left(tmp_path):
    import signal
    proc = subprocess.Popen([sys.executable, "-m", "graders.cli", "drill", "--incident", "health",
                             "--seed", "2", "--out", str(tmp_path / "r"), "--port-base", "0",
                             "--warmup", "1", "--control-port", "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=paths.REPO_ROOT)
    try:
        lines, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "incident injected" in line or not line:
                break
        proc.stdin.write("detected\n")
        proc.stdin.flush()
        # a fault added by hand through the control API lands on the drill's timeline
        import re
        port = int(re.search(r"--api-port (\d+)", "".join(lines)).group(1))
        added = subprocess.run([sys.executable, "-m", "graders.cli", "fault", "--api-port", str(port),
                                "add", "collector", "latency", "-a", "latency=50"],
                               capture_output=True, text=True, timeout=60, cwd=paths.REPO_ROOT)
        assert added.returncode == 0, added.stderr
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 130, "".join(lines) + rest
    rec = json.loads((tmp_path / "r" / "drill.json").read_text())
    assert rec["end_reason"].startswith("interrupted") and rec["cleanup_ok"] is True
    kinds = [e["kind"] for e in rec["events"]]
    assert "detected" in kinds and "heal" in kinds
    assert [e for e in rec["events"] if e.get("by_hand") and "/proxies/collector/toxics" in e["text"]]
    assert "report:" in rest
