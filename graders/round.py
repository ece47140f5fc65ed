"""A hiring round: grade a folder of submissions, several at a time, each in its own grader.

Why each grade is its own `faultdrill grade` subprocess (not a thread in this process):
a grade starts hostile code, claims ports, installs signal and exit hooks and builds a
sandbox (a network namespace, a private user) per grade; separate processes keep those
apart, so one submission can neither see nor disturb another, and a grader that a
submission wedges is killed (its whole process group) at `timeout_s` without taking the
round down. Every submission is graded with the same seed: the same faults, inputs and
order for every candidate, so their scores are comparable.

Layout of a round: `<out>/<UTC timestamp>/<submission>/` holds that grade's console
output (`grade.log`) and its reports (results.json, report.html, ...) in `report/`, or
for an `--only` round wherever `faultdrill grade` puts a replay (`report-replay-<time>/`:
a replay never takes a full report's place), found as the newest `*/results.json`; the round's
`summary.csv` and `summary.md` sit beside them; `<out>/latest` is a relative symlink to
the newest round, replaced atomically.

Pure parts (discovery, naming, the summary rows, CSV/Markdown/table text, the exit
status) are functions of paths and dicts; `run_round` is the only part that starts
processes.
"""
from __future__ import annotations

import csv
import ctypes
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from graders.manifest import MANIFEST_NAME

#: Bound on one submission's grade (a full grade takes well under a minute; a dead or
#: hostile one is cut short by the harness long before this).
DEFAULT_GRADE_TIMEOUT_S = 900.0
KILL_WAIT_S = 10.0
LATEST = "latest"
#: Inside a submission's folder: what `faultdrill grade --out` is given.
REPORT_DIR = "report"

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@dataclass
class Graded:
    """What one submission's grade left behind."""
    name: str
    path: Path
    out_dir: Path
    exit_code: int | None = None          # None: killed at the timeout or interrupted
    duration_s: float = 0.0
    results: dict | None = None           # results.json, when it was written
    problem: str | None = None            # why the grade did not complete, in one line
    argv: list[str] = field(default_factory=list)


def discover(submissions_dir: Path) -> list[Path]:
    """Direct subfolders holding a faultdrill.toml, sorted by name (hidden ones skipped)."""
    root = Path(submissions_dir)
    if not root.is_dir():
        raise ValueError(f"{root} is not a directory")
    found = [p for p in sorted(root.iterdir(), key=lambda p: p.name)
             if not p.name.startswith(".") and p.is_dir() and (p / MANIFEST_NAME).is_file()]
    if not found:
        raise ValueError(f"no submission in {root}: a submission is a subfolder with a {MANIFEST_NAME}")
    return found


def slug(name: str) -> str:
    """A folder name for a submission's results (its own folder name, made safe)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "submission"
    return s[:80]


def unique_names(paths: list[Path]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        base = slug(p.name)
        n = seen.get(base, 0) + 1
        seen[base] = n
        out.append(base if n == 1 else f"{base}-{n}")
    return out


def round_stamp(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def new_round_dir(out: Path, now: datetime | None = None) -> Path:
    """`<out>/<UTC timestamp>`, made unique with `-2`, `-3`... (two rounds in one second)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = round_stamp(now)
    for n in range(1, 1000):
        candidate = out / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a round directory under {out}")


def point_latest(out: Path, round_dir: Path) -> Path:
    """Make `<out>/latest` a relative symlink to `round_dir`, atomically (rename over)."""
    link = Path(out) / LATEST
    if link.exists() and not link.is_symlink():
        raise RuntimeError(f"{link} exists and is not a symlink; not replacing it")
    tmp = Path(out) / f".{LATEST}.{os.getpid()}"
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    os.symlink(round_dir.name, tmp)
    os.replace(tmp, link)
    return link


def grade_argv(submission: Path, out_dir: Path, *, seed: int, driver: str,
               extra: list[str] | None = None) -> list[str]:
    return [sys.executable, "-m", "graders.cli", "grade", str(submission), "--out", str(out_dir),
            "--seed", str(seed), "--driver", driver, "--quiet", *(extra or [])]


def orphan_guard() -> list[str]:
    """A prefix that makes a child grade receive SIGTERM if the round dies, even by
    SIGKILL (setpriv --pdeathsig; the grade's own SIGTERM handling then cleans up).
    Each grade runs in its own session, so without it a killed round would leave its
    grades running. Empty where setpriv is missing (then only an orderly stop of the
    round, Ctrl-C or SIGTERM, stops them)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def grade_env(base: dict | None = None) -> dict:
    """The grader's environment for its child graders, with this kit first on PYTHONPATH:
    the children run exactly the code the round runs, installed or from a checkout."""
    env = dict(os.environ if base is None else base)
    kit_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([kit_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


# -- running --------------------------------------------------------------------------------

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux prctl), so that a
    process a grade leaves behind (a candidate service restarted while the grade was being
    stopped) is reparented here rather than to init, and `sweep_orphans` can stop it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children_of(pid: int) -> list[tuple[int, int, str]]:
    """(pid, process group, command line) of every process whose parent is `pid`."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) != pid:
                continue
            args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            out.append((int(entry.name), int(fields[2]), args))
        except (OSError, ValueError, IndexError):
            continue
    return out


def sweep_orphans(exclude: set[int], *, passes: int = 5) -> list[str]:
    """SIGKILL every process reparented to this one (see `become_subreaper`) that is not a
    grade in `exclude`, with its process group; reap them. Returns what was stopped.
    Called only when no grade is running, so a grade's own stray-process detection is
    never disturbed."""
    me, my_group = os.getpid(), os.getpgrp()
    stopped: list[str] = []
    for _ in range(passes):
        orphans = [c for c in _children_of(me) if c[0] not in exclude]
        if not orphans:
            break
        for pid, group, args in orphans:
            try:
                if group not in (my_group, 0):
                    os.killpg(group, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if args:                          # a zombie has no command line: just reaped
                stopped.append(f"pid {pid}: {args[:160]}")
        _reap(me, {pid for pid, _group, _args in orphans})
    return stopped


REAP_WAIT_S = 10.0


def _reap(me: int, killed: set[int]) -> None:
    """Reap every child that can be reaped, until none of `killed` is left, within a bound.

    Why never a blocking wait on one pid: a grade's PID-namespace reaper
    (graders/sandbox/reaper.py) that is killed finishes exiting only once every process of
    its namespace has been reaped, and some of those (a grade's sandboxes, orphaned with
    it) are zombies whose parent is now this subreaper: waiting for the reaper before
    reaping them would wait forever."""
    deadline = time.monotonic() + REAP_WAIT_S
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return
        if not any(pid in killed for pid, _group, _args in _children_of(me)) or time.monotonic() >= deadline:
            return
        time.sleep(0.02)

class _Running:
    """Process groups of the grades in flight, so an interrupt can end all of them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.procs: set[subprocess.Popen] = set()
        self.stopping = threading.Event()

    def kill_all(self) -> None:
        self.stopping.set()
        with self.lock:
            procs = list(self.procs)
        for proc in procs:
            _end_group(proc)


def _end_group(proc: subprocess.Popen) -> None:
    """SIGTERM the grade's process group (its own cleanup runs), SIGKILL after a bound."""
    for sig, wait in ((signal.SIGTERM, KILL_WAIT_S), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def grade_one(graded: Graded, *, timeout_s: float, running: _Running, env: dict | None = None) -> Graded:
    graded.out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if running.stopping.is_set():
        graded.problem = "not graded: the round was interrupted"
        return graded
    with open(graded.out_dir / "grade.log", "wb") as log:
        proc = subprocess.Popen(orphan_guard() + graded.argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=grade_env(env))
        with running.lock:
            running.procs.add(proc)
        if running.stopping.is_set():       # the round was stopped while this one started
            _end_group(proc)
        try:
            graded.exit_code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _end_group(proc)
            graded.problem = f"the grade did not finish within {timeout_s:.0f} s and was stopped"
        finally:
            with running.lock:
                running.procs.discard(proc)
    graded.duration_s = time.monotonic() - started
    results = find_results(graded.out_dir)
    if results is not None:
        try:
            graded.results = json.loads(results.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            graded.problem = graded.problem or f"results.json unreadable: {exc}"
    if graded.problem is None and graded.exit_code not in (EXIT_PASSED, EXIT_FAILED, EXIT_INCOMPLETE):
        graded.problem = f"faultdrill grade exited with status {graded.exit_code}: {_last_line(graded.out_dir / 'grade.log')}"
    if graded.problem is None and graded.results is None:
        graded.problem = f"faultdrill grade wrote no results.json: {_last_line(graded.out_dir / 'grade.log')}"
    if running.stopping.is_set() and graded.problem is None and graded.exit_code not in (0, 1, 3):
        graded.problem = "interrupted"
    return graded


def find_results(out_dir: Path) -> Path | None:
    """The grade's results.json: the newest `*/results.json` under its folder."""
    found = [p for p in Path(out_dir).glob("*/results.json") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no output)"
    return lines[-1][:300] if lines else "(no output)"


@dataclass
class RoundResult:
    graded: list[Graded]
    leftovers: list[str]        # processes grades left behind, stopped by the round
    interrupted: bool = False


def run_round(submissions: list[Path], round_dir: Path, *, jobs: int, seed: int, driver: str,
              extra: list[str] | None = None, timeout_s: float = DEFAULT_GRADE_TIMEOUT_S,
              on_done=None, env: dict | None = None) -> RoundResult:
    """Grade every submission, `jobs` at a time, each in its own `faultdrill grade`; then
    stop whatever the grades left running. On Ctrl-C (KeyboardInterrupt) the grades in
    flight are stopped too and the result says `interrupted`.

    The calling process becomes a child subreaper and, at the end, stops every child it
    has that is neither a grade nor a child it had before the round: call it from a
    process that starts no other children meanwhile (the `faultdrill round` command)."""
    become_subreaper()
    before = {pid for pid, _group, _args in _children_of(os.getpid())}
    names = unique_names(submissions)
    todo = [Graded(name=n, path=p.resolve(), out_dir=round_dir / n) for n, p in zip(names, submissions)]
    for g in todo:
        g.argv = grade_argv(g.path, g.out_dir / REPORT_DIR, seed=seed, driver=driver, extra=extra)
    running = _Running()
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="round")
    futures = []
    try:
        for g in todo:
            fut = pool.submit(grade_one, g, timeout_s=timeout_s, running=running, env=env)
            if on_done is not None:
                fut.add_done_callback(lambda f: on_done(f.result()) if not f.exception() else None)
            futures.append(fut)
        for fut in futures:
            while True:
                try:
                    fut.result(timeout=0.5)   # short waits: Ctrl-C is seen promptly
                    break
                except TimeoutError:
                    continue
    except KeyboardInterrupt:
        running.kill_all()
        pool.shutdown(wait=True, cancel_futures=True)
        for g in todo:
            if g.problem is None and g.exit_code not in (EXIT_PASSED, EXIT_FAILED, EXIT_INCOMPLETE):
                g.problem = "interrupted"
        return RoundResult(todo, sweep_orphans(before), interrupted=True)
    pool.shutdown(wait=True)
    return RoundResult(todo, sweep_orphans(before))


# -- the summary ----------------------------------------------------------------------------

def is_incomplete(g: Graded) -> bool:
    if g.problem is not None or g.results is None or g.exit_code == EXIT_INCOMPLETE:
        return True
    extra = g.results.get("extra_data") or {}
    return bool(extra.get("incomplete")) or bool((extra.get("verdict_counts") or {}).get("error"))


def summary_rows(graded: list[Graded], area_ids: list[str], round_dir: Path, *,
                 partial_round: bool = False) -> list[dict]:
    """One flat row per submission: area scores (percent or empty), total, level, errors.
    `partial_round`: the round ran only some checks (--only), whatever the grades say."""
    rows = []
    for g in graded:
        extra = (g.results or {}).get("extra_data") or {}
        areas = extra.get("areas") or {}
        titles = extra.get("level_titles") or {}
        overall = extra.get("overall") or {}
        counts = extra.get("verdict_counts") or {}
        incomplete = is_incomplete(g)
        partial = partial_round or bool(extra.get("partial"))
        level = overall.get("suggested_level")
        row = {"submission": g.name}
        for aid in area_ids:
            score = (areas.get(aid) or {}).get("score")
            row[aid] = "" if score is None else f"{100 * score:.0f}"
        score, max_score = (g.results or {}).get("score"), (g.results or {}).get("max_score")
        row["total"] = "" if score is None else f"{score:.1f}"
        row["max"] = "" if max_score is None else f"{max_score:.1f}"
        # No percentage for an incomplete grade: its points are not a score (a check the
        # grader could not run has earned nothing, yet cost the candidate nothing either).
        row["percent"] = (f"{100 * score / max_score:.0f}" if score is not None and max_score
                          and not incomplete else "")
        # An incomplete or partial grade gets no level: it was not a full judgement.
        row["suggested_level"] = "" if incomplete or partial or level is None else titles.get(level, level)
        row["passed"] = counts.get("pass", "")
        row["failed"] = counts.get("fail", "")
        row["grader_errors"] = counts.get("error", "") if g.results else ""
        row["incomplete"] = "yes" if incomplete else "no"
        row["partial"] = "yes" if partial else "no"
        row["exit_code"] = "" if g.exit_code is None else g.exit_code
        row["seconds"] = f"{g.duration_s:.1f}"
        results = find_results(g.out_dir)
        report = results.parent / "report.html" if results is not None else None
        row["report"] = os.path.relpath(report, round_dir) if report is not None and report.is_file() else ""
        row["problem"] = g.problem or ""
        rows.append(row)
    return rows


def csv_columns(area_ids: list[str]) -> list[str]:
    return ["submission", *area_ids, "total", "max", "percent", "suggested_level", "passed", "failed",
            "grader_errors", "incomplete", "partial", "exit_code", "seconds", "report", "problem"]


def csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _md_cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_text(rows: list[dict], areas: list[tuple[str, str]], *, seed: int, driver: str,
                  stamp: str, only: str | None = None) -> str:
    head = ["submission", *[title for _, title in areas], "total", "level", "grader errors",
            "incomplete", "report"]
    lines = [f"# Hiring round {stamp}", "",
             f"Seed {seed} (the same for every submission), driver {driver}. Area scores in percent; "
             "total in points of the grade's maximum. An INCOMPLETE grade (a grader error, a failed "
             "preflight, a grade that did not finish) has no suggested level: look at its report "
             "and grade it again.", ""]
    if only:
        lines += [f"PARTIAL round: only the checks {only}; totals are not verdicts and no level is "
                  "suggested.", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        report = f"[report.html]({r['report']})" if r["report"] else ""
        cells = [r["submission"], *[r[aid] for aid, _ in areas],
                 f"{r['total']} / {r['max']}" if r["total"] and r["incomplete"] == "no" else "",
                 r["suggested_level"], r["grader_errors"],
                 "INCOMPLETE" + (f": {r['problem']}" if r["problem"] else "") if r["incomplete"] == "yes" else "",
                 report]
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def console_table(rows: list[dict], areas: list[tuple[str, str]]) -> str:
    """A fixed-width table: areas by their short ids, the rest as in the CSV."""
    cols = ["submission", *[aid for aid, _ in areas], "percent", "suggested_level", "grader_errors",
            "incomplete"]
    header = {c: {"percent": "total%", "suggested_level": "level", "grader_errors": "errors"}.get(c, c)
              for c in cols}
    widths = {c: max(len(header[c]), *(len(str(r[c])) for r in rows)) for c in cols}
    out = ["  ".join(header[c].ljust(widths[c]) for c in cols)]
    for r in rows:
        out.append("  ".join(str(r[c]).ljust(widths[c]) for c in cols))
    return "\n".join(line.rstrip() for line in out)


def round_exit_code(graded: list[Graded], leftovers: list[str] = ()) -> int:
    """3 if any grade is incomplete or grades left processes running, else 1 if any check
    failed anywhere, else 0."""
    if any(is_incomplete(g) for g in graded) or leftovers:
        return EXIT_INCOMPLETE
    if any(g.exit_code == EXIT_FAILED or ((g.results or {}).get("extra_data") or {})
           .get("verdict_counts", {}).get("fail") for g in graded):
        return EXIT_FAILED
    return EXIT_PASSED
