"""graders/ids.py: what a grade sends carries no trace of the check, the run or the seed
(issue 10 §4), and hidden checks' ids never reach a visible check's evidence (§5)."""
from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings, strategies as st

from graders.checks.registry import CheckFailed, CheckSpec
from graders.client import make_request, new_msg_id
from graders.harness import CheckContext, GradeEnv, Progress, run_checks
from graders.ids import GradeIds, random_msg_id

TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")      # SPEC §5
ROOT = Path(__file__).resolve().parents[1]


def _spec(cid: str, func, visibility="visible") -> CheckSpec:
    return CheckSpec(id=cid, title=cid, func=func, items=("x.y",), weight=1.0, visibility=visibility,
                     stage=1, challenge="pipeline-basics", timeout=5.0)


def test_ids_match_the_spec_and_look_alike():
    ids = GradeIds()
    tids = [ids.task_id() for _ in range(500)]
    assert len(set(tids)) == 500
    assert all(TASK_ID.match(t) and re.fullmatch(r"t[0-9a-f]{24}", t) for t in tids)
    msgs = [ids.msg_id() for _ in range(100)] + [random_msg_id(), new_msg_id()]
    assert all(re.fullmatch(r"m[0-9a-f]{24}", m) for m in msgs) and len(set(msgs)) == len(msgs)
    assert re.fullmatch(r"[0-9a-f]{32}", ids.token())


def test_two_grades_share_no_id_and_the_secret_is_not_the_seed():
    """Same seed, two grades: different secrets, so nothing to correlate."""
    a, b = GradeEnv(None, None, 7, Progress(quiet=True)), GradeEnv(None, None, 7, Progress(quiet=True))
    assert a.token != b.token
    assert {a.ids.task_id() for _ in range(50)}.isdisjoint({b.ids.task_id() for _ in range(50)})


def test_same_secret_same_ids():
    assert [GradeIds(b"k" * 32).task_id() for _ in range(3)] == [GradeIds(b"k" * 32).task_id() for _ in range(3)]


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(["durable", "corrupt-a", "alert", "unauth-orch"]), st.integers(0, 10**6),
       st.sampled_from(["memory.durable_task_log", "observability.alerts"]), st.integers(0, 3))
def test_a_check_context_task_id_depends_on_nothing_but_the_secret(label, seed, check_id, run):
    """Under one secret, the ids a context hands out are the same whatever the label,
    the seed, the check or the run: none of them can be read back from an id."""
    def ids_for(label_, seed_, check_, run_):
        env = GradeEnv(None, None, seed_, Progress(quiet=True))
        env.ids = GradeIds(b"k" * 32)
        ctx = CheckContext(env, _spec(check_, lambda c: None), run_, seed_)
        return [ctx.task_id(label_) for _ in range(3)]
    got = ids_for(label, seed, check_id, run)
    assert got == ids_for("other", 1, "pipeline.routes", 0)
    assert all(re.fullmatch(r"t[0-9a-f]{24}", t) and label not in t for t in got)


def test_no_check_builds_ids_itself():
    """Every check takes its ids from the context (graders/ids.py): no msg_id or task_id
    assembled from text or written literally, no hash of the seed (a repeated character
    to probe a length limit is fine). A label passed to ctx.task_id is ignored, as the
    test above shows."""
    found = []
    pattern = r"(msg_id|task_id)=f\"[^\"]*\"|(msg_id|task_id)=\"[^\"]+\"(?!\s*\*)|hashlib\.\w+\(f\"\{(ctx\.)?seed"
    for path in sorted((ROOT / "graders" / "checks").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        found += [f"{path.name}: {m.group()}" for m in re.finditer(pattern, text)]
    assert found == []


def test_requests_carry_no_counter_or_grader_prefix():
    frames = [make_request("status", {}, token="t", task_id="t1") for _ in range(3)]
    assert len({f["msg_id"] for f in frames}) == 3
    assert not any(f["msg_id"].startswith("g-") for f in frames)


def test_hidden_task_ids_are_redacted_from_visible_evidence():
    seen = {}

    def hidden(ctx):
        seen["tid"] = ctx.task_id()

    def visible(ctx):
        raise CheckFailed("the service logged an earlier task", received={"log": f"late line about {seen['tid']}"},
                          sent=f"{seen['tid']}")

    def hidden_fails(ctx):
        raise CheckFailed(f"about {seen['tid']}", received=seen["tid"])

    result = run_checks([_spec("a.hidden", hidden, "hidden"), _spec("b.visible", visible),
                         _spec("c.hidden", hidden_fails, "hidden")],
                        submission=None, driver=None, seed=1, progress=Progress(quiet=True))
    by_id = {v.check_id: v for v in result.verdicts}
    tid = seen["tid"]
    vis = by_id["b.visible"]
    assert tid not in repr((vis.message, vis.sent, vis.received, vis.timeline, vis.log_lines))
    assert "<hidden task>" in repr(vis.received)
    assert tid in repr(by_id["c.hidden"].received), "interviewer-only evidence keeps the id"
