"""The rule-coverage matrix (issue 11 item 1): every normative SPEC rule, quoted verbatim,
with the checks that observe it and the defects that prove those checks can fail.

rubric/rules.toml is the source; docs/RULE_COVERAGE.md is generated from it and must stay
identical; every check and defect named must exist, every registered check must observe
some rule, every quote must be in SPEC.md, a defect named under a rule must lose one of
that rule's checks, and the figures written in the page are recomputed here.
"""
from __future__ import annotations

import re

from graders.checks.registry import all_checks
from tests.coverage import extract, render
from tests.defects import render as matrix

CHECK_IDS = {c.id for c in all_checks()}
RULES = render.load_rules()


def _defect_fail():
    defects, _ = matrix.load_matrix(CHECK_IDS)
    return {d.name: set(d.fail) for d in defects}


def test_rules_are_consistent_with_spec_registry_and_defects():
    assert render.problems(RULES, CHECK_IDS, _defect_fail()) == []


def test_every_check_observes_a_rule():
    used = {c for r in RULES for c in r.checks}
    assert CHECK_IDS <= used, sorted(CHECK_IDS - used)


def test_a_misquoted_rule_is_refused():
    bad = RULES[:1] + [render.Rule("x.y", "4", "must", "this sentence is not in the SPEC", True, (), ())]
    assert any("not found verbatim" in p for p in render.problems(bad, CHECK_IDS, _defect_fail()))


def test_page_is_generated_and_its_figures_are_recomputed():
    page = render.DOC.read_text(encoding="utf-8")
    assert page == render.render(), "docs/RULE_COVERAGE.md is stale: python3 -m tests.coverage.render --write"
    f = render.figures(RULES)
    for label, key in (("rules", "rules"), ("observed by a check", "observed"),
                       ("proven by a defect", "proven"), ("observable by a black-box check", "observable")):
        m = re.search(rf"^\| {re.escape(label)} \| (\d+) \|$", page, re.M)
        assert m and int(m.group(1)) == f[key], label
    assert f["rules"] == len(RULES) and f["observed"] <= f["observable"] <= f["rules"]


def test_unobservable_rules_are_debrief_questions_in_the_rubric():
    import tomllib
    rubric = tomllib.loads((render.ROOT / "rubric" / "rubric.toml").read_text(encoding="utf-8"))
    questions = {q for area in rubric["areas"] for q in area.get("debrief_questions", [])}
    for r in RULES:
        if not r.observable:
            assert r.question in questions, r.id


def test_every_must_sentence_error_row_and_processing_step_is_a_rule():
    """The strict subset of tests/coverage/extract.py: a new MUST in the SPEC, a new row of
    the error table or a new step of §7 fails here until rules.toml quotes it."""
    assert extract.uncovered(strict=True) == []
