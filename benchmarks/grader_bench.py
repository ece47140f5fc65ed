"""How long the grader takes: a full grade and one self-check of the reference.

Why: an interviewer runs a full grade per candidate and a candidate runs the self-check
in a loop, so both must stay fast (target: a full grade within 60 s). Uses the same
harness the `grade` and `check` commands use (`graders.harness.run_checks` with the
checks from `graders.checks.registry`), with the process driver. If that machinery
cannot be imported, the keys are reported as missing with the reason - never invented.
"""
from __future__ import annotations

import io
import time
from collections import Counter
from pathlib import Path

from .systems import REFERENCE

__all__ = ["run_grader", "grade_once"]


def grade_once(seed: int, *, root: Path = REFERENCE, only: list[str] | None = None,
               visible_only: bool = False, stop_at_failing_stage: bool = False, runs: int = 1,
               challenge: str | None = None, sandbox: bool | None = None):
    """One harness run; returns (RunResult, seconds). Imports lazily (see module doc)."""
    from graders.checks.registry import all_checks
    from graders.drivers.process import ProcessDriver
    from graders.harness import Progress, run_checks, select_checks
    from graders.manifest import load_manifest
    specs = select_checks(all_checks(), only=only, visible_only=visible_only, challenge=challenge)
    t0 = time.monotonic()
    result = run_checks(specs, submission=load_manifest(root), driver=ProcessDriver(sandbox=sandbox), seed=seed,
                        runs=runs, progress=Progress(stream=io.StringIO()),
                        stop_at_failing_stage=stop_at_failing_stage)
    return result, time.monotonic() - t0


def run_grader(seed: int, *, only: list[str] | None = None, log=print) -> dict:
    """Keys: full_grade_s, self_check_s (+ verdict counts), and the sandbox's cost:
    full_grade_unsandboxed_s and sandbox_ratio (target <= 1.3), measured in the same run
    with the same seed, unsandboxed first (docs/THREAT_MODEL.md)."""
    try:
        from graders.sandbox import probe
        sandboxed = probe().ok
        bare, bare_s = grade_once(seed, only=only, sandbox=False)
        log(f"  grader: full grade unsandboxed {bare_s:.1f} s")
        full, full_s = grade_once(seed, only=only, sandbox=True if sandboxed else False)
        log(f"  grader: full grade {'sandboxed' if sandboxed else 'UNSANDBOXED (no sandbox here)'} "
            f"{full_s:.1f} s (x{full_s / bare_s:.2f})")
        check, check_s = grade_once(seed + 1, only=only, visible_only=True, stop_at_failing_stage=True)
        log(f"  grader: self-check (all visible stages) {check_s:.1f} s")
        # What a candidate runs while working on one challenge (`check --challenge NAME`);
        # the slowest challenge is the figure to hold against the 10 s target.
        per_challenge = {}
        if only is None:
            from graders.checks.registry import CHALLENGES
            for name in CHALLENGES:
                _, per_challenge[name] = grade_once(seed + 2, visible_only=True, challenge=name,
                                                    stop_at_failing_stage=True)
            worst = max(per_challenge, key=per_challenge.get)
            log(f"  grader: one challenge's self-check: slowest {worst} "
                f"{per_challenge[worst]:.1f} s")
    except ImportError as exc:
        return {"full_grade_s": None, "self_check_s": None, "challenge_check_s": None,
                "missing_reason": f"grader machinery not importable: {exc}"}
    return {
        "full_grade_s": round(full_s, 2),
        "full_grade_unsandboxed_s": round(bare_s, 2),
        "sandbox_ratio": round(full_s / bare_s, 3) if sandboxed else None,
        "sandboxed": sandboxed,
        "unsandboxed_not_passed": sorted(v.check_id for v in bare.verdicts if v.status != "pass"),
        "self_check_s": round(check_s, 2),
        "challenge_check_s": round(max(per_challenge.values()), 2) if per_challenge else None,
        "challenge_check_s_each": {k: round(v, 2) for k, v in per_challenge.items()},
        "full_grade_verdicts": dict(Counter(v.status for v in full.verdicts)),
        "self_check_verdicts": dict(Counter(v.status for v in check.verdicts)),
        "checks": len(full.verdicts),
        "not_passed": sorted(v.check_id for v in full.verdicts if v.status != "pass"),
        "cleanup_notes": list(full.cleanup) + list(check.cleanup),
        "settings": {"driver": "process", "subset": only},
        "target": {"full_grade_s_max": 60.0, "challenge_check_s_max": 10.0, "sandbox_ratio_max": 1.3},
    }
