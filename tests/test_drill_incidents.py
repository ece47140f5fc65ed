"""The incident catalogue: valid data, one incident per challenge of the interview guide,
and - against one shared live reference - each incident's stated symptoms really appear
when it is injected and disappear after heal (bounded polls of metrics, dashboard JSON,
alerts, health, logs)."""
from __future__ import annotations

import time

import pytest

from graders import paths
from graders.drills.catalogue import IncidentError, _load_one, load_incidents, pick
from graders.drills.schedule import Schedule
from graders.drills.symptoms import Observer, wait_for
from graders.live.session import LiveSession
from graders.live.system import LIVE_SETTINGS
from graders.manifest import load_manifest

INCIDENTS = load_incidents()
#: The challenges of the interview guide (its ten "Challenges & resolutions"), and its
#: optional enhancements (schema versioning is covered by version-drift).
GUIDE_CHALLENGES = {"Service discovery", "Partial failures", "Corrupted files", "Bloat", "Version drift",
                    "Idempotency", "Distributed tracing", "Noise", "Unauthorized requests", "Resource leaks"}
OPTIONAL_AREAS = ("TLS", "Back-pressure", "health checks", "Metrics export")
APPEAR_S, DISAPPEAR_S = 12.0, 15.0


def test_one_incident_per_guide_challenge_and_optional_area():
    core = [i for i in INCIDENTS if not i.optional]
    assert sorted(i.challenge for i in core) == sorted(GUIDE_CHALLENGES)
    optional = [i.challenge for i in INCIDENTS if i.optional]
    for area in OPTIONAL_AREAS:
        assert any(area.lower() in c.lower() for c in optional), area
    assert pick(5).id == pick(5).id and not pick(5).optional
    assert len({pick(s).id for s in range(40)}) > 3


def test_bad_incident_files_are_refused_with_the_reason(tmp_path):
    good = (paths.REPO_ROOT / "graders/drills/incidents/bloat.toml").read_text()
    for mutate, words in [
            (lambda t: t.replace('id = "bloat"', 'id = "other"'), "file name"),
            (lambda t: t.replace('action = "reconfigure"', 'action = "explode"'), "unknown action"),
            (lambda t: t.replace('kind = "metric"', 'kind = "vibes"'), "kind must be one of"),
            (lambda t: t.replace("strong_hire = ", "great_hire = "), "[levels]"),
            (lambda t: t.replace('change = "above"', 'change = "sideways"'), "change must be")]:
        path = tmp_path / ("other.toml" if "other" in words else "bloat.toml")
        path.write_text(mutate(good))
        with pytest.raises(IncidentError) as info:
            _load_one(path if "file name" not in words else tmp_path / "bloat.toml")
        assert words in str(info.value)
        path.unlink()


@pytest.fixture(scope="module")
def live():
    session = LiveSession.start(load_manifest(paths.REFERENCE), seed=4242, token="drill-incident-token",
                                settings=LIVE_SETTINGS, traffic_rate=8, api_port=None)
    try:
        time.sleep(1.0)
        yield session
    finally:
        report = session.close()
        assert report is None or report.ok, report


@pytest.mark.slow
@pytest.mark.parametrize("incident", INCIDENTS, ids=[i.id for i in INCIDENTS])
def test_symptoms_appear_when_injected_and_go_after_heal(live, incident):
    observer = Observer(live.system, live.traffic)
    symptoms = list(incident.symptoms)
    schedule = Schedule(live.actions, incident.faults).start()
    try:
        shown = wait_for(observer, symptoms, present=True, timeout=APPEAR_S)
    finally:
        schedule.stop()
        live.actions.heal()
    assert not [e for e in schedule.events if "error" in e], schedule.events
    assert shown.ok, f"{incident.id}: symptoms never seen: {shown.missing(symptoms)}"
    gone = wait_for(observer, symptoms, present=False, timeout=DISAPPEAR_S, skip_persistent=True)
    assert gone.ok, f"{incident.id}: symptoms still there after heal: {gone.missing(symptoms)}"


def test_rubric_incidents_md_is_generated_from_the_incident_files():
    from graders.drills.rubric_md import render
    committed = (paths.REPO_ROOT / "rubric" / "INCIDENTS.md").read_text(encoding="utf-8")
    assert committed == render(), "rubric/INCIDENTS.md is stale: run `faultdrill drill --rubric > rubric/INCIDENTS.md`"
    for inc in INCIDENTS:
        assert f'<a id="{inc.id}"></a>' in committed
        for key in ("strong_no_hire", "strong_hire"):
            assert inc.levels[key] in committed


def test_the_schedule_is_seeded():
    import itertools
    from graders.drills.schedule import plan
    faults = [{"at_s": 0, "action": "cut", "hop": "analyzer", "repeat_every_s": 1.0, "jitter_s": 0.4},
              {"at_s": 0.5, "action": "proxy", "hop": "collector", "enabled": False}]
    first = list(itertools.islice(plan(faults, 7), 6))
    assert first == list(itertools.islice(plan(faults, 7), 6))
    assert first != list(itertools.islice(plan(faults, 8), 6))
    assert [o for o, _i in first] == sorted(o for o, _i in first)
    assert sum(1 for _o, i in first if i == 1) == 1            # not repeating: once
    for n, (offset, i) in enumerate((o, i) for o, i in first if i == 0):
        assert n <= offset < n + 0.4                          # nominal + seeded jitter
