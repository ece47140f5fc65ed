"""Host facts a sandbox is built from: the system view, the base Python, the kit's paths.

Why a module of its own: `policy` is pure and `probe` only answers "can it run"; which
directories this particular machine has, where its Python lives and where the kit is
installed are read here, once per process.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

from .policy import SystemBind, masks_within

__all__ = ["system_binds", "base_python", "python_prefix", "site_dirs", "kit_paths",
           "hidden_masks", "SYSTEM_TREES"]

#: Read-only system trees every service sees (when they exist).
SYSTEM_TREES = ("/usr", "/etc")
#: Top-level names that are either merged-usr symlinks (Debian, Fedora) or real dirs.
TOP_LEVEL = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


@functools.lru_cache(maxsize=None)
def system_binds() -> tuple[SystemBind, ...]:
    out = [SystemBind("ro-bind", t, t) for t in SYSTEM_TREES if os.path.isdir(t)]
    for name in TOP_LEVEL:
        if os.path.islink(name):
            out.append(SystemBind("symlink", os.readlink(name), name))
        elif os.path.isdir(name):
            out.append(SystemBind("ro-bind", name, name))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def base_python() -> str:
    """The interpreter `{python}` stands for: the *base* interpreter behind any venv.

    Why not `sys.executable`: a venv's interpreter puts the venv's site-packages (where
    the kit itself is installed, or an editable finder pointing at the checkout) on the
    path; the base interpreter with its site-packages masked sees the standard library
    only."""
    exe = getattr(sys, "_base_executable", None) or sys.executable
    return os.path.realpath(exe)


@functools.lru_cache(maxsize=None)
def python_prefix() -> str | None:
    """The base Python's prefix when it must be bound (it is not under a system tree)."""
    prefix = os.path.realpath(sys.base_prefix)
    if any(prefix == t or prefix.startswith(t + "/") for t in SYSTEM_TREES):
        return None
    return prefix


@functools.lru_cache(maxsize=None)
def site_dirs() -> tuple[str, ...]:
    """Every site-packages / dist-packages directory the base interpreter would use
    (asked of that interpreter itself, isolated, so a venv's view does not leak in)."""
    code = ("import json, site, sys; d = list(site.getsitepackages()) + [site.getusersitepackages()];"
            "print(json.dumps(d))")
    dirs: list[str] = []
    try:
        out = subprocess.run([base_python(), "-I", "-c", code], capture_output=True, text=True,
                             timeout=10, check=True).stdout
        dirs = [d for d in json.loads(out) if isinstance(d, str)]
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    import site
    try:
        dirs += list(site.getsitepackages()) + [site.getusersitepackages()]
    except AttributeError:
        pass
    dirs += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    # Only directories that exist: a mask needs a mount point, and bwrap cannot create
    # one inside a read-only tree (nothing to hide there anyway).
    return tuple(sorted({os.path.realpath(d) for d in dirs if d and os.path.isdir(d)}))


@functools.lru_cache(maxsize=None)
def kit_paths() -> tuple[str, ...]:
    """Where the kit lives: the checkout (graders, reference_impl, rubric, challenges...),
    and the installed packages wherever Python found them."""
    from graders import paths
    found = {str(paths.REPO_ROOT.resolve())}
    import graders
    found.add(str(Path(graders.__file__).resolve().parent))
    try:
        import importlib.util
        spec = importlib.util.find_spec("reference_impl")
        if spec is not None and spec.origin:
            found.add(str(Path(spec.origin).resolve().parent))
    except (ImportError, ValueError):
        pass
    return tuple(sorted(found))


def hidden_masks(bound_trees) -> tuple[str, ...]:
    """The masks a sandbox needs for the trees it binds: site directories and the kit."""
    return masks_within(bound_trees, [*site_dirs(), *kit_paths()])
