"""A bug hunt: prepare the candidate's copy, keep the answer key apart, verify fixes.

The copy (`prepare`) is the reference package as a submission folder:

    OUT/faultdrill.toml        commands ["{python}", "reference_impl/main.py", ROLE]
    OUT/BUGHUNT.md             the same neutral instructions for every hunt
    OUT/reference_impl/...     the reference with the chosen defects edited in

Nothing in it names a defect: no defect file, no comment, no changed file name; every file
gets the same modification time (an edited file would otherwise stand out in `ls -lt`),
caches and the reference's own manifest/Dockerfile are left out, and the copy is the same
shape whatever was chosen.

The answer key (chosen defects, hints, fix, start time, a digest of every handed-out file,
and each verify attempt) is a JSON file outside the copy, in this user's private state
directory by default (mode 0600).

`verify` grades the copy with the grader's own harness and driver (so the candidate's code
runs in the same sandbox as when graded): first the chosen defects' checks (any failing:
not fixed, the rest is skipped unless `run_all`), then every other check (any failing: a
regression). Grader errors make the attempt incomplete, never "fixed".
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from .catalogue import Defect, DefectError, apply_edit, choose, load_defects

__all__ = ["prepare", "verify", "load_key", "key_path_for", "HuntError", "Attempt", "ROLES"]

ROLES = ("orchestrator", "collector", "analyzer", "reporter")
KEY_KIND = "faultdrill-bughunt-key"
#: Every handed-out file gets this modification time (2026-01-01T00:00:00Z).
FIXED_MTIME = 1767225600
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "faultdrill.toml", "Dockerfile")

INSTRUCTIONS = """\
# Bug hunt

This folder is a complete implementation of the faultdrill contract (`challenges/SPEC.md`
in your bundle). Something in it is wrong. Your interviewer will tell you what users have
reported.

Find the cause, explain it, and fix it, using what an operator would use:

    faultdrill check .                  # the self-check, stage by stage
    faultdrill up . --traffic 4         # run it: dashboard, /metrics, logs, faults

Say out loud what you look at and why. When you think it is fixed, tell your interviewer;
they will run the verification.
"""


class HuntError(Exception):
    """A bug hunt that cannot be prepared or verified (message says why; exit 2)."""


def _manifest() -> str:
    lines = ["[submission]", 'name = "bug hunt"', "spec_version = 1", ""]
    for role in ROLES:
        lines += [f"[services.{role}]", f'command = ["{{python}}", "reference_impl/main.py", "{role}"]', ""]
    return "\n".join(lines)


def _digest(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def key_path_for(copy: Path) -> Path:
    from ..live.state import state_dir
    digest = hashlib.sha256(str(Path(copy).resolve()).encode()).hexdigest()[:16]
    folder = state_dir() / "bughunt"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{digest}.json"


def _write_key(path: Path, key: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(key, fh, indent=1)
    os.replace(tmp, path)


def load_key(copy: Path, key_file: Path | None = None) -> tuple[Path, dict]:
    path = Path(key_file) if key_file else key_path_for(copy)
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HuntError(f"no answer key for {copy} (looked at {path}); was it prepared with "
                        "`faultdrill bughunt start` by this user? pass --key FILE") from None
    except ValueError:
        raise HuntError(f"the answer key {path} is not JSON") from None
    if key.get("kind") != KEY_KIND:
        raise HuntError(f"{path} is not a faultdrill bug-hunt key")
    return path, key


def prepare(out: Path, *, seed: int, count: int = 1, ids=None, key_file: Path | None = None,
            reference: Path | None = None, force: bool = False) -> tuple[Path, dict]:
    """Write the candidate's copy into `out` and its answer key; (key path, key)."""
    out = Path(out)
    reference = Path(reference or paths.REFERENCE)
    chosen = choose(load_defects(), seed, count, ids=ids)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise HuntError(f"{out} exists and is not empty (use --force to replace an earlier hunt)")
        if not (out / "BUGHUNT.md").is_file():
            raise HuntError(f"{out} is not an earlier bug-hunt copy (no BUGHUNT.md); not replacing it")
        shutil.rmtree(out)
    staging = out.with_name(out.name + ".preparing")
    if staging.exists():
        shutil.rmtree(staging)
    try:
        shutil.copytree(reference, staging / "reference_impl", ignore=_SKIP)
        for d in chosen:
            target = staging / "reference_impl" / d.file
            if not target.is_file():
                raise DefectError(f"defect {d.id}: reference_impl/{d.file} does not exist")
            text = target.read_text(encoding="utf-8")
            target.write_text(apply_edit(text, d.find, d.replace, where=f"reference_impl/{d.file}"),
                              encoding="utf-8")
        (staging / "faultdrill.toml").write_text(_manifest(), encoding="utf-8")
        (staging / "BUGHUNT.md").write_text(INSTRUCTIONS, encoding="utf-8")
        for path in [staging, *staging.rglob("*")]:
            os.utime(path, (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    path = Path(key_file) if key_file else key_path_for(out)
    # The reference as it was handed out, without the defects, beside the key: a check
    # that fails in the copy is a regression only if it passes here (the reference, or
    # this machine, may fail a check for reasons that have nothing to do with the hunt).
    pristine = path.with_name(path.stem + "-pristine")
    if pristine.exists():
        shutil.rmtree(pristine)
    shutil.copytree(reference, pristine / "reference_impl", ignore=_SKIP)
    (pristine / "faultdrill.toml").write_text(_manifest(), encoding="utf-8")
    key = {"kind": KEY_KIND, "copy": str(out.resolve()), "seed": seed,
           "defects": [d.as_dict() for d in chosen], "started_at": time.time(),
           "handed_out": _digest(out), "pristine": str(pristine), "attempts": []}
    _write_key(path, key)
    return path, key


@dataclass
class Attempt:
    number: int
    elapsed_s: float
    outcome: str                         # fixed | not_fixed | regressed | incomplete
    defect_checks: dict[str, str]        # check id -> pass/fail/error
    other_failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    changed_files: list[str] = field(default_factory=list)
    skipped_rest: bool = False
    seed: int = 0
    baseline_failing: list[str] = field(default_factory=list)   # fail on the reference too

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def changed_files(copy: Path, handed_out: dict[str, str]) -> list[str]:
    now = _digest(copy)
    return sorted(set(k for k in now if handed_out.get(k) != now[k]) | (set(handed_out) - set(now)))


def verify(copy: Path, *, key_file: Path | None = None, run_all: bool = False,
           unsafe_no_sandbox: bool = False, seed: int | None = None, progress=None) -> Attempt:
    """Grade the copy against its key and record the attempt in the key."""
    from ..checks.registry import all_checks
    from ..harness import Progress, run_checks, select_checks
    from ..live.system import make_driver
    from ..manifest import ManifestError, load_manifest

    key_path, key = load_key(copy, key_file)
    copy = Path(copy)
    try:
        submission = load_manifest(copy)
    except ManifestError as exc:
        raise HuntError(f"the copy's manifest is broken: {exc}") from None
    seed = key["seed"] if seed is None else seed
    specs = all_checks()
    wanted = sorted({c for d in key["defects"] for c in d["checks"]})
    progress = progress or Progress(quiet=True)
    driver = make_driver(None, unsafe_no_sandbox=unsafe_no_sandbox)
    first = run_checks(select_checks(specs, only=wanted), submission=submission, driver=driver,
                       seed=seed, progress=progress)
    verdicts = list(first.verdicts)
    defect_checks = {v.check_id: v.status for v in first.verdicts}
    defect_ok = all(s == "pass" for s in defect_checks.values()) and set(defect_checks) == set(wanted)
    skipped = not defect_ok and not run_all
    if not skipped:
        rest = [s for s in specs if s.id not in set(wanted)]
        second = run_checks(rest, submission=submission, driver=driver, seed=seed, progress=progress)
        verdicts += second.verdicts
    errors = sorted({v.check_id for v in verdicts if v.status == "error"})
    others = sorted({v.check_id for v in verdicts if v.status == "fail" and v.check_id not in wanted})
    baseline_failing: list[str] = []
    pristine = Path(key.get("pristine") or "")
    if others and key.get("pristine") and pristine.is_dir() and \
            _digest(pristine / "reference_impl") == _digest(copy / "reference_impl"):
        # The copy's code is the untouched reference again: nothing it fails can be a
        # regression (a check failing here fails on the reference too, on this machine).
        baseline_failing, others = others, []
    for _ in range(2):
        if not others:
            break
        # A check that fails once under load is not yet a regression: it must fail on
        # every re-run of the copy, and pass on the reference (below).
        again = run_checks(select_checks(specs, only=others), submission=submission, driver=driver,
                           seed=seed, progress=progress)
        others = sorted({v.check_id for v in again.verdicts if v.status == "fail"})
        errors = sorted(set(errors) | {v.check_id for v in again.verdicts if v.status == "error"})
    if others and key.get("pristine") and pristine.is_dir():
        # Only the checks that failed are re-run, on the untouched reference.
        base = run_checks(select_checks(specs, only=others), submission=load_manifest(Path(key["pristine"])),
                          driver=driver, seed=seed, progress=progress)
        baseline_failing = sorted(set(baseline_failing) | {v.check_id for v in base.verdicts if v.status != "pass"})
        others = [c for c in others if c not in baseline_failing]
    closing = getattr(driver, "close", None)
    if callable(closing):
        closing()
    if errors:
        outcome = "incomplete"
    elif not defect_ok:
        outcome = "not_fixed"
    elif others:
        outcome = "regressed"
    else:
        outcome = "fixed"
    attempt = Attempt(number=len(key["attempts"]) + 1,
                      elapsed_s=round(time.time() - key["started_at"], 1), outcome=outcome,
                      defect_checks=defect_checks, other_failures=others, errors=errors,
                      changed_files=changed_files(copy, key.get("handed_out", {})),
                      skipped_rest=skipped, seed=seed, baseline_failing=baseline_failing)
    key["attempts"].append({**attempt.as_dict(), "at": time.time()})
    _write_key(key_path, key)
    return attempt


def record_hint(copy: Path, *, key_file: Path | None = None, defect_id: str | None = None) -> dict | None:
    """The next hint of a planted defect's ladder, recorded in the key with its time
    (None when its hints are used up)."""
    key_path, key = load_key(copy, key_file)
    defects = {d["id"]: d for d in key["defects"]}
    if defect_id is None:
        if len(defects) > 1:
            raise HuntError(f"several defects are planted: pass --defect ({', '.join(defects)})")
        defect_id = next(iter(defects))
    if defect_id not in defects:
        raise HuntError(f"{defect_id!r} is not planted in this hunt ({', '.join(defects)})")
    given = [h for h in key.setdefault("hints", []) if h["defect"] == defect_id]
    ladder = defects[defect_id]["hints"]
    if len(given) >= len(ladder):
        return None
    hint = {"defect": defect_id, "number": len(given) + 1, "of": len(ladder),
            "text": ladder[len(given)], "at": time.time(),
            "elapsed_s": round(time.time() - key["started_at"], 1)}
    key["hints"].append(hint)
    _write_key(key_path, key)
    return hint


def defects_of(key: dict) -> list[Defect]:
    return [Defect(**{**d, "checks": tuple(d["checks"]), "hints": tuple(d["hints"])}) for d in key["defects"]]
