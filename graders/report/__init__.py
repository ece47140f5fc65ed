"""Grade reports: results.json (Gradescope schema), junit.xml, report.md, report.html.

Why four formats from one model: the candidate platform wants Gradescope JSON, CI wants
JUnit (failure = the program is wrong, error = the grader could not run the check), and
people want a readable page. All are rendered from the same RunResult + ScoreSheet, so
they can never disagree.
"""
from __future__ import annotations

import json
from pathlib import Path

from graders.report.model import build_model
from graders.report.gradescope import results_json
from graders.report.junit import junit_xml
from graders.report.markdown import report_md
from graders.report.html import report_html

__all__ = ["write_reports", "build_model", "results_json", "junit_xml", "report_md", "report_html"]


def write_reports(result, sheet, rubric, specs, out_dir: Path) -> dict[str, Path]:
    """Write all four reports into out_dir; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = build_model(result, sheet, rubric, specs)
    paths = {
        "results.json": out_dir / "results.json",
        "junit.xml": out_dir / "junit.xml",
        "report.md": out_dir / "report.md",
        "report.html": out_dir / "report.html",
    }
    paths["results.json"].write_text(json.dumps(results_json(model), indent=2, default=str) + "\n",
                                     encoding="utf-8")
    paths["junit.xml"].write_text(junit_xml(model), encoding="utf-8")
    paths["report.md"].write_text(report_md(model), encoding="utf-8")
    paths["report.html"].write_text(report_html(model), encoding="utf-8")
    return paths
