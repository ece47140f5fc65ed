"""The attack suite (issue 10 item 6): hostile submissions, one per class of attack that
worked against the unsandboxed grader, each graded by the real `faultdrill grade`.

Each attack in tests/fixtures/attacks/<name>/ is a realistic cheating candidate: an
honest part (the reference with one known defect, `no-token-check`, so it deserves
exactly the verdicts docs/DEFECT_MATRIX.md gives it, and a forged full score shows) plus
the attack. The folder is assembled in a temporary directory (a copy of the reference,
the one-defect launcher, the shared tests/fixtures/attacks/_shared/hostile.py, the
attack's files and `attack_hints.json`, which tells the attack everything a determined
attacker could guess: where the kit is, a host directory to leave evidence in, a victim
directory to point links at, a canary in the grader's environment, and a nonce that
every attack process carries in its command line).

Every test asserts that the attack was blocked or detected:
- the grade completed with exactly the honest part's verdicts and score (the same checks,
  the same seed, graded alone), and no grader error;
- nothing the attack did got out: the witness directory (world-writable, on the host's
  /tmp) is empty, the canary and /etc/shadow appear in no report, the kit is unchanged,
  the victim directory keeps its mode and content, and the reports do not change after
  the grader has exited;
- nothing is left: no process carrying the nonce or the grade's temporary directory, no
  temporary directory of the grade.

Most attacks succeed against an unsandboxed grader (FAULTDRILL_SANDBOX=0 or
--unsafe-no-sandbox): these tests hold only with the sandbox, the grader's default, and
are never skipped. Three hold without it too: the kit's reference is not importable by
the interpreter services get, candidate bytes go through one bounded decoder, and no
grader operation follows a link (graders/safefs.py).
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

import graders
from tests.defects import render
from tests.defects.assemble import assemble
from tests.defects.grading import GradeRun, grade, grade_command, grade_env

ROOT = Path(__file__).resolve().parents[1]
ATTACKS = ROOT / "tests" / "fixtures" / "attacks"
SHARED = ATTACKS / "_shared" / "hostile.py"
HONEST = "no-token-check"
SEED = int(os.environ.get("FD_ATTACK_SEED", "1010"))
# Few, fast checks: one the honest part fails (security.token_refused, where the JSON
# bombs go off), and ones it passes (a forged report shows as a changed verdict); two of
# them damage and read every memory file (where links are planted).
CHECKS = ("pipeline.triage_oracle", "security.token_refused", "memory.corrupt_agent",
          "security.no_token_leak")
GRADE_TIMEOUT_S = 120.0
AFTER_EXIT_S = 1.0          # how long the reports must stay as the grader left them
GONE_WITHIN_S = 15.0        # after a SIGKILLed grader, everything must be gone by then
KIT = Path(graders.__file__).resolve().parent.parent

with render.MATRIX.open("rb") as _fh:
    HONEST_FAILS = set(tomllib.load(_fh)["defects"][HONEST]["fail"]) & set(CHECKS)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


# --- the workspace: submissions, victim, witness ----------------------------------------

@dataclass
class Attack:
    name: str
    folder: Path
    nonce: str
    witness: Path           # where this attack tries to leave what it got (must stay empty)

    def witnessed(self) -> list[str]:
        return sorted(f"{p.name}: {p.read_text(errors='replace')[:200]}" for p in self.witness.iterdir())


class Workspace:
    """Everything under one host directory below /tmp that an unprivileged user can
    reach, so that only the sandbox, not a root-only pytest directory, stands between
    the attacks and the witness and victim directories."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="fd-attacks-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.victim = self.root / "victim"
        self.victim.mkdir(mode=0o755)
        os.chmod(self.victim, 0o755)
        (self.victim / "precious.txt").write_text("keep me\n")
        os.chmod(self.victim / "precious.txt", 0o644)
        self.witnesses = self.root / "witness"
        self.witnesses.mkdir()
        self.canary = f"fdcanary{uuid.uuid4().hex}"
        self._count = 0

    def assemble(self, name: str | None, *, honest: bool = True, label: str | None = None) -> Attack:
        """Build attack `name` (None: the honest part alone) as its own folder."""
        self._count += 1
        label = label or name or HONEST
        stage = self.root / f"stage-{self._count}"
        folder = self.root / "subs" / f"{self._count:02d}-{label}"
        folder.parent.mkdir(exist_ok=True)
        if honest:
            assemble(HONEST, stage).rename(folder)
            shutil.rmtree(stage)
        else:
            folder.mkdir()
        nonce = f"fdattack{uuid.uuid4().hex[:16]}"
        witness = self.witnesses / folder.name
        witness.mkdir()
        os.chmod(witness, 0o777)
        if name is not None:
            shutil.copy2(SHARED, folder / "hostile.py")
            shutil.copytree(ATTACKS / name, folder, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
            (folder / "attack_hints.json").write_text(json.dumps({
                "nonce": nonce, "witness": str(witness), "victim": str(self.victim),
                "kit": str(KIT), "canary": self.canary, "scope": str(self.root)}), encoding="utf-8")
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                os.chmod(path, 0o755)
        return Attack(label, folder, nonce, witness)

    def grade(self, attack: Attack, *, checks=CHECKS) -> GradeRun:
        out = self.root / "out" / f"{attack.folder.name}"
        out.parent.mkdir(exist_ok=True)
        return grade(attack.folder, SEED, out, timeout=GRADE_TIMEOUT_S, only=checks,
                     extra_env={"FD_ATTACK_CANARY": self.canary})

    def victim_damage(self) -> list[str]:
        problems = []
        if stat_mode(self.victim) != 0o755:
            problems.append(f"victim dir mode is now {stat_mode(self.victim):o}")
        if sorted(os.listdir(self.victim)) != ["precious.txt"]:
            problems.append(f"victim dir now holds {sorted(os.listdir(self.victim))}")
        if (self.victim / "precious.txt").read_text() != "keep me\n":
            problems.append("victim file was overwritten")
        if stat_mode(self.victim / "precious.txt") != 0o644:
            problems.append(f"victim file mode is now {stat_mode(self.victim / 'precious.txt'):o}")
        return problems


def stat_mode(path: Path) -> int:
    return os.lstat(path).st_mode & 0o7777


@pytest.fixture(scope="module")
def ws():
    space = Workspace()
    print(f"\nattack workspace {space.root}, seed {SEED}")
    yield space
    for dirpath, dirs, _files in os.walk(space.root):
        for d in dirs:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, 0o755)
    shutil.rmtree(space.root, ignore_errors=True)


@pytest.fixture(scope="module")
def honest(ws):
    """The honest part graded alone: the verdicts and score every attack must get."""
    run = ws.grade(ws.assemble(None))
    assert not run.timed_out and run.rc in (0, 1), run.stderr[-2000:]
    assert set(run.verdicts) == set(CHECKS), run.stdout + run.stderr[-2000:]
    assert run.failing() == HONEST_FAILS and not run.errors(), run.verdicts
    return run.verdicts, score_of(run)


def score_of(run: GradeRun):
    doc = json.loads((run.reports / "results.json").read_text(encoding="utf-8"))
    return doc.get("score"), doc.get("max_score")


# --- what is left behind ------------------------------------------------------------------

def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def survivors(nonce: str, grader_pid: int) -> list[int]:
    """Processes of this attack (its nonce in the command line or environment) or of this
    grade (the grader's temp-dir prefix in the environment), alive (not zombies)."""
    marks = (nonce.encode(), f"faultdrill-{grader_pid}-".encode())
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        stat = _read(f"/proc/{name}/stat")
        if not stat or stat[stat.rfind(b")") + 2:][:1] in (b"Z", b"X"):
            continue
        blob = _read(f"/proc/{name}/cmdline") + _read(f"/proc/{name}/environ")
        if any(m in blob for m in marks):
            found.append(int(name))
    return found


def temp_dirs(grader_pid: int) -> list[str]:
    """The grade's temporary directories visible on the host (the sandboxed grader keeps
    them on a tmpfs of its own mount namespace, which must vanish with it)."""
    found = []
    for base in {tempfile.gettempdir(), "/tmp", "/dev/shm"}:
        found += [str(p) for p in Path(base).glob(f"faultdrill-{grader_pid}-*")]
    return sorted(found)


def describe(pid: int) -> str:
    """pid, parent, state and command line of a left-over process (for the failure message)."""
    status = _read(f"/proc/{pid}/status").decode(errors="replace")
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    cmd = _read(f"/proc/{pid}/cmdline").replace(b"\0", b" ").decode(errors="replace")[:200]
    return (f"{pid} (ppid {fields.get('PPid', '?').strip()}, state {fields.get('State', '?').strip()}, "
            f"uid {fields.get('Uid', '?').split()[:1]}): {cmd}")


def kill(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def report_hashes(run: GradeRun) -> dict[str, str]:
    if run.reports is None or not run.reports.is_dir():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.reports.iterdir())
            if p.is_file() and not p.is_symlink()}


def reports_text(run: GradeRun) -> str:
    if run.reports is None or not run.reports.is_dir():
        return ""
    return "\n".join(p.read_text(errors="replace") for p in sorted(run.reports.iterdir())
                     if p.is_file() and not p.is_symlink())


def assert_blocked(ws: Workspace, attack: Attack, run: GradeRun, honest, *, at_most: bool = False) -> None:
    """The common verdict on one attack grade (see the module docstring). `at_most`: the
    attack may cost its own grade checks (it sabotages itself), never earn one."""
    where = f"{attack.name} (seed {SEED}; {run.replay()})"
    hashes = report_hashes(run)
    time.sleep(AFTER_EXIT_S)
    left = survivors(attack.nonce, run.pid)
    kill(left)
    assert not run.timed_out, f"{where}: grading did not finish in {GRADE_TIMEOUT_S:.0f} s"
    assert run.rc in (0, 1), f"{where}: exit {run.rc}: {run.stderr[-2000:]}"
    assert report_hashes(run) == hashes, f"{where}: the reports changed after the grader exited"
    verdicts, score = honest
    assert not run.errors(), f"{where}: grader errors {sorted(run.errors())}"
    if at_most:
        assert set(run.verdicts) == set(verdicts), f"{where}: verdicts {run.verdicts}"
        earned = {c for c, v in run.verdicts.items() if v == "pass" and verdicts[c] != "pass"}
        assert not earned, f"{where}: the attack earned {sorted(earned)}"
        assert score_of(run)[0] <= score[0], f"{where}: score {score_of(run)} above the honest part's {score}"
    else:
        assert run.verdicts == verdicts, f"{where}: verdicts {run.verdicts}, the honest part gets {verdicts}"
        assert score_of(run) == score, f"{where}: score {score_of(run)}, the honest part gets {score}"
    assert not attack.witnessed(), f"{where}: the attack got out: {attack.witnessed()}"
    text = reports_text(run)
    assert ws.canary not in text, f"{where}: the grader's environment reached a report"
    assert not re.search(r"^root:[^:\n]*:\d+:", text, re.M), f"{where}: /etc/shadow reached a report"
    assert not ws.victim_damage(), f"{where}: {ws.victim_damage()}"
    assert not left, f"{where}: processes left running after the grade: {left}"
    assert not temp_dirs(run.pid), f"{where}: temporary directories left: {temp_dirs(run.pid)}"


# --- the attacks --------------------------------------------------------------------------

def test_every_attack_has_a_test():
    names = sorted(p.name for p in ATTACKS.iterdir() if (p / "faultdrill.toml").is_file())
    tested = sorted(n for n in TESTED)
    assert names == tested


TESTED = {"forges-reports", "runs-the-kits-reference", "reads-the-grader", "writes-into-the-kit",
          "json-bombs", "planted-links", "squats-ports", "attacks-a-neighbour", "outlives-the-grader"}


def test_escaped_daemon_cannot_forge_the_reports(ws, honest):
    """Double fork, setsid, empty environment; finds --out via /proc and rewrites every
    report once the grader has exited. The reports must stay the grader's."""
    attack = ws.assemble("forges-reports")
    run = ws.grade(attack)
    assert_blocked(ws, attack, run, honest)
    assert "100% (60/60)" not in reports_text(run)


def autograde(ws: Workspace, attack: Attack, label: str) -> dict:
    """The Gradescope path: `python -m graders.packaging autograde` on a simulated
    /autograder root whose submission is `attack`; returns results/results.json as it
    stands AFTER_EXIT_S after the autograder exited."""
    root = ws.root / "gradescope" / label
    (root / "results").mkdir(parents=True)
    shutil.copytree(attack.folder, root / "submission", symlinks=True)
    (root / "submission_metadata.json").write_text(json.dumps({"id": 1010}))
    env = grade_env({"FAULTDRILL_GRADE_ARGS": "--only " + ",".join(CHECKS),
                     "FAULTDRILL_SEED": str(SEED), "FD_ATTACK_CANARY": ws.canary})
    proc = subprocess.run([sys.executable, "-m", "graders.packaging", "autograde", "--root", str(root)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=GRADE_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
    time.sleep(AFTER_EXIT_S)
    return json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))


def _gradescope_view(doc: dict) -> tuple:
    """(score, {check id: status}) of a Gradescope results.json."""
    return doc.get("score"), {t["extra_data"]["check_id"]: t.get("status") for t in doc.get("tests", [])
                              if t.get("extra_data", {}).get("check_id")}


def test_escaped_daemon_cannot_forge_the_gradescope_results(ws, honest):
    """The same forger through the Gradescope autograder: results.json (what the
    platform records) is what the honest part earns, also after the autograder exited."""
    attack = ws.assemble("forges-reports", label="gs-forges-reports")
    got = autograde(ws, attack, "forges")
    left = survivors(attack.nonce, -1)
    kill(left)
    verdicts, (score, _max) = honest
    expected = (score, {cid: {"pass": "passed", "fail": "failed"}[v] for cid, v in verdicts.items()})
    assert _gradescope_view(got) == expected, f"Gradescope results differ from the honest part's: {got}"
    assert not attack.witnessed(), f"the attack got out: {attack.witnessed()}"
    assert not left, f"processes left running after the autograder: {left}"


def test_a_manifest_running_the_kits_reference_earns_nothing(ws):
    """`{python} -m reference_impl <role>` and no code: the kit is invisible, no service
    starts, every check fails (the candidate's failure, not a grader error)."""
    attack = ws.assemble("runs-the-kits-reference", honest=False)
    run = ws.grade(attack)
    left = survivors(attack.nonce, run.pid)
    kill(left)
    assert run.rc in (0, 1) and not run.timed_out, run.stderr[-2000:]
    assert set(run.verdicts) == set(CHECKS), run.stdout + run.stderr[-2000:]
    assert not run.errors(), sorted(run.errors())
    assert run.failing() == set(CHECKS), f"the kit's reference earned {sorted(set(CHECKS) - run.failing())}"
    assert score_of(run)[0] == 0
    assert "No module named" in reports_text(run) or "reference_impl" in reports_text(run)
    assert not left and not temp_dirs(run.pid)


def test_reading_the_grader_through_proc_and_the_system_gets_nothing(ws, honest):
    """/proc/<grader>/environ, cmdline, fd, mem; /etc/shadow; the hidden checks' source:
    nothing is readable, so nothing reaches the witness directory or a report."""
    attack = ws.assemble("reads-the-grader")
    run = ws.grade(attack)
    assert_blocked(ws, attack, run, honest)


def test_the_installed_kit_cannot_be_written(ws, honest):
    """A new check module and an opened-for-append scoring.py in every kit the attack
    finds: nothing of the kit changes (whatever the attack writes names its nonce)."""
    attack = ws.assemble("writes-into-the-kit")
    run = ws.grade(attack)
    planted = sorted(str(p) for p in KIT.rglob(f"*{attack.nonce}*"))
    for p in planted:
        os.unlink(p)
    assert not planted, f"the attack planted files in the kit: {planted}"
    touched = kit_files_mentioning(attack.nonce.encode())
    assert not touched, f"kit files changed by the attack: {touched}"
    assert_blocked(ws, attack, run, honest)


def kit_files_mentioning(needle: bytes) -> list[str]:
    """Kit files holding `needle` (compared by content, not by a snapshot: on a developer's
    checkout other work may change kit files while the suite runs)."""
    found = []
    for top in ("graders", "rubric", "reference_impl"):
        for p in sorted((KIT / top).rglob("*")):
            if p.is_file() and not p.is_symlink() and "__pycache__" not in p.parts \
                    and needle in p.read_bytes():
                found.append(str(p))
    return found


def test_json_bombs_during_a_failing_check_stay_the_candidates_failure(ws, honest):
    """Nested brackets, a 3 MiB line, invalid UTF-8 instead of each reply to a wrong or
    missing token: security.token_refused stays a FAIL (not a grader error, which would not
    count). A bomb where the honest part answered well (security.no_token_leak sends wrong
    tokens too) may cost that check, never earn one."""
    attack = ws.assemble("json-bombs")
    run = ws.grade(attack)
    assert_blocked(ws, attack, run, honest, at_most=True)
    assert run.verdicts["security.token_refused"] == "fail"
    assert run.verdicts["pipeline.triage_oracle"] == honest[0]["pipeline.triage_oracle"]


def test_a_shipped_report_link_is_never_written_through(ws):
    """`faultdrill grade .` inside a submission that ships grade-out/report.md as a link
    to a victim file: refused before anything runs (the report directory would be inside
    the submission), the victim untouched. Needs no sandbox."""
    attack = ws.assemble("planted-links")
    (attack.folder / "grade-out").mkdir()
    (attack.folder / "grade-out" / "report.md").symlink_to(ws.victim / "precious.txt")
    cmd = grade_command(Path("."), SEED, Path("grade-out"))
    proc = subprocess.run(cmd, cwd=attack.folder, env=grade_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "inside the submission" in proc.stderr and "Traceback" not in proc.stderr
    assert not ws.victim_damage(), ws.victim_damage()


def test_links_planted_in_memory_are_never_followed(ws, honest):
    """Memory directories full of links to a victim directory, a file and /etc, some in
    a mode-000 directory: the memory faults and the cleanup neither chmod, write nor
    delete through them."""
    attack = ws.assemble("planted-links")
    run = ws.grade(attack)
    assert_blocked(ws, attack, run, honest)
    assert (Path("/etc/passwd").stat().st_mode & 0o777) == 0o644


def test_squatted_ports_do_not_disturb_a_grade_beside_it_or_the_next(ws, honest):
    squatter = ws.assemble("squats-ports")
    beside = ws.assemble(None, label="beside-the-squatter")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        attacked = pool.submit(ws.grade, squatter)
        time.sleep(2.0)                       # the squatter is up and grabbing ports
        neighbour = pool.submit(ws.grade, beside).result()
        attacked = attacked.result()
    after = ws.grade(ws.assemble(None, label="after-the-squatter"))
    for run, label in ((neighbour, "grade beside the squatter"), (after, "next grade")):
        assert run.rc in (0, 1) and not run.errors(), f"{label}: {sorted(run.errors())} {run.stderr[-1500:]}"
        assert run.verdicts == honest[0], f"{label}: {run.verdicts}"
    # Inside its own grade's network namespace the squatter takes ports its own services
    # and proxies were given: that costs it checks (its failure, never a grader error).
    assert_blocked(ws, squatter, attacked, honest, at_most=True)


def test_a_grade_beside_another_cannot_reach_it(ws, honest):
    """The attacker looks for the other grade's services (/proc, /tmp): steals its token,
    reads and writes its memory, SIGSTOPs it. The other grade must be unaffected."""
    victim = ws.assemble(None, label="victim-of-the-neighbour")
    attacker = ws.assemble("attacks-a-neighbour")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        victim_run = pool.submit(ws.grade, victim)
        time.sleep(1.0)
        attacker_run = pool.submit(ws.grade, attacker).result()
        victim_run = victim_run.result()
    assert victim_run.rc in (0, 1) and not victim_run.errors(), victim_run.stderr[-1500:]
    assert victim_run.verdicts == honest[0], f"the neighbour's grade changed: {victim_run.verdicts}"
    assert score_of(victim_run) == honest[1]
    assert_blocked(ws, attacker, attacker_run, honest)


def test_sigkill_of_the_grader_leaves_nothing(ws):
    """SIGKILL the grader while the services (and the escaped daemon) run: within a few
    seconds no process of the grade and no temporary directory of it remain."""
    attack = ws.assemble("outlives-the-grader")
    out = ws.root / "out" / attack.folder.name
    proc = subprocess.Popen(grade_command(attack.folder, SEED, out), cwd=ROOT, env=grade_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    stderr_tail: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr_tail.append(proc.stderr.read()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if any(b"sleeper.py" in _read(f"/proc/{p}/cmdline") for p in survivors(attack.nonce, proc.pid)):
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the grade ended before its services started"
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    deadline = time.monotonic() + GONE_WITHIN_S
    while time.monotonic() < deadline and (survivors(attack.nonce, proc.pid) or temp_dirs(proc.pid)):
        time.sleep(0.2)
    left, dirs = survivors(attack.nonce, proc.pid), temp_dirs(proc.pid)
    described = [describe(pid) for pid in left]
    kill(left)
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    assert not left, f"processes still running {GONE_WITHIN_S:.0f} s after the grader was killed: {described}"
    assert not dirs, f"temporary directories left by the killed grader: {dirs}"
