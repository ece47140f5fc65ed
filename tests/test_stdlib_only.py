"""reference_impl and the candidate starter must use the Python standard library only.

The reference is graded exactly like a candidate and is shipped as the model answer; a
third-party import would make it unrunnable in a bare container and unfair as a model.
"""
import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = set(sys.stdlib_module_names) | {"__future__"}


def third_party_imports(package_dir: Path, own: set[str]):
    bad = []
    for path in sorted(package_dir.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in ALLOWED and top not in own:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    return bad


@pytest.mark.parametrize("folder,own", [
    ("reference_impl", {"reference_impl"}),
    ("challenges/starter", set()),
])
def test_only_standard_library(folder, own):
    package_dir = ROOT / folder
    if not package_dir.exists():
        pytest.skip(f"{folder} not present")
    own = own | {p.stem for p in package_dir.glob("*.py")} | {
        p.name for p in package_dir.iterdir() if p.is_dir()}
    assert third_party_imports(package_dir, own) == []


def test_detector_flags_a_third_party_import(tmp_path):
    (tmp_path / "m.py").write_text("import requests\nimport json\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert third_party_imports(tmp_path, set()) == ["m.py:1 imports requests"]
    finally:
        ROOT = saved
