"""List the normative statements of challenges/SPEC.md that no rule in rubric/rules.toml quotes.

Why: the rule list is extracted from the SPEC systematically, not from memory; this finds
the candidates (sentences with MUST / MUST NOT / exactly / at most / at least / never /
only / →, numeric limits, and every table row) so that a SPEC edit that adds a rule shows
up here. tests/test_rule_coverage.py asserts the strict subset (every MUST sentence, every
row of the error table, every processing-order step) is quoted by some rule.

    python3 -m tests.coverage.extract          # every uncovered candidate, by section
"""
from __future__ import annotations

import re
import sys

from tests.coverage.render import SPEC, load_rules, normalise

CANDIDATE = re.compile(r"MUST|exactly|at most|at least|within|never|→|only|REQUIRED|[0-9]+ (ms|s|MiB)")


def statements() -> list[tuple[str, str, bool]]:
    """(section, normalised statement, is a table row) for every statement of §1-§17."""
    section, out = "0", []
    for para in re.split(r"\n\s*\n", SPEC.read_text(encoding="utf-8")):
        for line in para.split("\n"):
            m = re.match(r"#+ (\d+(?:\.\d+)?)\.? ", line)
            if m:
                section = m.group(1)
        if section == "0" or section.split(".")[0] == "18" or para.lstrip().startswith(("#", "```")):
            continue
        if para.lstrip().startswith("|"):
            rows = para.split("\n")
            # Not the header row (the one before the |---| line), not OPTIONAL rows (a MAY).
            out += [(section, normalise(row), True) for i, row in enumerate(rows)
                    if row.startswith("|") and not set(row) <= set("|-: ")
                    and not (i + 1 < len(rows) and set(rows[i + 1].strip()) <= set("|-: "))
                    and "OPTIONAL" not in row]
        else:
            for item in re.split(r"\n(?=\s*(?:\d+\.|-) )", para):   # list items first
                text = normalise(item)
                out.append((section, text, False))
                sentences = re.split(r"(?<=[a-z)\]`'\"][.;])\s+(?=[A-Z`(])", text)
                if len(sentences) > 1:
                    out += [(section, s, False) for s in sentences]
    return out


def covered(statement: str, quotes: list[str]) -> bool:
    return any(q in statement or statement in q for q in quotes)


def uncovered(strict: bool = False) -> list[tuple[str, str]]:
    """Candidates no rule quotes; `strict`: only MUST sentences, error rows and §7 steps."""
    quotes = [normalise(r.text) for r in load_rules()]
    out = []
    for section, s, row in statements():
        if strict:
            wanted = ("MUST" in s and not row and len(s) < 400) \
                or (section == "6" and re.match(r"\| \d+ \|", s)) \
                or (section == "7" and re.match(r"\d\. ", s))
        else:
            wanted = row or CANDIDATE.search(s)
        if wanted and not covered(s, quotes):
            out.append((section, s))
    return out


def main() -> int:
    for section, s in uncovered("--strict" in sys.argv[1:]):
        print(f"§{section}: {s[:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
