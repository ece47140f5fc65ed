"""Shared launcher for the deliberately broken submissions in ``tests/defects/<name>/``.

Why one launcher and a patch per folder: every defect is the reference implementation
with exactly ONE thing done wrong, so that the grader's verdicts on it can be compared
with what that one mistake deserves (docs/DEFECT_MATRIX.md). A defect folder holds a
``faultdrill.toml`` whose commands are ``["{python}", "../launch_common.py", "<role>"]``
(cwd = the defect folder) and a ``defect.py`` that, at import time, replaces one
reference function through ``patch`` below. This launcher puts the repository root on
``sys.path``, imports that ``defect.py``, then hands over to the reference's own ``main``.

Why ``patch`` refuses missing names: if the reference is refactored and a patched name
moves, a silent ``setattr`` would create a new, unused attribute and turn the defect into
a correct submission; the test would then "find" a grader gap that is really a stale
defect. So a missing target, or one whose kind changed (a function became a class), makes
the service exit at once with status 70 and a message naming the target.

``python3 ../launch_common.py --check`` (cwd = a defect folder) applies the defect's
patches and exits 0 without serving: the fast test that every defect still applies.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
EXIT_STALE_DEFECT = 70

_applied: list[str] = []


class StaleDefect(RuntimeError):
    """A defect's patch target no longer exists (or changed kind) in the reference."""


def resolve(target: str) -> tuple[Any, str, Any]:
    """``"pkg.module:Attr.sub"`` -> (owner object, last attribute name, current value)."""
    if ":" not in target:
        raise StaleDefect(f"patch target {target!r} must look like 'package.module:name[.attr]'")
    modname, _, attrpath = target.partition(":")
    try:
        owner: Any = importlib.import_module(modname)
    except ImportError as exc:
        raise StaleDefect(f"patch target {target!r}: cannot import {modname}: {exc}") from None
    parts = attrpath.split(".")
    for name in parts[:-1]:
        if not hasattr(owner, name):
            raise StaleDefect(f"patch target {target!r}: {owner!r} has no attribute {name!r}")
        owner = getattr(owner, name)
    last = parts[-1]
    # Look in the owner's own namespace (not inherited): a defect patches what the
    # reference defines, and a name that is only inherited means the code moved.
    space = vars(owner) if hasattr(owner, "__dict__") else {}
    if last not in space:
        raise StaleDefect(f"patch target {target!r}: {getattr(owner, '__name__', owner)!r} "
                          f"defines no {last!r} (the reference changed; update this defect)")
    return owner, last, space[last]


def patch(target: str, make: Callable[[Any], Any], *, expect: type | tuple = object) -> None:
    """Replace ``target`` by ``make(original)``; the original must be an ``expect``."""
    owner, name, original = resolve(target)
    if not isinstance(original, expect):
        raise StaleDefect(f"patch target {target!r} is a {type(original).__name__}, expected "
                          f"{getattr(expect, '__name__', expect)}")
    setattr(owner, name, make(original))
    _applied.append(target)


def applied() -> list[str]:
    return list(_applied)


def load_defect(folder: Path):
    """Import ``folder/defect.py`` (its import applies the patches)."""
    path = folder / "defect.py"
    spec = importlib.util.spec_from_file_location(f"faultdrill_defect_{folder.name.replace('-', '_')}", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise StaleDefect(f"{path} is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not _applied:
        raise StaleDefect(f"{path} applied no patch: a defect must change exactly one thing")
    return module


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    folder = Path.cwd()
    try:
        load_defect(folder)
    except StaleDefect as exc:
        print(f"faultdrill defect {folder.name}: stale defect: {exc}", file=sys.stderr, flush=True)
        return EXIT_STALE_DEFECT
    if argv[:1] == ["--check"]:
        print(f"{folder.name}: patched {', '.join(_applied)}")
        return 0
    from reference_impl.main import main as reference_main
    return reference_main(argv)


if __name__ == "__main__":
    # Run as a script, this file is `__main__`; make `import launch_common` (done by the
    # defect modules) find *this* module object, so `patch` records into one list.
    sys.modules.setdefault("launch_common", sys.modules[__name__])
    sys.exit(main())
