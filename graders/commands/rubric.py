"""`faultdrill rubric`: print the rubric (Markdown for people, JSON for tools).

The Markdown is exactly rubric/RUBRIC.md (a test keeps them identical), generated from
rubric/rubric.toml, enriched with each check's title from the check registry.
"""
from __future__ import annotations

import json
import sys

from graders.scoring import RubricError, load_rubric

HELP = "Print the interviewer rubric (generated from rubric/rubric.toml)."


def check_titles() -> dict[str, str]:
    from graders.checks.registry import all_checks
    return {c.id: c.title for c in all_checks()}


def markdown() -> str:
    from graders.report.rubric_md import render_markdown
    return render_markdown(load_rubric(), check_titles())


def as_json() -> dict:
    from graders.checks.registry import all_checks
    rubric = load_rubric()
    checks = {c.id: {"title": c.title, "stage": c.stage, "challenge": c.challenge,
                     "visibility": c.visibility, "weight": c.weight, "items": list(c.items)}
              for c in all_checks()}
    return {"rubric": rubric, "checks": checks}


def add_arguments(parser) -> None:
    parser.add_argument("--format", choices=("md", "json"), default="md")


def run(args) -> int:
    try:
        if args.format == "json":
            print(json.dumps(as_json(), indent=2))
        else:
            sys.stdout.write(markdown())
    except RubricError as exc:
        print(f"faultdrill rubric: {exc}", file=sys.stderr)
        return 2
    return 0
