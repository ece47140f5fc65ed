"""Bug hunts: every planted defect applies to today's reference and really breaks its
checks; the copy names nothing; the key stays out of the copy and the candidate bundle;
verify passes a right fix and fails a wrong one."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from graders import paths
from graders.bughunt.catalogue import DefectError, apply_edit, choose, load_defects
from graders.bughunt.hunt import FIXED_MTIME, HuntError, load_key, prepare, verify
from graders.checks.registry import all_checks

DEFECTS = load_defects()


def test_every_defect_applies_once_to_the_current_reference():
    known = {c.id for c in all_checks()}
    for d in DEFECTS:
        text = (paths.REFERENCE / d.file).read_text(encoding="utf-8")
        assert text.count(d.find) == 1, f"{d.id}: snippet not found exactly once in {d.file}"
        assert apply_edit(text, d.find, d.replace) != text
        assert set(d.checks) <= known, f"{d.id}: unknown checks {set(d.checks) - known}"
        assert len(d.hints) >= 2


def test_apply_edit_refuses_missing_or_repeated_snippets():
    assert apply_edit("a b c", "b", "x") == "a x c"
    for text in ("a c", "b b"):
        with pytest.raises(DefectError):
            apply_edit(text, "b", "x")


def test_choice_is_seeded_and_keeps_defects_apart():
    one = choose(DEFECTS, 7, 3)
    assert [d.id for d in one] == [d.id for d in choose(DEFECTS, 7, 3)]
    assert len({d.file for d in one}) == 3
    assert any([d.id for d in choose(DEFECTS, s, 1)] != [one[0].id] for s in range(8, 20))
    with pytest.raises(DefectError):
        choose(DEFECTS, 1, ids=["no-such-defect"])


def test_the_copy_names_nothing_and_the_key_stays_outside(tmp_path):
    out, key_file = tmp_path / "hunt", tmp_path / "keys" / "k.json"
    path, key = prepare(out, seed=3, count=2, key_file=key_file)
    assert path == key_file and not str(path).startswith(str(out))
    assert os.stat(path).st_mode & 0o077 == 0
    files = [p for p in out.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert "defect.py" not in names and "defects.toml" not in names
    assert not [p for p in out.rglob("__pycache__")]
    blob = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files).lower()
    for d in DEFECTS:
        assert d.id not in blob and d.title.lower() not in blob and d.fix.lower() not in blob
    for own in ("BUGHUNT.md", "faultdrill.toml"):
        assert "defect" not in (out / own).read_text(encoding="utf-8").lower()
    assert {int(os.stat(p).st_mtime) for p in [out, *out.rglob("*")]} == {FIXED_MTIME}
    # the planted edits are really there, the rest is the reference byte for byte
    for d in key["defects"]:
        assert d["replace"] in (out / "reference_impl" / d["file"]).read_text(encoding="utf-8")
    untouched = [p for p in (out / "reference_impl").rglob("*.py")
                 if str(p.relative_to(out / "reference_impl")) not in {d["file"] for d in key["defects"]}]
    for p in untouched:
        assert p.read_bytes() == (paths.REFERENCE / p.relative_to(out / "reference_impl")).read_bytes()
    with pytest.raises(HuntError):
        prepare(out, seed=4, key_file=key_file)          # not over an existing copy...
    prepare(out, seed=4, key_file=key_file, force=True)  # ...unless asked


def test_the_candidate_bundle_carries_no_answer_key(tmp_path):
    from graders.packaging import CANDIDATE_COMMANDS, plan_kit, verify_candidate_bundle
    plan = plan_kit(paths.REPO_ROOT, CANDIDATE_COMMANDS, strip_hidden=True)
    assert not [f for f in plan.files if f.startswith(("graders/bughunt", "graders/drills"))]
    assert not [f for f in plan.files if f.endswith(("defects.toml", "INCIDENTS.md"))]
    for planted in ("graders/bughunt/defects.toml", "graders/drills/incidents/bloat.toml"):
        fake = tmp_path / planted.split("/")[1]
        (fake / planted).parent.mkdir(parents=True)
        (fake / planted).write_text("x")
        assert any(planted.rsplit("/", 2)[0] in p or "defects.toml" in p
                   for p in verify_candidate_bundle(fake, []))


def test_cli_start_key_status_and_usage_errors(tmp_path):
    cli = [sys.executable, "-m", "graders.cli", "bughunt"]
    out, key = tmp_path / "h", tmp_path / "k.json"
    done = subprocess.run(cli + ["start", str(out), "--seed", "11", "--key", str(key)],
                          capture_output=True, text=True, timeout=60, cwd=paths.REPO_ROOT)
    assert done.returncode == 0 and "seed 11" in done.stdout, done.stderr
    chosen = json.loads(key.read_text())["defects"][0]
    assert chosen["symptom"] in done.stdout
    shown = subprocess.run(cli + ["key", str(out), "--key", str(key)], capture_output=True, text=True,
                           timeout=60, cwd=paths.REPO_ROOT)
    assert shown.returncode == 0 and chosen["fix"] in shown.stdout and "no verify attempts" in shown.stdout
    for n in range(1, len(chosen["hints"]) + 1):
        hint = subprocess.run(cli + ["hint", str(out), "--key", str(key)], capture_output=True, text=True,
                              timeout=60, cwd=paths.REPO_ROOT)
        assert hint.returncode == 0 and chosen["hints"][n - 1] in hint.stdout
    over = subprocess.run(cli + ["hint", str(out), "--key", str(key)], capture_output=True, text=True,
                          timeout=60, cwd=paths.REPO_ROOT)
    assert "no hints left" in over.stdout
    assert len(json.loads(key.read_text())["hints"]) == len(chosen["hints"])
    bad = subprocess.run(cli + ["verify", str(tmp_path / "nothing")], capture_output=True, text=True,
                         timeout=60, cwd=paths.REPO_ROOT)
    assert bad.returncode == 2 and "no answer key" in bad.stderr


@pytest.mark.slow
@pytest.mark.parametrize("defect", DEFECTS, ids=[d.id for d in DEFECTS])
def test_each_planted_defect_fails_its_checks(tmp_path, defect):
    """The answer key is true: graded, the copy fails exactly the defect's checks."""
    from graders.harness import Progress, run_checks, select_checks
    from graders.live.system import make_driver
    from graders.manifest import load_manifest
    prepare(tmp_path / "h", seed=1, ids=[defect.id], key_file=tmp_path / "k.json")
    result = run_checks(select_checks(all_checks(), only=list(defect.checks)),
                        submission=load_manifest(tmp_path / "h"), driver=make_driver(None),
                        seed=20261201, progress=Progress(quiet=True))
    assert {v.check_id: v.status for v in result.verdicts} == {c: "fail" for c in defect.checks}


@pytest.mark.slow
def test_verify_passes_the_right_fix_and_fails_a_wrong_one(tmp_path):
    out, key_file = tmp_path / "h", tmp_path / "k.json"
    _path, key = prepare(out, seed=5, ids=["log-msg-id-as-task"], key_file=key_file)
    d = key["defects"][0]
    target = out / "reference_impl" / d["file"]
    broken = target.read_text(encoding="utf-8")
    # A wrong fix: plausible-looking, touches the right line, keeps the bug.
    target.write_text(broken.replace("task_id=request.msg_id,", "task_id=request.msg_id or None,"),
                      encoding="utf-8")
    wrong = verify(out, key_file=key_file)
    assert wrong.outcome == "not_fixed" and wrong.skipped_rest
    assert wrong.defect_checks == {"observability.trace_propagation": "fail"}
    assert wrong.changed_files == [f"reference_impl/{d['file']}"]
    # The right fix.
    target.write_text(broken.replace(d["replace"], d["find"]), encoding="utf-8")
    right = verify(out, key_file=key_file)
    assert right.outcome == "fixed", right
    assert right.defect_checks == {"observability.trace_propagation": "pass"} and not right.skipped_rest
    attempts = load_key(out, key_file)[1]["attempts"]
    assert [a["outcome"] for a in attempts] == ["not_fixed", "fixed"]
    assert attempts[1]["elapsed_s"] >= attempts[0]["elapsed_s"] >= 0


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(max_size=40), st.text(min_size=1, max_size=8), st.text(max_size=8), st.text(max_size=40))
def test_apply_edit_changes_exactly_the_one_occurrence(before, find, replace, after):
    text = before + find + after
    if text.count(find) != 1:
        with pytest.raises(DefectError):
            apply_edit(text, find, replace)
        return
    assert apply_edit(text, find, replace) == before + replace + after


def _fake_grader(monkeypatch, script):
    """Replace the harness: `script(submission_root, check_ids)` -> {check id: status}."""
    from types import SimpleNamespace
    import graders.harness as harness
    import graders.live.system as live_system
    calls = []

    def run_checks(specs, *, submission, driver, seed, progress=None, **kw):
        ids = [s.id for s in specs]
        calls.append((submission.root.name, ids))
        statuses = script(submission.root.name, ids, len(calls))
        return SimpleNamespace(verdicts=[SimpleNamespace(check_id=i, status=statuses.get(i, "pass")) for i in ids])
    monkeypatch.setattr(harness, "run_checks", run_checks)
    monkeypatch.setattr(live_system, "make_driver", lambda ports, unsafe_no_sandbox=False: SimpleNamespace())
    return calls


@pytest.mark.parametrize("case, expected", [
    ("real_regression", "regressed"),      # fails every time on the copy, passes on the reference
    ("flaky_once", "fixed"),               # fails once, passes on the re-run: not counted
    ("fails_on_reference_too", "fixed"),   # this machine fails it anyway: not counted
    ("grader_error", "incomplete"),
])
def test_verify_counts_only_real_regressions(tmp_path, monkeypatch, case, expected):
    out, key_file = tmp_path / "h", tmp_path / "k.json"
    prepare(out, seed=5, ids=["token-prefix"], key_file=key_file)
    target = out / "reference_impl" / "protocol" / "envelope.py"
    target.write_text(target.read_text() + "\n# edited\n")     # a changed copy: no shortcut
    other = "memory.retention"

    def script(root, ids, n):
        on_copy = root == "h"
        if case == "grader_error" and other in ids:
            return {other: "error"}
        if other not in ids:
            return {}
        if case == "real_regression":
            return {other: "fail" if on_copy else "pass"}
        if case == "flaky_once":
            return {other: "fail" if n == 2 else "pass"}
        return {other: "fail"}
    calls = _fake_grader(monkeypatch, script)
    attempt = verify(out, key_file=key_file)
    assert attempt.outcome == expected, (attempt, calls)
    if case == "real_regression":
        assert attempt.other_failures == [other] and attempt.baseline_failing == []
        assert [root for root, _ids in calls].count("h") == 4      # defect, rest, two re-runs
    if case == "fails_on_reference_too":
        assert attempt.baseline_failing == [other] and attempt.other_failures == []
