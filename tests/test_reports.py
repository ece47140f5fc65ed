"""Reports: Gradescope results.json schema, JUnit failure vs error, a self-contained and
escaped HTML page, Markdown; all from one synthetic grade with hostile candidate text."""
import json
import xml.etree.ElementTree as ET

import jsonschema
import pytest

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
    assert err["max_score"] == 0 and "GRADER ERROR" in err["output"], "errors never cost points"
    assert data["extra_data"]["grader_errors"][0]["check"] == "memory.retention"
    assert data["extra_data"]["seed"] == 42 and data["extra_data"]["driver"] == "process"
    assert data["extra_data"]["verdict_counts"] == {"pass": len(specs) - 2, "fail": 1, "error": 1}
    hidden = {s.id for s in specs if s.visibility == "hidden"}
    assert {cid for cid, t in by_id.items() if t["visibility"] == "hidden"} == hidden
    total = sum(s.weight for s in specs)
    assert data["max_score"] == pytest.approx(total - by_id["memory.retention"]["extra_data"]["errors"] * next(
        s.weight for s in specs if s.id == "memory.retention"))
    assert data["score"] == pytest.approx(data["max_score"] - next(s.weight for s in specs if s.id == "security.token_refused"))
    assert "seed 42" in by_id["security.token_refused"]["output"]


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
    assert "Timeline" in html and "security.token_refused" in html and "Strong" in html
    assert "your_orchestrator" in html


def test_markdown_lists_areas_failures_and_grader_errors(grade):
    _specs, paths = grade
    md = paths["report.md"].read_text()
    assert "## Areas" in md and "## Grader errors" in md and "`memory.retention`" in md
    assert "### `security.token_refused`" in md and "Hint:" in md
    assert "seed 42" in md
