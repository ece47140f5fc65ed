"""Run `faultdrill grade` on a submission as a bounded subprocess and read its verdicts.

Why a subprocess: it is exactly what an interviewer runs, the grader's own cleanup
(process groups, temp dirs) is exercised for real, and the grader's PID names the
temporary directories it creates (`/tmp/faultdrill-<pid>-*`), so a test can prove that
nothing of one particular run is left behind while other grades run on the same machine.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.defects.assemble import assemble

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class GradeRun:
    path: Path
    seed: int
    rc: int | None
    duration: float
    pid: int
    stdout: str
    stderr: str
    timed_out: bool = False
    verdicts: dict[str, str] = field(default_factory=dict)     # check id -> pass|fail|error
    outputs: dict[str, str] = field(default_factory=dict)      # check id -> report text
    defect: str | None = None                                  # tests/defects/<name>, if one
    reports: Path | None = None                                # where the reports went

    def failing(self) -> set[str]:
        return {cid for cid, v in self.verdicts.items() if v == "fail"}

    def errors(self) -> set[str]:
        return {cid for cid, v in self.verdicts.items() if v == "error"}

    def replay(self) -> str:
        if self.defect:
            return (f"python3 -m tests.defects.assemble {self.defect} /tmp/defects && python3 -m "
                    f"graders.cli grade /tmp/defects/{self.defect} --seed {self.seed} --out <dir>")
        return f"python3 -m graders.cli grade {self.path} --seed {self.seed} --out <dir>"


def reports_dir(stdout: str, out: Path) -> Path:
    """The directory the grade wrote to: as its `reports:` line says (an --only run
    writes beside --out, in `<out>-replay-<time>`), else `out`."""
    for line in stdout.splitlines():
        if line.startswith("reports: "):
            first = line[len("reports: "):].split(", ")[0]
            return Path(first).parent
    return out


def grade_command(path: Path, seed: int, out: Path, *, only=None) -> list[str]:
    cmd = [sys.executable, "-m", "graders.cli", "grade", str(path), "--seed", str(seed),
           "--out", str(out), "--quiet"]
    return cmd + (["--only", ",".join(only)] if only else [])


def grade_env(extra_env: dict | None = None) -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                **(extra_env or {}))


def grade(path: Path, seed: int, out: Path, *, timeout: float, only=None,
          extra_env: dict | None = None) -> GradeRun:
    """A grade of `path` (all checks, or the `only` ones); bounded by `timeout` seconds
    (then killed); `extra_env` is added to the grader's environment."""
    cmd = grade_command(path, seed, out, only=only)
    env = grade_env(extra_env)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.terminate()          # the grader turns SIGTERM into a full cleanup
        try:
            stdout, stderr = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate(timeout=10)
    run = GradeRun(path=path, seed=seed, rc=proc.returncode, duration=time.monotonic() - t0,
                   pid=proc.pid, stdout=stdout, stderr=stderr, timed_out=timed_out)
    run.reports = reports_dir(stdout, out)
    results = run.reports / "results.json"
    if results.is_file():
        doc = json.loads(results.read_text(encoding="utf-8"))
        for test in doc.get("tests", []):
            extra = test.get("extra_data") or {}
            cid = extra.get("check_id")
            if cid:
                run.verdicts[cid] = extra.get("verdict")
                run.outputs[cid] = test.get("output", "")
    return run


def grade_defect(name: str, seed: int, workdir: Path, *, timeout: float) -> GradeRun:
    """A full grade of defect `name`, assembled as a self-contained folder under
    `workdir/submissions/` (inside the sandbox a submission sees only its own folder, so
    it cannot import the checkout's reference_impl); reports go to `workdir/grades/<name>`."""
    folder = assemble(name, workdir / "submissions")
    run = grade(folder, seed, workdir / "grades" / name, timeout=timeout)
    run.defect = name
    return run
