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


def write_reports(result, sheet, rubric, specs, out_dir) -> dict[str, Path]:
    """Write all four reports into out_dir; return their paths.

    `out_dir` is an `OutDir` the grade prepared before any candidate code ran, or a path,
    prepared here (graders.safefs: created or verified, a previous grade's files removed,
    every file written as a new file renamed into place, never through a link)."""
    from graders.safefs import OutDir, prepare_out_dir
    out = out_dir if isinstance(out_dir, OutDir) else prepare_out_dir(Path(out_dir))
    try:
        model = build_model(result, sheet, rubric, specs)
        return {
            "results.json": out.write_text("results.json", json.dumps(results_json(model), indent=2,
                                                                      default=str) + "\n"),
            "junit.xml": out.write_text("junit.xml", junit_xml(model)),
            "report.md": out.write_text("report.md", report_md(model)),
            "report.html": out.write_text("report.html", report_html(model)),
        }
    finally:
        if out is not out_dir:
            out.close()
