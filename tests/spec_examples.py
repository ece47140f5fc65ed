"""The worked examples of challenges/SPEC.md, parsed from the document itself.

Tests that need the SPEC's example take it from here, so the SPEC text, the reference,
the starter, the oracle and the compose stack are all held to the same bytes: a wrong
number in the SPEC fails a test instead of misleading a candidate.
"""
import json
import re
from pathlib import Path

SPEC_PATH = Path(__file__).resolve().parent.parent / "challenges" / "SPEC.md"
SPEC_TEXT = SPEC_PATH.read_text(encoding="utf-8")


def spec_blocks(start: str, end: str) -> list:
    """Every ```json block between two headings of SPEC.md, decoded."""
    text = SPEC_TEXT[SPEC_TEXT.index(start):SPEC_TEXT.index(end)]
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)]


def worked_example() -> tuple[dict, dict, dict, dict]:
    """SPEC §18.1: (submit frame, collect output, analyze output, report output)."""
    blocks = spec_blocks("### 18.1", "### 18.2")
    assert len(blocks) == 4, "SPEC §18.1 should hold four JSON blocks"
    return tuple(blocks)


SUBMIT_FRAME, COLLECT_OUT, ANALYZE_OUT, REPORT_OUT = worked_example()
TASK_INPUT = SUBMIT_FRAME["payload"]["input"]
