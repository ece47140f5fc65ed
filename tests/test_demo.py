"""The README's main job: `faultdrill demo` runs every scenario and grades side by side."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


def _faultdrill_processes() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if "reference_impl" in cmd or "main.py orchestrator" in cmd:
            found.append(f"{entry.name}: {cmd}")
    return found


@pytest.mark.slow
def test_demo_runs_scenarios_grades_and_cleans_up(tmp_path):
    before = set(_faultdrill_processes())
    done = subprocess.run([sys.executable, "-m", "graders.cli", "demo", "--seed", "4",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=240)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-2000:]
    assert "seed 4" in out and "FAIL" not in out
    for phrase in ("drop_reply", "SIGKILL of the analyzer", "timeout toxic", "truncated",
                   "unauthorized", "replayed from memory", "nothing left running"):
        assert phrase in out, phrase
    scores = re.findall(r"(reference|starter)\s+([\d.]+) / ([\d.]+) points", out)
    assert dict((k, (float(a), float(b))) for k, a, b in scores).keys() == {"reference", "starter"}
    assert (tmp_path / "reference" / "report.html").exists()
    assert (tmp_path / "starter" / "results.json").exists()
    assert set(_faultdrill_processes()) - before == set()
