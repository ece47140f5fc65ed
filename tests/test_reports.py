"""Reports: Gradescope results.json schema, JUnit failure vs error, a self-contained and
escaped HTML page, Markdown; all from one synthetic grade with hostile candidate text."""
import json
import xml.etree.ElementTree as ET

import jsonschema
import pytest
from hypothesis import given, settings, strategies as st

from graders.checks.registry import all_checks
from graders.harness import RunResult, Verdict
from graders.report import write_reports
from graders.scoring import credits_from_verdicts, load_rubric, score

HOSTILE = '<script>alert("x")</script>&\x00\x07 ]]>'

GRADESCOPE_SCHEMA = {
    "type": "object",
    "required": ["score", "execution_time", "output", "tests", "extra_data"],
    "properties": {
        "score": {"type": "number"}, "max_score": {"type": "number"},
        "execution_time": {"type": "number"}, "output": {"type": "string"},
        "output_format": {"enum": ["text", "simple_format", "html", "md", "ansi"]},
        "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "stdout_visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": {
            "type": "object",
            "required": ["name", "score", "max_score", "status", "output", "tags", "visibility"],
            "properties": {
                "name": {"type": "string"}, "number": {"type": "string"},
                "score": {"type": "number"}, "max_score": {"type": "number"},
                "status": {"enum": ["passed", "failed"]}, "output": {"type": "string"},
                "output_format": {"enum": ["text", "simple_format", "html", "md", "ansi"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
                "extra_data": {"type": "object"}},
            "additionalProperties": False}},
    },
}


@pytest.fixture(scope="module")
def grade(tmp_path_factory):
    specs = all_checks()
    verdicts = []
    for i, spec in enumerate(specs):
        status = "pass"
        if spec.id == "security.token_refused":
            status = "fail"
        elif spec.id == "memory.retention":
            status = "error"
        vd = Verdict(spec.id, spec.title, status, "ok" if status == "pass" else HOSTILE, 0.25, 42, 0,
                     started_at=float(i))
        if status == "fail":
            vd.sent, vd.expected, vd.received = {"token": "<TOKEN>"}, "error 20", HOSTILE
            vd.hint = "Hint with <b>markup</b>"
            vd.log_lines = {"orchestrator": [HOSTILE, '{"level":"error"}']}
            vd.timeline = [{"t": 0.1, "kind": "fault", "text": HOSTILE}]
        if status == "error":
            vd.trace = "Traceback: " + HOSTILE
        verdicts.append(vd)
    result = RunResult(seed=42, runs=1, driver="process", submission="cand<idate>", verdicts=verdicts,
                       duration=12.5, cleanup=[])
    rubric = load_rubric()
    sheet = score(credits_from_verdicts(verdicts), rubric, {s.id: s.weight for s in specs})
    out = tmp_path_factory.mktemp("reports")
    paths = write_reports(result, sheet, rubric, specs, out)
    return specs, paths


def test_results_json_follows_gradescope_schema(grade):
    specs, paths = grade
    data = json.loads(paths["results.json"].read_text())
    jsonschema.validate(data, GRADESCOPE_SCHEMA)
    by_id = {t["extra_data"]["check_id"]: t for t in data["tests"]}
    assert set(by_id) == {s.id for s in specs}
    assert by_id["security.token_refused"]["status"] == "failed"
    assert by_id["security.token_refused"]["score"] == 0
    assert by_id["security.token_refused"]["tags"] == ["security.auth"]
    err = by_id["memory.retention"]
    # a grader error earns nothing but keeps its maximum: an incomplete grade never adds
    # up to full marks (the suggested level leaves the check out instead)
    assert err["score"] == 0 and err["max_score"] > 0 and "GRADER ERROR" in err["output"]
    assert "Traceback" not in err["output"], "candidates never see the grader's traceback"
    assert data["extra_data"]["grader_errors"][0]["check"] == "memory.retention"
    assert data["extra_data"]["incomplete"] is True
    assert data["output"].startswith("**INCOMPLETE**")
    assert data["extra_data"]["seed"] == 42 and data["extra_data"]["driver"] == "process"
    assert data["extra_data"]["verdict_counts"] == {"pass": len(specs) - 2, "fail": 1, "error": 1}
    hidden = {s.id for s in specs if s.visibility == "hidden"}
    assert {cid for cid, t in by_id.items() if t["visibility"] == "hidden"} == hidden
    # the score is the rubric's: points add up to 100, the score to the points earned
    assert data["max_score"] == 100
    assert data["score"] == pytest.approx(sum(t["score"] for t in data["tests"]), abs=1e-6)
    assert data["score"] == pytest.approx(100 - by_id["security.token_refused"]["max_score"]
                                          - err["max_score"], abs=1e-3)
    assert "--seed 42" in by_id["security.token_refused"]["output"]


def test_gradescope_score_equals_the_reports_overall_score(tmp_path):
    """The same grade, complete this time: Gradescope's score is 100 x the overall score
    the reports print (it used to be the sum of raw check weights: 36 % against 32 %)."""
    specs = all_checks()
    failing = {s.id for s in specs[::3]}
    verdicts = [Verdict(s.id, s.title, "fail" if s.id in failing else "pass", "m", 0.1, 7, 0) for s in specs]
    result = RunResult(seed=7, runs=1, driver="process", submission="s", verdicts=verdicts, duration=1.0)
    rubric = load_rubric()
    sheet = score(credits_from_verdicts(verdicts), rubric, {s.id: s.weight for s in specs})
    paths = write_reports(result, sheet, rubric, specs, tmp_path)
    data = json.loads(paths["results.json"].read_text())
    assert data["max_score"] == 100
    assert abs(data["score"] - 100 * sheet.overall) < 0.005
    assert data["extra_data"]["incomplete"] is False and "INCOMPLETE" not in data["output"]
    md, html = paths["report.md"].read_text(), paths["report.html"].read_text()
    assert f"{data['score']:g} / 100" in md and f"{data['score']:g} / 100" in html
    assert f"Overall {100 * sheet.overall:.0f}%" in md


def test_hidden_checks_leak_nothing_to_candidates(grade):
    """What a candidate can see before publication (visible tests) names no hidden check,
    numbers visible tests without gaps, and the total is held back until published."""
    specs, paths = grade
    data = json.loads(paths["results.json"].read_text())
    hidden = [s for s in specs if s.visibility == "hidden"]
    assert hidden, "the kit has interviewer-only checks"
    assert data["visibility"] == "after_published" and data["stdout_visibility"] == "hidden"
    visible_tests = [t for t in data["tests"] if t["visibility"] == "visible"]
    student_text = json.dumps([data["output"]] + visible_tests)
    for s in hidden:
        assert s.id not in student_text and s.title not in student_text
    for stage in {t["number"].split(".")[0] for t in visible_tests}:
        ns = sorted(int(t["number"].split(".")[1]) for t in visible_tests if t["number"].split(".")[0] == stage)
        assert ns == list(range(1, len(ns) + 1)), (stage, ns)
    # no suggested hiring level in anything a candidate sees
    titles = load_rubric()["meta"]["level_titles"].values()
    assert not any(t in student_text for t in titles)
    # candidates replay with the command their bundle has, keeping --challenge
    for t in visible_tests:
        assert "faultdrill grade" not in t["output"]
    failed = next(t for t in visible_tests if t["extra_data"]["check_id"] == "security.token_refused")
    assert "faultdrill check PATH --challenge bad-tokens --seed 42" in failed["output"]
    assert "challenges/bad-tokens/README.md" in failed["output"]


def test_the_autograder_view_adds_an_interviewer_summary(grade):
    from graders.report.gradescope import for_gradescope, instructor_stdout
    _specs, paths = grade
    data = json.loads(paths["results.json"].read_text())
    report = paths["report.md"].read_text()
    view = for_gradescope(data, report_md=report, replay_path="my-sub", seed_note="Seed 42")
    jsonschema.validate(view, GRADESCOPE_SCHEMA)
    assert len(view["tests"]) == len(data["tests"]) + 1
    summary = view["tests"][-1]
    assert summary["visibility"] == "hidden" and summary["output_format"] == "md"
    assert summary["score"] == summary["max_score"] == 0
    for needle in ("INCOMPLETE", "suggested:", "| area | score | suggested level |",
                   "security.hostile_fuzz", report.splitlines()[0]):
        assert needle in summary["output"], needle
    failed = next(t for t in view["tests"] if t.get("extra_data", {}).get("check_id") == "security.token_refused")
    assert "faultdrill check my-sub --challenge bad-tokens --seed 42" in failed["output"]
    assert view["output"].endswith("Seed 42")
    out = instructor_stdout(data)
    assert out.startswith("INCOMPLETE: grader errors in memory.retention")
    assert "suggested level:" in out and "Orchestration across distributed agents:" in out


def test_junit_separates_failures_from_errors(grade):
    _specs, paths = grade
    root = ET.parse(paths["junit.xml"]).getroot()   # parses: control characters were made safe
    assert root.get("failures") == "1" and root.get("errors") == "1"
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["security.token_refused"].find("failure") is not None
    assert cases["memory.retention"].find("error") is not None
    assert cases["pipeline.triage_oracle"].find("failure") is None
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["seed"] == "42"


def test_html_is_self_contained_and_escaped(grade):
    _specs, paths = grade
    html = paths["report.html"].read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b>markup</b>" not in html
    for external in ("src=", "href=\"http", "<link", "@import", "url("):
        assert external not in html
    assert "Timeline" in html and "security.token_refused" in html and "INCOMPLETE" in html
    assert "your_orchestrator" in html


def test_markdown_lists_areas_failures_and_grader_errors(grade):
    _specs, paths = grade
    md = paths["report.md"].read_text()
    assert "## Areas" in md and "## Grader errors" in md and "`memory.retention`" in md
    assert "### `security.token_refused`" in md and "Hint:" in md
    assert "seed 42" in md


def test_incomplete_and_unsandboxed_say_so_first_and_never_read_as_full_marks(tmp_path):
    """Every check passed but one could not be graded, and the candidate ran unsandboxed:
    the HTML and Gradescope outputs open with both banners and the score is not 100."""
    specs = all_checks()
    verdicts = [Verdict(s.id, s.title, "error" if i == 0 else "pass", "grader error: boom" if i == 0 else "ok",
                        0.1, 9, 0) for i, s in enumerate(specs)]
    result = RunResult(seed=9, runs=1, driver="process", submission="s", verdicts=verdicts, duration=1.0)
    result.sandbox = {"mode": "none", "reason": "--unsafe-no-sandbox"}
    rubric = load_rubric()
    sheet = score(credits_from_verdicts(verdicts), rubric, {s.id: s.weight for s in specs})
    paths = write_reports(result, sheet, rubric, specs, tmp_path)
    data = json.loads(paths["results.json"].read_text())
    assert data["max_score"] == 100 and data["score"] < 100
    assert data["output"].startswith("**INCOMPLETE**") and "**UNSANDBOXED**" in data["output"]
    html = paths["report.html"].read_text()
    body = html[html.index("<body>"):]
    assert body.index('class="banner incomplete"') < body.index('class="headline"')
    assert body.index('class="banner unsandboxed"') < body.index('class="headline"')
    assert "(INCOMPLETE)" in body[:body.index('id="failures"')]


def _anchors(html: str) -> tuple[list[str], set[str]]:
    from html.parser import HTMLParser

    class P(HTMLParser):
        def __init__(self):
            super().__init__()
            self.hrefs, self.ids = [], set()

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if a.get("id"):
                assert a["id"] not in self.ids, f"duplicate id {a['id']}"
                self.ids.add(a["id"])
            if tag == "a" and (a.get("href") or "").startswith("#"):
                self.hrefs.append(a["href"][1:])
    p = P()
    p.feed(html)
    return p.hrefs, p.ids


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["pass", "fail", "error"]), min_size=1, max_size=60))
def test_every_failure_is_linked_from_the_summary_to_its_section(statuses):
    from graders.report.html import anchor_id, report_html
    from graders.report.model import build_model
    specs = all_checks()
    verdicts = [Verdict(s.id, s.title, statuses[i % len(statuses)], "why " + s.id, 0.1, 3, 0)
                for i, s in enumerate(specs)]
    result = RunResult(seed=3, runs=1, driver="process", submission="s", verdicts=verdicts, duration=1.0)
    rubric = load_rubric()
    sheet = score(credits_from_verdicts(verdicts), rubric, {s.id: s.weight for s in specs})
    html = report_html(build_model(result, sheet, rubric, specs))
    hrefs, ids = _anchors(html)
    assert set(hrefs) <= ids, "every link lands on a section"
    summary = html[html.index('<section id="failures">'):html.index("</section>")]
    for v in verdicts:
        linked = f'href="#{anchor_id(v.check_id)}"' in summary
        assert linked == (v.status != "pass"), v
    assert ("<details id=\"passed\">" in html) == any(v.status == "pass" for v in verdicts)
