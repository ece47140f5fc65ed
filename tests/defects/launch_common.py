"""Shared launcher for the deliberately broken submissions in ``tests/defects/<name>/``.

Why one launcher and a patch per folder: every defect is the reference implementation
with exactly ONE thing done wrong, so that the grader's verdicts on it can be compared
with what that one mistake deserves (docs/DEFECT_MATRIX.md). A defect folder holds a
``defect.py`` that, at import time, replaces one reference function through ``patch``
below. The grader sandboxes candidates and shows them only their own folder, so a defect
is graded as a self-contained folder built by ``tests/defects/assemble.py``: a copy of
this launcher, the defect's ``defect.py``, a copy of ``reference_impl`` and a manifest
whose commands are ``["{python}", "launch_common.py", "<role>"]`` (cwd = that folder).
This launcher imports ``reference_impl`` from beside itself (the assembled folder) or,
run in place from the checkout, from the repository root; it imports ``defect.py`` from
its working directory, then hands over to the reference's own ``main``.

Why ``patch`` refuses missing names: if the reference is refactored and a patched name
moves, a silent ``setattr`` would create a new, unused attribute and turn the defect into
a correct submission; the test would then "find" a grader gap that is really a stale
defect. So a missing target, or one whose kind changed (a function became a class), makes
the service exit at once with status 70 and a message naming the target.

``python3 ../launch_common.py --check`` (cwd = a defect folder in the checkout) or
``python3 launch_common.py --check`` (cwd = an assembled folder) applies the defect's
patches and exits 0 without serving, naming where ``reference_impl`` was imported from:
the fast test that every defect still applies.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
# An assembled folder carries its own reference_impl; in the checkout it is two levels up.
ROOT = HERE if (HERE / "reference_impl").is_dir() else HERE.parents[1]
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


def patch_default(variable: str, field: str, value: Any) -> None:
    """A wrong SPEC §2 default: when ``variable`` is unset or blank, the configuration's
    ``field`` is ``value``; set, it is read as the reference reads it."""
    import dataclasses

    def make(original):
        def load_config(role, environ):
            config = original(role, environ)
            if not (environ.get(variable) or "").strip(" \t"):
                config = dataclasses.replace(config, **{field: value})
            return config
        return load_config

    patch("reference_impl.runtime.config:load_config", make)


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
        reference = Path(sys.modules["reference_impl"].__file__).resolve().parent
        print(f"{folder.name}: patched {', '.join(_applied)}")
        print(f"reference_impl from {reference}")
        return 0
    from reference_impl.main import main as reference_main
    return reference_main(argv)


if __name__ == "__main__":
    # Run as a script, this file is `__main__`; make `import launch_common` (done by the
    # defect modules) find *this* module object, so `patch` records into one list.
    sys.modules.setdefault("launch_common", sys.modules[__name__])
    sys.exit(main())
