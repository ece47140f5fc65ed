"""The rubric is the single source: RUBRIC.md is its generated output, every check id it
names exists, every registered check is referenced, and both sides agree on which
items a check evidences."""
import json
import tomllib

import pytest

from graders.checks.registry import CHALLENGES, all_checks
from graders.commands import rubric as rubric_cmd
from graders.paths import RUBRIC_DIR
from graders.scoring import RubricError, _validate, load_rubric, rubric_check_ids

CORE = {"orchestration", "memory", "routing", "observability", "security"}
OPTIONAL = {"tls", "shutdown_health", "backpressure", "versioning", "metrics_alerts"}


@pytest.fixture(scope="module")
def rubric():
    return load_rubric()


def test_rubric_md_is_the_generated_output():
    committed = (RUBRIC_DIR / "RUBRIC.md").read_text(encoding="utf-8")
    assert committed == rubric_cmd.markdown(), \
        "rubric/RUBRIC.md is stale: run `faultdrill rubric --format md > rubric/RUBRIC.md`"


def test_areas_are_the_guides_five_plus_optional(rubric):
    ids = {a["id"]: a for a in rubric["areas"]}
    assert set(ids) == CORE | OPTIONAL
    assert all(not ids[a].get("optional") for a in CORE)
    assert all(ids[a]["optional"] for a in OPTIONAL)


def test_every_area_is_complete(rubric):
    for area in rubric["areas"]:
        assert set(area["levels"]) == set(rubric["meta"]["levels"])
        assert all(len(area["levels"][lv].split()) >= 5 for lv in area["levels"]), area["id"]
        assert area["challenges"] and all(c["challenge"] and c["resolution"] for c in area["challenges"])
        assert len(area["debrief_questions"]) >= 2 and area["red_flags"]
        assert len(area["expected_answer"].split()) >= 20
        for item in area["items"]:
            assert item["weight"] > 0 and item["title"] and item["checks"]


def test_every_check_id_exists_and_every_check_is_referenced(rubric):
    registered = {c.id for c in all_checks()}
    named = rubric_check_ids(rubric)
    assert named - registered == set(), "rubric names checks that do not exist"
    assert registered - named == set(), "checks not referenced by any rubric item"


def test_check_items_agree_with_rubric(rubric):
    membership = {}
    for area in rubric["areas"]:
        for item in area["items"]:
            for cid in item["checks"]:
                membership.setdefault(cid, set()).add(item["id"])
    for c in all_checks():
        assert set(c.items) == membership[c.id], c.id


def test_checks_are_well_declared():
    checks = all_checks()
    assert len({c.id for c in checks}) == len(checks)
    assert [c.stage for c in checks] == sorted(c.stage for c in checks)
    assert {c.challenge for c in checks} == set(CHALLENGES), "every challenge has checks"
    assert all(c.doc for c in checks), "each check documents what it observes"
    assert any(c.visibility == "hidden" for c in checks)


def test_thresholds_validated(tmp_path):
    good = tomllib.loads((RUBRIC_DIR / "rubric.toml").read_text())
    bad = json.loads(json.dumps(good))
    bad["thresholds"]["leaning_hire"] = 0.95   # above strong_hire
    with pytest.raises(RubricError):
        _validate(bad, tmp_path / "x.toml")
    bad = json.loads(json.dumps(good))
    del bad["areas"][0]["levels"]["strong_hire"]
    with pytest.raises(RubricError):
        _validate(bad, tmp_path / "x.toml")
    (tmp_path / "broken.toml").write_text("[meta\n")
    with pytest.raises(RubricError, match="invalid TOML"):
        load_rubric(tmp_path / "broken.toml")


def test_rubric_command_formats(capsys):
    class A:
        format = "json"
    assert rubric_cmd.run(A()) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["checks"]) == {c.id for c in all_checks()}
    A.format = "md"
    assert rubric_cmd.run(A()) == 0
    assert capsys.readouterr().out == (RUBRIC_DIR / "RUBRIC.md").read_text(encoding="utf-8")
