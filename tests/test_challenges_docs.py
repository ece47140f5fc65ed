"""The candidate's challenge pack is complete and consistent.

Every challenge folder has a README with the same parts (incident, injected faults,
passing behaviour, three tiers of hints, the exact self-check command, SPEC sections);
the index lists every challenge; every `§N.M` reference points at a real SPEC section;
the guide covers the tools. Where the graders are importable, their challenge names
and order must match the docs.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHALLENGES_DIR = ROOT / "challenges"
# Suggested order, as listed in challenges/README.md.
CHALLENGES = ("pipeline-basics", "idempotency", "bad-tokens", "schema-drift",
              "dropped-sockets", "crash-restart", "corrupt-memory", "observability",
              "overload", "tls-shutdown")
NOT_CHALLENGES = {"starter", "schemas", "ci"}  # ci: the workflow template
SECTIONS = ("The incident", "What the kit injects", "What passing looks like", "Hints",
            "Self-check", "SPEC sections that matter")
HINT_TIERS = ("Nudge", "Direction", "Near-solution")


def h2_sections(text):
    """{'## title': body} for the README, in order."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2])}


def spec_sections():
    spec = (CHALLENGES_DIR / "SPEC.md").read_text(encoding="utf-8")
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", spec, flags=re.M))


def readme(name):
    return (CHALLENGES_DIR / name / "README.md").read_text(encoding="utf-8")


def test_challenge_folders_are_exactly_the_known_challenges():
    folders = {p.name for p in CHALLENGES_DIR.iterdir() if p.is_dir()} - NOT_CHALLENGES
    assert folders == set(CHALLENGES)


@pytest.mark.parametrize("name", CHALLENGES)
def test_readme_has_required_sections_in_order(name):
    text = readme(name)
    assert text.startswith(f"# Challenge: {name}\n")
    sections = h2_sections(text)
    assert list(sections) == list(SECTIONS), f"{name}: sections {list(sections)}"
    for title, body in sections.items():
        assert len(body.strip()) > 80, f"{name}: section '{title}' is nearly empty"


@pytest.mark.parametrize("name", CHALLENGES)
def test_readme_content(name):
    sections = h2_sections(readme(name))
    incident = sections["The incident"]
    assert re.search(r"It's \d\d:\d\d, the pager fires", incident), name
    injected = sections["What the kit injects"]
    assert len(re.findall(r"^\s*(?:-|\d+\.) ", injected, flags=re.M)) >= 2, name
    passing = sections["What passing looks like"]
    assert re.search(r"§\d+", passing), f"{name}: passing must cite SPEC sections"
    hints = re.split(r"^### (.+)$", sections["Hints"], flags=re.M)
    tiers = dict(zip(hints[1::2], hints[2::2]))
    assert tuple(tiers) == HINT_TIERS, f"{name}: hint tiers {list(tiers)}"
    assert all(len(body.strip()) > 80 for body in tiers.values()), name
    assert "```" not in sections["Hints"], f"{name}: hints describe, they do not give code"
    self_check = sections["Self-check"]
    assert f"```sh\nfaultdrill check PATH --challenge {name}\n```" in self_check
    commands = re.findall(r"faultdrill check \S+ --challenge (\S+)", readme(name))
    assert set(commands) == {name}, f"{name}: self-check names {commands}"
    assert re.search(r"§\d+", sections["SPEC sections that matter"]), name


def test_every_section_reference_exists_in_spec():
    known = spec_sections()
    assert {"4", "10.3", "11.4", "18.1"} <= known  # the SPEC parsed as expected
    docs = [CHALLENGES_DIR / "README.md", CHALLENGES_DIR / "CANDIDATE_GUIDE.md",
            CHALLENGES_DIR / "starter" / "README.md"]
    docs += [CHALLENGES_DIR / name / "README.md" for name in CHALLENGES]
    for path in docs:
        text = path.read_text(encoding="utf-8")
        for ref in re.findall(r"§(\d+(?:\.\d+)?)", text):
            assert ref in known, f"{path.relative_to(ROOT)} cites §{ref}, not in SPEC.md"
        for first, last in re.findall(r"§(\d+)–§(\d+)", text):
            assert int(first) < int(last)


def test_index_lists_every_challenge_in_order_with_budget():
    text = (CHALLENGES_DIR / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| \[([a-z-]+)\]\(([a-z-]+)/README\.md\) \| (core|optional) "
                      r"\| ([^|]*min[^|]*) \|", text, flags=re.M)
    assert [name for _, name, _, _, _ in rows] == list(CHALLENGES)
    assert [int(n) for n, _, _, _, _ in rows] == list(range(1, len(CHALLENGES) + 1))
    assert all(name == link for _, name, link, _, _ in rows)
    tiers = {name: tier for _, name, _, tier, _ in rows}
    assert tiers["tls-shutdown"] == "optional"
    for phrase in ("Black-box", "--seed", "faultdrill check PATH", "hidden", "oracle"):
        assert phrase in text, f"challenges/README.md should explain {phrase!r}"


def test_readme_tier_lines_agree_with_index():
    index = (CHALLENGES_DIR / "README.md").read_text(encoding="utf-8")
    for position, name in enumerate(CHALLENGES, start=1):
        tier = re.search(rf"\| \[{name}\]\([^)]*\) \| (\w+) \|", index).group(1)
        first_lines = readme(name).splitlines()[2]
        assert first_lines.startswith(f"> Tier: {tier} · Order {position} ·"), name


def test_candidate_guide_covers_the_tools():
    text = (CHALLENGES_DIR / "CANDIDATE_GUIDE.md").read_text(encoding="utf-8")
    for phrase in ("faultdrill check PATH", "--challenge", "--seed", "[grader:",
                   "[your_orchestrator]", "sent", "expected", "received", "Hint:",
                   '["go", "run", "./cmd/orchestrator"]', "{python}", "{root}",
                   "faultdrill.toml", "What is graded and what is discussed", "debrief"):
        assert phrase in text, f"CANDIDATE_GUIDE.md should cover {phrase!r}"
    # The manifest examples are valid TOML with all four roles.
    import tomllib
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 3
    for block in blocks:
        manifest = tomllib.loads(block)
        assert manifest["submission"]["spec_version"] == 1
        assert set(manifest["services"]) == {"orchestrator", "collector", "analyzer",
                                             "reporter"}
    assert any(not b.split("command = [", 1)[1].startswith('"{python}"')
               and '"bin/' in b for b in blocks), "a compiled-binary example"


def test_grader_challenge_names_match_the_docs():
    registry = pytest.importorskip("graders.checks.registry")
    assert tuple(registry.CHALLENGES) == CHALLENGES
