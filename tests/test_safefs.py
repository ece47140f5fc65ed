"""graders/safefs.py: links planted by candidate data are never followed, by the report
directory, by reads and writes beneath a candidate directory, or by cleanup."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from graders import safefs
from graders.safefs import UnsafePath, prepare_out_dir, remove_tree

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def victim(tmp_path):
    """A file and a directory outside every tree under test, with known content and modes."""
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o755)
    os.chmod(outside, 0o755)
    (outside / "precious.txt").write_text("keep me\n")
    os.chmod(outside / "precious.txt", 0o644)
    return outside


def _untouched(victim: Path) -> None:
    assert (victim / "precious.txt").read_text() == "keep me\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o755
    assert stat.S_IMODE((victim / "precious.txt").stat().st_mode) == 0o644
    assert sorted(os.listdir(victim)) == ["precious.txt"]


# --- the report directory ---------------------------------------------------------------

def test_fresh_out_dir_is_created_and_written(tmp_path):
    with prepare_out_dir(tmp_path / "a" / "grade-out") as out:
        path = out.write_text("report.md", "# hello\n")
    assert path.read_text() == "# hello\n"
    listed = (tmp_path / "a" / "grade-out" / safefs.MARKER).read_text().splitlines()
    assert "report.md" in listed
    assert sorted(os.listdir(tmp_path / "a" / "grade-out")) == [safefs.MARKER, "report.md"]


def test_out_dir_that_is_a_link_is_refused(tmp_path, victim):
    (tmp_path / "grade-out").symlink_to(victim)
    with pytest.raises(UnsafePath, match="symbolic link"):
        prepare_out_dir(tmp_path / "grade-out")
    _untouched(victim)


def test_out_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "grade-out").write_text("x")
    with pytest.raises(UnsafePath, match="not a directory"):
        prepare_out_dir(tmp_path / "grade-out")


def test_out_dir_inside_the_submission_is_refused(tmp_path, victim):
    sub = tmp_path / "sub"
    (sub / "grade-out").mkdir(parents=True)
    (sub / "grade-out" / "report.md").symlink_to(victim / "precious.txt")
    for out in (sub / "grade-out", sub, sub / "new" / "dir"):
        with pytest.raises(UnsafePath, match="inside the submission"):
            prepare_out_dir(out, submission_root=sub)
    # Through a link to the submission, too (paths are compared resolved).
    (tmp_path / "alias").symlink_to(sub)
    with pytest.raises(UnsafePath, match="inside the submission"):
        prepare_out_dir(tmp_path / "alias" / "out", submission_root=sub)
    _untouched(victim)


def test_out_dir_with_foreign_files_is_refused(tmp_path):
    out = tmp_path / "grade-out"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    with pytest.raises(UnsafePath, match="thesis.tex"):
        prepare_out_dir(out)
    assert (out / "thesis.tex").read_text() == "mine"


def test_previous_output_is_removed_first_and_links_only_unlinked(tmp_path, victim):
    out = tmp_path / "grade-out"
    with prepare_out_dir(out) as first:
        first.write_text("results.json", "{}")
        first.write_text("extra-report.txt", "listed in the marker")
    (out / "report.md").symlink_to(victim / "precious.txt")     # planted
    with prepare_out_dir(out) as second:
        assert sorted(os.listdir(out)) == [], "stale results must be gone before grading"
        second.write_text("report.md", "new report\n")
    assert (out / "report.md").read_text() == "new report\n" and not (out / "report.md").is_symlink()
    _untouched(victim)


def test_world_writable_out_dir_is_refused(tmp_path):
    out = tmp_path / "grade-out"
    out.mkdir()
    os.chmod(out, 0o777)
    with pytest.raises(UnsafePath, match="writable by every user"):
        prepare_out_dir(out)


def test_directory_in_previous_output_is_refused(tmp_path):
    out = tmp_path / "grade-out"
    (out / "report.md").mkdir(parents=True)
    with pytest.raises(UnsafePath, match="is a directory"):
        prepare_out_dir(out)


def test_link_planted_after_prepare_is_replaced_not_followed(tmp_path, victim):
    out_path = tmp_path / "grade-out"
    with prepare_out_dir(out_path) as out:
        (out_path / "report.html").symlink_to(victim / "precious.txt")
        out.write_text("report.html", "<p>ok</p>")
    assert (out_path / "report.html").read_text() == "<p>ok</p>"
    _untouched(victim)


def test_writes_land_in_the_verified_directory_even_if_its_path_is_swapped(tmp_path, victim):
    out_path = tmp_path / "grade-out"
    with prepare_out_dir(out_path) as out:
        out_path.rename(tmp_path / "moved")
        out_path.symlink_to(victim)
        out.write_text("report.md", "x")
    assert (tmp_path / "moved" / "report.md").read_text() == "x"
    _untouched(victim)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x"])
def test_report_names_are_plain(tmp_path, name):
    with prepare_out_dir(tmp_path / "o") as out, pytest.raises(UnsafePath):
        out.write_text(name, "x")


# --- reads and writes beneath a candidate directory -------------------------------------

def test_beneath_reads_and_writes_regular_files(tmp_path):
    base = tmp_path / "mem"
    base.mkdir()
    safefs.write_beneath(base, "records/t1.json", b'{"a":1}')
    assert safefs.read_beneath(base, "records/t1.json") == b'{"a":1}'
    assert safefs.read_beneath(base, "./records//t1.json", limit=3) == b'{"a'


def test_beneath_refuses_links_on_the_way_and_at_the_end(tmp_path, victim):
    base = tmp_path / "mem"
    base.mkdir()
    (base / "records").symlink_to(victim)
    (base / "leak.json").symlink_to(victim / "precious.txt")
    for rel in ("records/precious.txt", "leak.json"):
        with pytest.raises(UnsafePath, match="symbolic link"):
            safefs.read_beneath(base, rel)
    with pytest.raises(UnsafePath, match="symbolic link"):
        safefs.write_beneath(base, "records/precious.txt", b"owned")
    with pytest.raises(UnsafePath):
        safefs.write_beneath(base, "../outside/precious.txt", b"owned")
    with pytest.raises(UnsafePath):
        safefs.read_beneath(base, str(victim / "precious.txt"))
    # A link at the final name is replaced by the write, as a link.
    safefs.write_beneath(base, "leak.json", b"{}")
    assert not (base / "leak.json").is_symlink() and (base / "leak.json").read_bytes() == b"{}"
    _untouched(victim)


def test_a_refused_link_reads_as_an_unreadable_file(tmp_path, victim):
    """Checks treat `except OSError` around a memory read as the candidate's failure: a
    planted link must land there too, never escape as a grader error."""
    base = tmp_path / "mem"
    base.mkdir()
    (base / "r.json").symlink_to(victim / "precious.txt")
    with pytest.raises(OSError):
        safefs.read_beneath(base, "r.json")


def test_beneath_refuses_fifos_without_blocking(tmp_path):
    base = tmp_path / "mem"
    base.mkdir()
    os.mkfifo(base / "pipe")
    with pytest.raises(UnsafePath, match="not a regular file"):
        safefs.read_beneath(base, "pipe")


# --- removing candidate-touched trees ---------------------------------------------------

def _hostile_tree(base: Path, victim: Path) -> None:
    (base / "records" / "deep").mkdir(parents=True)
    (base / "records" / "r.json").write_text("{}")
    (base / "records" / "to-outside").symlink_to(victim)
    (base / "records" / "deep" / "to-file").symlink_to(victim / "precious.txt")
    (base / "dangling").symlink_to(base / "nowhere")
    (base / "locked").mkdir()
    (base / "locked" / "f").write_text("x")
    os.chmod(base / "locked", 0)
    os.chmod(base / "records" / "deep", 0o500)


def test_remove_tree_never_follows_links(tmp_path, victim):
    base = tmp_path / "deployment"
    base.mkdir()
    _hostile_tree(base, victim)
    assert remove_tree(base) == []
    assert not base.exists() and not base.is_symlink()
    _untouched(victim)


def test_remove_tree_on_a_link_removes_only_the_link(tmp_path, victim):
    (tmp_path / "link").symlink_to(victim)
    assert remove_tree(tmp_path / "link") == []
    assert not (tmp_path / "link").is_symlink()
    _untouched(victim)
    assert remove_tree(tmp_path / "missing") == []


def test_remove_tree_of_any_depth_with_few_descriptors(tmp_path):
    base = tmp_path / "deep"
    here = base
    here.mkdir()
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(3000):           # deeper than Python's recursion limit
            os.mkdir("d", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        os.close(os.open("leaf", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=fd))
    finally:
        os.close(fd)
    before = len(os.listdir("/proc/self/fd"))
    assert remove_tree(base) == []
    assert not base.exists()
    assert len(os.listdir("/proc/self/fd")) == before


def test_remove_tree_as_an_unprivileged_user_makes_mode_000_dirs_removable(tmp_path, victim):
    """The mode-000 path (no root bypass): run the removal as `nobody` on a tree it owns."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the removal as another user")
    # pytest's tmp_path is below a root-only directory: use one `nobody` can reach.
    top = Path(tempfile.mkdtemp(prefix="fd-safefs-test-", dir="/tmp"))
    try:
        _remove_as_nobody(top, victim)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _remove_as_nobody(top: Path, victim: Path) -> None:
    base = top / "tree"
    base.mkdir()
    _hostile_tree(base, victim)
    for dirpath, dirs, files in os.walk(base):
        for name in dirs + files + [""]:
            os.chown(os.path.join(dirpath, name), 65534, 65534, follow_symlinks=False)
    os.chmod(base / "locked", 0o755)
    os.chown(base / "locked" / "f", 65534, 65534)
    os.chmod(base / "locked", 0)
    os.chmod(top, 0o777)                # nobody must be able to remove `tree` itself
    code = ("import sys; from graders.safefs import remove_tree; e = remove_tree(sys.argv[1]); "
            "print(e); sys.exit(1 if e else 0)")
    proc = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                           sys.executable, "-c", code, str(base)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": os.defpath, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not base.exists()
    _untouched(victim)


# --- wired into `faultdrill grade` --------------------------------------------------------

def _submission_with_planted_report(tmp_path: Path, victim: Path) -> Path:
    sub = tmp_path / "sub"
    shutil.copytree(ROOT / "tests" / "fixtures" / "fake_service", sub)
    (sub / "grade-out").mkdir()
    (sub / "grade-out" / "report.md").symlink_to(victim / "precious.txt")
    return sub


def test_grade_refuses_an_out_dir_inside_the_submission(tmp_path, victim, monkeypatch, capsys):
    """`faultdrill grade .` with the default --out grade-out and a shipped
    grade-out/report.md link: refused before any candidate code runs; the target is intact."""
    from graders import cli
    sub = _submission_with_planted_report(tmp_path, victim)
    monkeypatch.chdir(sub)
    assert cli.main(["grade", ".", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "inside the submission" in err and "Traceback" not in err
    _untouched(victim)


def test_grade_refuses_an_out_dir_that_is_a_link(tmp_path, victim, capsys):
    from graders import cli
    sub = _submission_with_planted_report(tmp_path, victim)
    (tmp_path / "out").symlink_to(victim)
    assert cli.main(["grade", str(sub), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "symbolic link" in capsys.readouterr().err
    _untouched(victim)
