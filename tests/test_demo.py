"""The README's main job: `faultdrill demo` runs every scenario and grades side by side."""
import re
import subprocess
import sys
from pathlib import Path

import pytest


def _processes_of_run(pid: int) -> list[str]:
    """Processes started by the demo run `pid`: its deployments' memory dirs are named
    /tmp/faultdrill-<pid>-..., and every service gets its memory dir in its environment."""
    marker = f"faultdrill-{pid}-".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes():
                found.append(entry.name)
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_demo_runs_scenarios_grades_and_cleans_up(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "graders.cli", "demo", "--seed", "4",
                             "--out", str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, out[-3000:] + err[-2000:]
    assert "seed 4" in out and "FAIL" not in out
    for phrase in ("drop_reply", "SIGKILL of the analyzer", "timeout toxic", "truncated",
                   "unauthorized", "replayed from memory", "nothing left running"):
        assert phrase in out, phrase
    scores = re.findall(r"(reference|starter)\s+([\d.]+) / ([\d.]+) points", out)
    assert {k for k, _, _ in scores} == {"reference", "starter"}
    assert (tmp_path / "reference" / "report.html").exists()
    assert (tmp_path / "starter" / "results.json").exists()
    assert _processes_of_run(proc.pid) == []
    assert list(Path("/tmp").glob(f"faultdrill-{proc.pid}-*")) == []
