"""Scores from verdicts, driven entirely by rubric/rubric.toml.

Why here and not in the checks: a check only says pass/fail/error with evidence; what
that is worth is the rubric's business, so the weights live in one file people can read.
Rules:
- a check's credit is its pass fraction over the runs it had; a run that ended in a
  grader error proved nothing and counts as not passed. So the scores of an INCOMPLETE
  grade are lower bounds: a grader error can never raise a score (a hostile submission
  that makes checks error out gains nothing), the errors are listed, and the grade says
  it must be re-graded before its number means anything;
- an item's score is the weight-averaged credit of its checks (check weights from the
  registry); an item none of whose checks ran (e.g. `--only`) is unscored, not zero;
- an area's score is the item-weight-averaged score of its scored items;
- the overall score is the area-weight-averaged score of scored areas;
- a score maps to a suggested level by the rubric's thresholds;
- the overall (and core) suggestion is capped: at most `meta.cap_bands_above_weakest_core`
  levels above the level of the weakest scored core area (optional areas never lower
  it), so a submission that fails a whole core area cannot ride the average of the others
  to "Strong hire". The sheet keeps the uncapped level and names the capping area;
- an INCOMPLETE grade (any grader error: something was not graded) withholds every
  suggested level: scores are shown, marked incomplete, but no level is suggested;
- a PARTIAL grade (`--only`) has no overall or core score and no suggested level at all:
  a few checks say nothing about a hire.
The decision stays human.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from graders.paths import RUBRIC_DIR

RUBRIC_PATH = RUBRIC_DIR / "rubric.toml"


class RubricError(Exception):
    """rubric.toml is missing or inconsistent."""


def load_rubric(path: Path | None = None) -> dict:
    path = Path(path or RUBRIC_PATH)
    try:
        with path.open("rb") as fh:
            rubric = tomllib.load(fh)
    except FileNotFoundError:
        raise RubricError(f"rubric not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RubricError(f"{path}: invalid TOML: {exc}") from None
    _validate(rubric, path)
    return rubric


def _validate(rubric: dict, path: Path) -> None:
    levels = rubric.get("meta", {}).get("levels")
    if levels != ["strong_no_hire", "leaning_no_hire", "leaning_hire", "strong_hire"]:
        raise RubricError(f"{path}: meta.levels must list the four levels low to high")
    th = rubric.get("thresholds", {})
    if set(th) != set(levels):
        raise RubricError(f"{path}: thresholds must give one value per level")
    values = [th[lv] for lv in levels]
    if values != sorted(values) or values[0] != 0:
        raise RubricError(f"{path}: thresholds must increase from strong_no_hire = 0")
    cap = rubric["meta"].get("cap_bands_above_weakest_core")
    if not isinstance(cap, int) or isinstance(cap, bool) or not 0 <= cap < len(levels):
        raise RubricError(f"{path}: meta.cap_bands_above_weakest_core must be an integer 0..{len(levels) - 1}")
    seen_items = set()
    for area in rubric.get("areas", []):
        for key in ("id", "title", "expected_answer", "levels", "items", "debrief_questions",
                    "red_flags", "challenges", "weight"):
            if key not in area:
                raise RubricError(f"{path}: area {area.get('id')!r} lacks {key}")
        if set(area["levels"]) != set(levels):
            raise RubricError(f"{path}: area {area['id']} must anchor all four levels")
        for item in area["items"]:
            if not item["id"].startswith(area["id"] + "."):
                raise RubricError(f"{path}: item {item['id']} must start with {area['id']}.")
            if item["id"] in seen_items:
                raise RubricError(f"{path}: duplicate item {item['id']}")
            seen_items.add(item["id"])
            if not item.get("checks"):
                raise RubricError(f"{path}: item {item['id']} lists no checks")


def rubric_check_ids(rubric: dict) -> set[str]:
    return {cid for area in rubric["areas"] for item in area["items"] for cid in item["checks"]}


def suggested_level(score: float | None, rubric: dict) -> str | None:
    if score is None:
        return None
    th = rubric["thresholds"]
    for level in reversed(rubric["meta"]["levels"]):
        if score + 1e-12 >= th[level]:
            return level
    return rubric["meta"]["levels"][0]


@dataclass
class CheckCredit:
    check_id: str
    passes: int
    fails: int
    errors: int

    @property
    def credit(self) -> float | None:
        """Pass fraction over every run; an errored run is not a pass (see module doc)."""
        counted = self.passes + self.fails + self.errors
        return None if counted == 0 else self.passes / counted


@dataclass
class ItemScore:
    id: str
    title: str
    weight: float
    score: float | None
    checks: list[str]
    errored: list[str] = field(default_factory=list)


@dataclass
class AreaScore:
    id: str
    title: str
    optional: bool
    weight: float
    score: float | None
    level: str | None
    items: list[ItemScore]


@dataclass
class ScoreSheet:
    overall: float | None
    overall_level: str | None           # suggested level, after the weakest-core-area cap
    core: float | None
    core_level: str | None              # likewise capped
    areas: list[AreaScore]
    unscored_items: list[str]
    grader_errors: list[str]
    overall_uncapped_level: str | None = None   # the level the score alone would suggest
    core_uncapped_level: str | None = None
    capped_by: str | None = None        # id of the weakest core area, when it lowered a level
    capped_by_title: str | None = None
    incomplete: bool = False            # a grader error: levels withheld
    partial: bool = False               # an --only run: no overall, no levels

    @property
    def withheld(self) -> str | None:
        """Why no level is suggested (None when one is)."""
        if self.partial:
            return "partial run (--only): no overall score or suggested level"
        if self.incomplete:
            return "INCOMPLETE grade (grader errors): suggested level withheld"
        return None

    def level_note(self, which: str, titles: dict[str, str]) -> str:
        """Human text of the overall or core suggestion, naming a cap when one applied:
        "Leaning hire, capped by <area> (score alone: Strong hire)"; or why it is withheld."""
        if self.withheld:
            return "withheld: " + self.withheld
        level = getattr(self, f"{which}_level")
        uncapped = getattr(self, f"{which}_uncapped_level")
        text = titles.get(level, "—") if level else "—"
        if level and uncapped and uncapped != level and self.capped_by_title:
            text += f", capped by {self.capped_by_title} (score alone: {titles.get(uncapped, uncapped)})"
        return text


def level_cap(areas: list[AreaScore], rubric: dict) -> tuple[str | None, AreaScore | None]:
    """(highest level the overall suggestion may take, the core area that sets it).

    The weakest scored core (non-optional) area decides; unscored areas and optional
    areas are ignored. (None, None) when no core area is scored."""
    levels = rubric["meta"]["levels"]
    bands = rubric["meta"]["cap_bands_above_weakest_core"]
    core = [a for a in areas if not a.optional and a.level is not None]
    if not core:
        return None, None
    weakest = min(core, key=lambda a: (levels.index(a.level), a.score))
    return levels[min(len(levels) - 1, levels.index(weakest.level) + bands)], weakest


def _capped(level: str | None, cap: str | None, rubric: dict) -> str | None:
    if level is None or cap is None:
        return level
    levels = rubric["meta"]["levels"]
    return level if levels.index(level) <= levels.index(cap) else cap


def credits_from_verdicts(verdicts) -> dict[str, CheckCredit]:
    """verdicts: iterable of objects with .check_id and .status in pass/fail/error."""
    out: dict[str, CheckCredit] = {}
    for v in verdicts:
        c = out.setdefault(v.check_id, CheckCredit(v.check_id, 0, 0, 0))
        if v.status == "pass":
            c.passes += 1
        elif v.status == "fail":
            c.fails += 1
        else:
            c.errors += 1
    return out


def _wavg(pairs):
    pairs = [(w, s) for w, s in pairs if s is not None]
    total = sum(w for w, _ in pairs)
    if not pairs or total <= 0:
        return None
    return sum(w * s for w, s in pairs) / total


def score(credits: dict[str, CheckCredit], rubric: dict, check_weights: dict[str, float], *,
          partial: bool = False, incomplete: bool | None = None) -> ScoreSheet:
    """Score the checks that were run. Items whose checks were not run at all (e.g.
    `--only`) are unscored rather than zero; errored runs count as not passed. `incomplete` defaults to
    "some check has a grader error"; pass True for other reasons (a setup error)."""
    areas = []
    unscored = []
    for area in rubric["areas"]:
        items = []
        for item in area["items"]:
            pairs, errored = [], []
            for cid in item["checks"]:
                c = credits.get(cid)
                if c is None:
                    continue
                if c.errors:
                    errored.append(cid)
                pairs.append((check_weights.get(cid, 1.0), c.credit))
            s = _wavg(pairs)
            if s is None:
                unscored.append(item["id"])
            items.append(ItemScore(item["id"], item["title"], float(item["weight"]), s,
                                   list(item["checks"]), errored))
        a = _wavg([(it.weight, it.score) for it in items])
        areas.append(AreaScore(area["id"], area["title"], bool(area.get("optional")),
                               float(area["weight"]), a, suggested_level(a, rubric), items))
    overall = _wavg([(a.weight, a.score) for a in areas])
    core = _wavg([(a.weight, a.score) for a in areas if not a.optional])
    errors = sorted(cid for cid, c in credits.items() if c.errors)
    overall_raw, core_raw = suggested_level(overall, rubric), suggested_level(core, rubric)
    cap, weakest = level_cap(areas, rubric)
    overall_level, core_level = _capped(overall_raw, cap, rubric), _capped(core_raw, cap, rubric)
    lowered = overall_level != overall_raw or core_level != core_raw
    incomplete = bool(errors) if incomplete is None else bool(incomplete or errors)
    if partial or incomplete:
        # Nothing may suggest a level: not the overall, not the core, not an area.
        overall_level = core_level = overall_raw = core_raw = None
        lowered = False
        for a in areas:
            a.level = None
    if partial:
        overall = core = None
    return ScoreSheet(overall, overall_level, core, core_level, areas, unscored, errors,
                      overall_uncapped_level=overall_raw, core_uncapped_level=core_raw,
                      capped_by=weakest.id if lowered else None,
                      capped_by_title=weakest.title if lowered else None,
                      incomplete=incomplete, partial=partial)


def points(credits: dict[str, CheckCredit], check_weights: dict[str, float]) -> tuple[float, float]:
    """(score, max_score) in check-weight points; an errored check earns nothing of its
    maximum (the grade is INCOMPLETE, its points a lower bound)."""
    got = mx = 0.0
    for cid, c in credits.items():
        cr = c.credit
        if cr is None:
            continue
        w = check_weights.get(cid, 1.0)
        got += w * cr
        mx += w
    return round(got, 4), round(mx, 4)
