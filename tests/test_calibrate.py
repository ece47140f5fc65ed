"""`faultdrill calibrate`: quadratic-weighted Cohen's kappa and the CSV format."""
import random

import pytest
from hypothesis import given, settings, strategies as st

from graders.commands import calibrate as cal


def brute_kappa(a, b, k=4):
    """Textbook formula kappa_w = 1 - sum(w*O)/sum(w*E), written independently."""
    n = len(a)
    w = lambda i, j: ((i - j) / (k - 1)) ** 2  # noqa: E731
    observed = sum(w(x, y) for x, y in zip(a, b)) / n
    expected = sum(w(i, j) * a.count(i) * b.count(j) for i in range(k) for j in range(k)) / n / n
    return 1 - observed / expected


def test_known_values():
    assert cal.weighted_kappa([0, 1, 2, 3], [0, 1, 2, 3]) == pytest.approx(1.0)
    assert cal.weighted_kappa([0, 1, 2, 3], [3, 2, 1, 0]) == pytest.approx(-1.0)
    a, b = [0, 1, 1, 2, 3, 3, 2, 0], [0, 1, 2, 2, 3, 2, 2, 1]
    assert cal.weighted_kappa(a, b) == pytest.approx(brute_kappa(a, b))
    assert cal.weighted_kappa([], []) is None
    assert cal.weighted_kappa([2, 2], [2, 2]) == 1.0


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=2, max_size=30))
def test_kappa_properties(pairs):
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    k = cal.weighted_kappa(a, b)
    if k is None:
        return
    assert k <= 1.0 + 1e-12
    assert k == pytest.approx(cal.weighted_kappa(b, a)), "symmetric"
    if a == b:
        assert k == pytest.approx(1.0)


def test_levels_parse():
    assert cal.parse_level("strong_hire") == 3
    assert cal.parse_level("Leaning no hire") == 1
    assert cal.parse_level("2") == 1
    with pytest.raises(cal.CalibrationError):
        cal.parse_level("maybe")


def _write(path, rows):
    path.write_text("candidate,area,interviewer,level\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def test_cli_reports_pairs_and_disagreements(tmp_path, capsys):
    rng = random.Random(7)
    levels = cal.LEVELS
    rows_a, rows_b = [], []
    for c in range(6):
        for area in ("orchestration", "memory", "security"):
            x = rng.randrange(4)
            rows_a.append((f"c{c}", area, "alice", levels[x]))
            rows_b.append((f"c{c}", area, "bob", levels[min(3, x + (1 if c == 0 else 0))]))
    rows_b[1] = (rows_b[1][0], rows_b[1][1], "bob", levels[3 if cal.parse_level(rows_a[1][3]) < 2 else 0])
    f1, f2 = _write(tmp_path / "a.csv", rows_a), _write(tmp_path / "b.csv", rows_b)

    class Args:
        csv = [str(f1), str(f2)]
    assert cal.run(Args()) == 0
    out = capsys.readouterr().out
    assert "alice vs bob: 18 shared ratings" in out
    assert "weighted kappa" in out and "two or more levels apart on: c0/memory" in out
    assert "lowest pairwise kappa" in out


def test_cli_errors(tmp_path, capsys):
    class Args:
        csv = [str(_write(tmp_path / "one.csv", [("c1", "memory", "alice", "strong_hire")]))]
    assert cal.run(Args()) == 2
    assert "at least two interviewers" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("who,what\nx,y\n")
    Args.csv = [str(bad)]
    assert cal.run(Args()) == 2
    assert "header must contain" in capsys.readouterr().err
    Args.csv = [str(_write(tmp_path / "lv.csv", [("c1", "memory", "alice", "great")]))]
    assert cal.run(Args()) == 2
    assert "lv.csv:2" in capsys.readouterr().err


def test_agreement_words():
    assert "almost perfect" in cal.describe(0.95)
    assert "moderate" in cal.describe(0.5)
    assert "chance" in cal.describe(-0.2)
