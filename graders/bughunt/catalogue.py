"""The bug-hunt defect catalogue (`defects.toml`, the answer key) and how a defect is
applied to source text (pure).

Why source-level edits and not the monkeypatches of tests/defects: the candidate reads
and fixes real code. An edit replaces exactly one occurrence of a snippet; a snippet found
zero or several times is a stale defect and refuses to apply (a test keeps the catalogue
in step with the reference), so a copy never silently ships without its bug.
"""
from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Defect", "DefectError", "load_defects", "apply_edit", "choose", "CATALOGUE"]

CATALOGUE = Path(__file__).resolve().parent / "defects.toml"


class DefectError(ValueError):
    """A defect that cannot be applied or chosen (the message says why)."""


@dataclass(frozen=True)
class Defect:
    id: str
    title: str
    area: str
    file: str               # relative to the reference package
    find: str
    replace: str
    checks: tuple[str, ...]
    symptom: str
    hints: tuple[str, ...]
    fix: str

    def as_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "area": self.area, "file": self.file,
                "find": self.find, "replace": self.replace, "checks": list(self.checks),
                "symptom": self.symptom, "hints": list(self.hints), "fix": self.fix}


_FIELDS = ("id", "title", "area", "file", "find", "replace", "checks", "symptom", "hints", "fix")


def load_defects(path: Path = CATALOGUE) -> list[Defect]:
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    out, seen = [], set()
    for i, raw in enumerate(data.get("defect", [])):
        missing = [f for f in _FIELDS if f not in raw]
        if missing:
            raise DefectError(f"{path}: defect #{i + 1} lacks {missing}")
        if raw["id"] in seen:
            raise DefectError(f"{path}: defect id {raw['id']!r} appears twice")
        if raw["find"] == raw["replace"] or not raw["find"]:
            raise DefectError(f"{path}: defect {raw['id']!r} changes nothing")
        seen.add(raw["id"])
        out.append(Defect(**{**{f: raw[f] for f in _FIELDS},
                             "checks": tuple(raw["checks"]), "hints": tuple(raw["hints"])}))
    return out


def apply_edit(text: str, find: str, replace: str, *, where: str = "") -> str:
    """`text` with the one occurrence of `find` replaced; DefectError unless exactly one."""
    n = text.count(find)
    if n != 1:
        raise DefectError(f"{where or 'source'}: the snippet to replace occurs {n} times "
                          f"(expected once): {find.strip()[:80]!r}")
    return text.replace(find, replace, 1)


def choose(defects: list[Defect], seed: int, count: int = 1, *, ids=None) -> list[Defect]:
    """`count` defects chosen by `seed` (or the named `ids`), at most one per file and no
    two sharing a check, so that each one's checks tell whether that one is fixed."""
    by_id = {d.id: d for d in defects}
    if ids:
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise DefectError(f"unknown defect(s) {unknown}; known: {', '.join(by_id)}")
        picked = [by_id[i] for i in ids]
    else:
        if not 1 <= count <= len(defects):
            raise DefectError(f"--defects must be between 1 and {len(defects)}")
        order = list(defects)
        random.Random(f"faultdrill-bughunt:{seed}").shuffle(order)
        picked = []
        for d in order:
            if len(picked) == count:
                break
            if any(d.file == p.file or set(d.checks) & set(p.checks) for p in picked):
                continue
            picked.append(d)
        if len(picked) < count:
            raise DefectError(f"cannot choose {count} defects in distinct files")
    files = [d.file for d in picked]
    if len(set(files)) != len(files):
        raise DefectError("two chosen defects edit the same file; choose others")
    return picked
