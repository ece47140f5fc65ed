"""`faultdrill calibrate`: how well do interviewers agree on levels?

Interviewers score candidates (or sample answers) independently, per area, on the four
rubric levels. This command reads their scores and reports quadratic-weighted Cohen's
kappa for every pair of interviewers, plus a plain-language note. Quadratic weights
because the levels are ordered: "leaning hire" vs "strong hire" is a smaller
disagreement than "strong no hire" vs "strong hire".

CSV input (one or more files, header required, extra columns ignored):
    candidate,area,interviewer,level
    c1,orchestration,alice,leaning_hire
Levels may be ids (strong_no_hire..strong_hire), titles ("Leaning hire") or 1-4.
"""
from __future__ import annotations

import csv
import itertools
import sys
from pathlib import Path

HELP = "Measure interviewer agreement (quadratic-weighted Cohen's kappa) from level CSVs."

LEVELS = ["strong_no_hire", "leaning_no_hire", "leaning_hire", "strong_hire"]


class CalibrationError(Exception):
    pass


def parse_level(text: str) -> int:
    t = text.strip().lower().replace("-", "_").replace(" ", "_")
    if t in LEVELS:
        return LEVELS.index(t)
    if t in {"1", "2", "3", "4"}:
        return int(t) - 1
    raise CalibrationError(f"unknown level {text!r}: use one of {', '.join(LEVELS)} or 1-4")


def read_scores(paths) -> dict[str, dict[tuple[str, str], int]]:
    """-> {interviewer: {(candidate, area): level index}}"""
    scores: dict[str, dict[tuple[str, str], int]] = {}
    for path in paths:
        path = Path(path)
        try:
            fh = path.open(newline="", encoding="utf-8")
        except OSError as exc:
            raise CalibrationError(f"{path}: {exc.strerror}") from None
        with fh:
            reader = csv.DictReader(fh)
            need = {"candidate", "area", "interviewer", "level"}
            have = {(f or "").strip().lower() for f in (reader.fieldnames or [])}
            if not need <= have:
                raise CalibrationError(f"{path}: header must contain {', '.join(sorted(need))}")
            for lineno, row in enumerate(reader, 2):
                row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
                if not any(row.values()):
                    continue
                try:
                    level = parse_level(row["level"])
                except CalibrationError as exc:
                    raise CalibrationError(f"{path}:{lineno}: {exc}") from None
                key = (row["candidate"], row["area"])
                who = scores.setdefault(row["interviewer"], {})
                if key in who and who[key] != level:
                    raise CalibrationError(f"{path}:{lineno}: {row['interviewer']} scored "
                                           f"{key[0]}/{key[1]} twice with different levels")
                who[key] = level
    return scores


def weighted_kappa(a: list[int], b: list[int], k: int = 4) -> float | None:
    """Quadratic-weighted Cohen's kappa of two raters over the same items.
    None when undefined (no items, or both raters constant on the same single level)."""
    if len(a) != len(b):
        raise ValueError("raters must score the same items")
    n = len(a)
    if n == 0:
        return None
    obs = [[0.0] * k for _ in range(k)]
    for x, y in zip(a, b):
        obs[x][y] += 1
    ra = [sum(row) for row in obs]
    rb = [sum(obs[i][j] for i in range(k)) for j in range(k)]
    w = [[(i - j) ** 2 / (k - 1) ** 2 for j in range(k)] for i in range(k)]
    num = sum(w[i][j] * obs[i][j] for i in range(k) for j in range(k)) / n
    den = sum(w[i][j] * ra[i] * rb[j] for i in range(k) for j in range(k)) / (n * n)
    if den == 0:
        return 1.0 if num == 0 else None
    return 1.0 - num / den


def describe(kappa: float | None) -> str:
    if kappa is None:
        return "undefined (too few or identical-constant ratings)"
    if kappa < 0:
        return "worse than chance: the raters read the rubric differently"
    for bound, words in ((0.2, "slight"), (0.4, "fair"), (0.6, "moderate"), (0.8, "substantial")):
        if kappa <= bound:
            return f"{words} agreement"
    return "almost perfect agreement"


def calibrate(scores) -> dict:
    people = sorted(scores)
    pairs = []
    for p, q in itertools.combinations(people, 2):
        common = sorted(set(scores[p]) & set(scores[q]))
        a = [scores[p][key] for key in common]
        b = [scores[q][key] for key in common]
        kappa = weighted_kappa(a, b) if common else None
        far = [f"{c}/{ar}" for (c, ar), x, y in zip(common, a, b) if abs(x - y) >= 2]
        exact = sum(1 for x, y in zip(a, b) if x == y)
        pairs.append({"raters": (p, q), "items": len(common), "kappa": kappa,
                      "exact": exact, "far_apart": far, "note": describe(kappa)})
    return {"raters": people, "pairs": pairs}


def render(result: dict) -> str:
    lines = [f"raters: {', '.join(result['raters'])}"]
    ks = []
    for pr in result["pairs"]:
        p, q = pr["raters"]
        k = pr["kappa"]
        ks.append(k) if k is not None else None
        lines.append(f"{p} vs {q}: {pr['items']} shared ratings, exact match {pr['exact']}, "
                     f"weighted kappa {'n/a' if k is None else f'{k:.3f}'} — {pr['note']}")
        if pr["far_apart"]:
            lines.append(f"  two or more levels apart on: {', '.join(pr['far_apart'])} "
                         "(discuss these first in the calibration session)")
    if ks:
        lo = min(ks)
        verdict = ("The panel reads the rubric consistently." if lo > 0.6 else
                   "The panel is not yet calibrated: compare the level anchors for the areas "
                   "listed above and rescore a shared sample before interviewing.")
        lines.append(f"lowest pairwise kappa {lo:.3f}: {verdict}")
    else:
        lines.append("no pair of raters shares a rating: nothing to compare.")
    return "\n".join(lines)


def add_arguments(parser) -> None:
    parser.add_argument("csv", nargs="+", metavar="SCORES.csv",
                        help="CSV files with columns candidate,area,interviewer,level")


def run(args) -> int:
    try:
        scores = read_scores(args.csv)
    except CalibrationError as exc:
        print(f"faultdrill calibrate: {exc}", file=sys.stderr)
        return 2
    if len(scores) < 2:
        print("faultdrill calibrate: need ratings from at least two interviewers", file=sys.stderr)
        return 2
    print(render(calibrate(scores)))
    return 0
