"""Packaging the kit for people who must not receive all of it: candidates and Gradescope.

Why source transforms and not a run-time filter: a candidate can read every file they are
given, so interviewer-only (hidden) checks must be *absent* from the shipped code, not
skipped by a flag. The builder therefore:

1. rewrites each check module's source, deleting every function registered with
   `@check(..., visibility="hidden")` (then any private helper nothing uses any more);
2. ships only the graders modules reachable by imports from the allowed commands (so
   code used only by hidden checks, the reference system, the rubric tools and the
   packaging commands themselves stay home);
3. rewrites the CLI's subcommand table to the allowed commands;
4. derives the package's dependencies from the third-party imports that survived;
5. verifies the result (no hidden check id or title, no reference code, no rubric) and
   refuses to leave a bundle that fails verification.

The transforms are pure functions over source text (tested directly); the edges that
copy files, build zips and run the autograder are at the bottom of this module.

`python -m graders.packaging autograde` is the Gradescope entry point (run_autograder).
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from graders import KIT_VERSION

# Commands a candidate receives. `grade` is absent: its module ships (check reuses its
# argument and driver helpers) but it is not offered; `rubric`/`calibrate`/`demo`
# need interviewer material or the reference system.
CANDIDATE_COMMANDS = ("check", "task", "up", "clean")
# Commands inside the Gradescope autograder.
AUTOGRADER_COMMANDS = ("grade", "check", "task", "rubric")

# Third-party import name -> requirement. An import not listed here and not in the
# standard library stops the build (a bundle that cannot install is worse than none).
REQUIREMENTS = {
    "prometheus_client": "prometheus-client>=0.17",
    "cryptography": "cryptography>=41",
    "hypothesis": "hypothesis>=6.80",
    "jsonschema": "jsonschema>=4.18",
    "docker": "docker>=7",
}
# Imported only for optional features: offered as extras, not required.
OPTIONAL_IMPORTS = {"docker": "docker"}

# Files never shipped from any copied tree.
_SKIP_NAMES = {"__pycache__", ".pytest_cache", ".hypothesis", "state", ".DS_Store"}
_SKIP_SUFFIXES = (".pyc", ".pyo")

# Fixed timestamp for zip entries: the same inputs give a byte-identical zip.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class PackagingError(Exception):
    """The package cannot be built safely (say what and where)."""


# --------------------------------------------------------------------------- pure transforms

def _check_decorator(dec: ast.expr) -> ast.Call | None:
    """The `check(...)` call of a decorator, or None if the decorator is something else."""
    if isinstance(dec, ast.Call):
        f = dec.func
        if (isinstance(f, ast.Name) and f.id == "check") or (isinstance(f, ast.Attribute) and f.attr == "check"):
            return dec
    return None


def _keyword(call: ast.Call, name: str, filename: str):
    """A keyword argument's literal value; non-literal values are refused (fail closed:
    a computed visibility could hide a hidden check from the transform)."""
    for kw in call.keywords:
        if kw.arg == name:
            try:
                return ast.literal_eval(kw.value)
            except ValueError:
                raise PackagingError(f"{filename}:{kw.value.lineno}: check {name}= must be a literal") from None
        if kw.arg is None:
            raise PackagingError(f"{filename}:{call.lineno}: check(**kwargs) cannot be classified")
    return None


def registered_checks(source: str, filename: str = "<source>") -> list[dict]:
    """Every `@check(...)`-decorated top-level function: id, title, visibility, function
    name and line span (first decorator line .. last line, 1-based inclusive)."""
    tree = ast.parse(source, filename)
    out = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for dec in node.decorator_list:
            call = _check_decorator(dec)
            if call is None:
                continue
            out.append({
                "id": _keyword(call, "id", filename),
                "title": _keyword(call, "title", filename),
                "visibility": _keyword(call, "visibility", filename) or "visible",
                "function": node.name,
                "start": min(d.lineno for d in node.decorator_list),
                "end": node.end_lineno,
            })
    return out


def _delete_lines(source: str, spans: list[tuple[int, int]]) -> str:
    """Delete 1-based inclusive line spans, and the blank lines that followed each."""
    lines = source.splitlines(keepends=True)
    drop = set()
    for start, end in spans:
        drop.update(range(start - 1, end))
        j = end
        while j < len(lines) and not lines[j].strip():
            drop.add(j)
            j += 1
    return "".join(line for i, line in enumerate(lines) if i not in drop)


def strip_hidden_checks(source: str, filename: str = "<source>") -> tuple[str, list[str]]:
    """(source without hidden checks and the private helpers only they used, removed ids)."""
    hidden = [c for c in registered_checks(source, filename) if c["visibility"] == "hidden"]
    if not hidden:
        return source, []
    out = _delete_lines(source, [(c["start"], c["end"]) for c in hidden])
    out = prune_unused_private(out, filename)
    ast.parse(out, filename)  # the result must still be Python
    return out, [c["id"] for c in hidden]


def _names_used(tree: ast.AST, exclude: ast.AST | None = None) -> set[str]:
    used = set()
    for node in ast.walk(tree):
        if exclude is not None and node is exclude:
            continue
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            used.add(node.value)  # names in __all__ or getattr strings
    return used


def prune_unused_private(source: str, filename: str = "<source>") -> str:
    """Remove top-level private functions and classes (`_name`) that nothing in the module
    refers to, repeatedly (a helper of a removed helper goes too). Public names stay:
    other modules may import them."""
    while True:
        tree = ast.parse(source, filename)
        defs = [n for n in tree.body
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and n.name.startswith("_") and not n.name.startswith("__")]
        spans = []
        for node in defs:
            used = set()
            for other in tree.body:
                if other is not node:
                    used |= _names_used(other)
            if node.name not in used:
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                spans.append((start, node.end_lineno))
        if not spans:
            return source
        source = _delete_lines(source, spans)


def filter_subcommands(cli_source: str, allowed, filename: str = "graders/cli.py") -> str:
    """Rewrite the literal `SUBCOMMANDS = (...)` table to the allowed command names, in the
    original order. Raises if the table is not a literal (the CLI changed shape)."""
    tree = ast.parse(cli_source, filename)
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "SUBCOMMANDS"):
            table = ast.literal_eval(node.value)
            kept = tuple((n, m) for n, m in table if n in set(allowed))
            body = "".join(f"    ({n!r}, {m!r}),\n" for n, m in kept)
            new = f"SUBCOMMANDS = (\n{body})"
            lines = cli_source.splitlines(keepends=True)
            before = "".join(lines[:node.lineno - 1])
            after = "".join(lines[node.end_lineno:])
            return before + new + "\n" + after
    raise PackagingError(f"{filename}: no literal SUBCOMMANDS table to filter")


def _imports(source: str, module: str, is_package: bool, filename: str) -> tuple[set[str], set[str]]:
    """(names that must be modules, names that are modules only if they exist):
    `import X` and the X of `from X import n` must be modules; X.n may be an attribute."""
    tree = ast.parse(source, filename)
    package = module if is_package else module.rpartition(".")[0]
    required, maybe = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            required.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                if node.level - 1 > len(parts) - 1:
                    raise PackagingError(f"{filename}:{node.lineno}: relative import beyond the top package")
                base = ".".join(parts[:len(parts) - (node.level - 1)])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            if target == "__future__":
                continue
            required.add(target)
            maybe.update(f"{target}.{a.name}" for a in node.names if a.name != "*")
    return required, maybe


def module_imports(source: str, module: str, is_package: bool, filename: str = "<source>") -> set[str]:
    """Absolute dotted names a module imports, at any depth (function-level imports
    included). For `from X import n` both X and X.n are returned; X.n counts only when it
    is a module."""
    required, maybe = _imports(source, module, is_package, filename)
    return required | maybe


def import_closure(sources: dict[str, tuple[str, bool]], entries, top: str = "graders") -> tuple[set[str], set[str]]:
    """(modules of `top` reachable from `entries`, third-party top-level names they import).

    `sources` maps dotted module name -> (source text, is_package). Importing a.b.c also
    imports a and a.b, so parents are always included."""
    stdlib = set(sys.stdlib_module_names)
    seen: set[str] = set()
    third: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in sources:
            raise PackagingError(f"entry or import {name!r} is not a module of the kit")
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        text, is_pkg = sources[name]
        required, maybe = _imports(text, name, is_pkg, name)
        for imp in required | maybe:
            head = imp.split(".")[0]
            if head == top:
                if imp in sources:
                    todo.append(imp)
                elif imp in required:
                    raise PackagingError(f"{name} imports {imp}, which is not in the kit")
            elif head not in stdlib:
                third.add(head)
    return seen, third


def requirements_for(third_party: set[str]) -> tuple[list[str], dict[str, list[str]]]:
    """(required distributions, extras) for the third-party imports found."""
    unknown = sorted(n for n in third_party if n not in REQUIREMENTS)
    if unknown:
        raise PackagingError(f"third-party import(s) with no known distribution: {', '.join(unknown)} "
                             "(add them to graders.packaging.REQUIREMENTS)")
    deps = sorted(REQUIREMENTS[n] for n in third_party if n not in OPTIONAL_IMPORTS)
    extras: dict[str, list[str]] = {}
    for n in sorted(third_party & set(OPTIONAL_IMPORTS)):
        extras.setdefault(OPTIONAL_IMPORTS[n], []).append(REQUIREMENTS[n])
    return deps, extras


def render_pyproject(name: str, description: str, deps: list[str], extras: dict[str, list[str]]) -> str:
    """A minimal setuptools pyproject exposing only the `faultdrill` command."""
    def arr(items):
        return "[" + ", ".join(json.dumps(i) for i in items) + "]"
    lines = [
        "[build-system]",
        'requires = ["setuptools>=64"]',
        'build-backend = "setuptools.build_meta"',
        "",
        "[project]",
        f"name = {json.dumps(name)}",
        f"version = {json.dumps(KIT_VERSION)}",
        f"description = {json.dumps(description)}",
        'requires-python = ">=3.11"',
        f"dependencies = {arr(deps)}",
        "",
    ]
    if extras:
        lines.append("[project.optional-dependencies]")
        lines += [f"{k} = {arr(v)}" for k, v in sorted(extras.items())]
        lines.append("")
    lines += [
        "[project.scripts]",
        'faultdrill = "graders.cli:main"',
        "",
        "[tool.setuptools.packages.find]",
        'include = ["graders*"]',
        "",
    ]
    return "\n".join(lines)


def render_github_workflow(challenges) -> str:
    """The candidate repository's GitHub Actions workflow (challenges/ci/github-actions.yml).

    Two jobs: `self-check` runs every visible check, staged, as the candidate does locally
    (red when a stage fails); `autograding` runs one GitHub Classroom command-grader step
    per challenge so a classroom shows points per challenge."""
    runners = [f"c{i:02d}" for i in range(1, len(challenges) + 1)]
    out = [
        "# faultdrill self-check for a candidate repository (GitHub Actions, GitHub Classroom style).",
        "# Generated by graders/packaging.py (render_github_workflow); a test keeps this file equal",
        "# to it. Copy it to .github/workflows/faultdrill.yml in the repository that holds the",
        "# candidate bundle (`faultdrill bundle --for candidate OUT` puts it there already).",
        "#",
        "# FAULTDRILL_KIT: the directory with the kit's pyproject.toml (the bundle root).",
        "# FAULTDRILL_SUBMISSION: the directory with your faultdrill.toml.",
        "# Every run prints its seed; replay a failure locally with",
        "#   faultdrill check <submission> --seed <seed>",
        "# --unsafe-no-sandbox: the runner is a throwaway VM of this repository that runs only the",
        "# repository's own code (and the sandbox's user namespaces are restricted on hosted",
        "# Ubuntu runners); on your own machine, leave it out (docs/THREAT_MODEL.md).",
        "name: faultdrill self-check",
        "",
        "on:",
        "  push:",
        "  pull_request:",
        "  workflow_dispatch:",
        "",
        "permissions:",
        "  checks: write",
        "  actions: read",
        "  contents: read",
        "",
        "env:",
        "  FAULTDRILL_KIT: .",
        "  FAULTDRILL_SUBMISSION: submission",
        "  PIP_DISABLE_PIP_VERSION_CHECK: \"1\"",
        "",
        "jobs:",
        "  self-check:",
        "    runs-on: ubuntu-latest",
        "    timeout-minutes: 30",
        "    steps:",
        "      - uses: actions/checkout@v4",
        "      - uses: actions/setup-python@v5",
        "        with:",
        "          python-version: \"3.11\"",
        "      - name: Install the faultdrill kit",
        "        run: python -m pip install \"$FAULTDRILL_KIT\"",
        "      - name: Find the submission",
        "        run: |",
        "          if [ ! -f \"$FAULTDRILL_SUBMISSION/faultdrill.toml\" ]; then",
        "            echo \"::error::no faultdrill.toml in '$FAULTDRILL_SUBMISSION'; copy challenges/starter there or set FAULTDRILL_SUBMISSION\"",
        "            exit 1",
        "          fi",
        "      - name: faultdrill check (all visible checks, staged)",
        "        run: |",
        "          set -o pipefail",
        "          faultdrill check \"$FAULTDRILL_SUBMISSION\" --seed \"$GITHUB_RUN_NUMBER\" --unsafe-no-sandbox 2>&1 | tee faultdrill-check.txt",
        "      - name: Summary",
        "        if: always()",
        "        run: |",
        "          { echo '## faultdrill self-check'; echo '```'; tail -n 60 faultdrill-check.txt 2>/dev/null; echo '```'; } >> \"$GITHUB_STEP_SUMMARY\"",
        "      - uses: actions/upload-artifact@v4",
        "        if: always()",
        "        with:",
        "          name: faultdrill-check",
        "          path: faultdrill-check.txt",
        "",
        "  autograding:",
        "    runs-on: ubuntu-latest",
        "    timeout-minutes: 60",
        "    if: github.actor != 'github-classroom[bot]'",
        "    steps:",
        "      - uses: actions/checkout@v4",
        "      - uses: actions/setup-python@v5",
        "        with:",
        "          python-version: \"3.11\"",
    ]
    for runner, challenge in zip(runners, challenges):
        out += [
            f"      - name: {challenge}",
            f"        id: {runner}",
            "        uses: classroom-resources/autograding-command-grader@v1",
            "        with:",
            f"          test-name: {challenge}",
            "          setup-command: python -m pip install -q \"$FAULTDRILL_KIT\"" if runner == runners[0]
            else "          setup-command: ''",
            f"          command: faultdrill check \"$FAULTDRILL_SUBMISSION\" --challenge {challenge} --seed \"$GITHUB_RUN_NUMBER\" --unsafe-no-sandbox",
            "          timeout: 10",
            "          max-score: 1",
        ]
    out += [
        "      - name: Autograding reporter",
        "        uses: classroom-resources/autograding-grading-reporter@v1",
        "        env:",
    ]
    out += [f"          {r.upper()}_RESULTS: \"${{{{ steps.{r}.outputs.result }}}}\"" for r in runners]
    out += [
        "        with:",
        f"          runners: {','.join(runners)}",
        "",
    ]
    return "\n".join(out)


# --------------------------------------------------------------------------- kit sources

def kit_sources(repo: Path) -> dict[str, tuple[str, bool]]:
    """Every module of the graders package: dotted name -> (source, is_package)."""
    pkg = repo / "graders"
    out = {}
    for path in sorted(pkg.rglob("*.py")):
        if any(part in _SKIP_NAMES for part in path.parts):
            continue
        rel = path.relative_to(repo).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path.read_text(encoding="utf-8"), is_pkg)
    return out


@dataclass
class KitPlan:
    """What a filtered graders package consists of (relative path -> text) and needs."""
    files: dict[str, str]
    deps: list[str]
    extras: dict[str, list[str]]
    commands: list[str]
    removed_checks: list[str] = field(default_factory=list)
    hidden_markers: list[str] = field(default_factory=list)  # ids and titles never to ship


def plan_kit(repo: Path, commands, *, strip_hidden: bool, extra_entries=()) -> KitPlan:
    """Filter the graders package down to what `commands` need."""
    sources = kit_sources(repo)
    removed: list[str] = []
    markers: list[str] = []
    if strip_hidden:
        for name, (text, is_pkg) in list(sources.items()):
            if not name.startswith("graders.checks."):
                continue
            for c in registered_checks(text, name):
                if c["visibility"] == "hidden":
                    markers += [c["id"], c["title"]]
            new, ids = strip_hidden_checks(text, name)
            if ids:
                sources[name] = (new, is_pkg)
                removed += ids
    present = [c for c in commands if f"graders.commands.{c}" in sources]
    cli = sources["graders.cli"][0]
    sources["graders.cli"] = (filter_subcommands(cli, present), False)
    # Drivers are imported by name at run time (get_driver), so they are entries too.
    entries = ["graders.cli", "graders.drivers.process", "graders.drivers.docker",
               "graders.checks", *extra_entries] + [f"graders.commands.{c}" for c in present]
    mods, third = import_closure(sources, [e for e in entries if e in sources])
    deps, extras = requirements_for(third)
    files = {}
    for name in sorted(mods):
        text, is_pkg = sources[name]
        rel = name.replace(".", "/") + ("/__init__.py" if is_pkg else ".py")
        files[rel] = text
    return KitPlan(files=files, deps=deps, extras=extras, commands=present,
                   removed_checks=sorted(removed), hidden_markers=markers)


def _copy_tree(src: Path, dst: Path) -> None:
    def ignore(_dir, names):
        return [n for n in names if n in _SKIP_NAMES or n.endswith(_SKIP_SUFFIXES)]
    shutil.copytree(src, dst, ignore=ignore)


def _write(path: Path, text: str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if mode is not None:
        path.chmod(mode)


def _prepare_out(out: Path, force: bool) -> None:
    """Make room for a bundle at `out`. --force replaces only an earlier bundle (a folder
    with BUNDLE.json), never an arbitrary folder: a mistyped OUT must not delete work."""
    if not out.exists():
        return
    if not out.is_dir():
        raise PackagingError(f"{out} exists and is not a folder")
    if not any(out.iterdir()):
        out.rmdir()
        return
    if not force:
        raise PackagingError(f"{out} exists and is not empty (use --force to replace an earlier bundle)")
    if not (out / "BUNDLE.json").is_file():
        raise PackagingError(f"{out} is not an earlier faultdrill bundle (no BUNDLE.json); not replacing it")
    shutil.rmtree(out)


# --------------------------------------------------------------------------- candidate bundle

CANDIDATE_README = """\
# faultdrill — candidate bundle (kit {version})

Everything you need for the exercise:

- `challenges/SPEC.md` — the whole contract; `challenges/schemas/` — the same contract as
  JSON Schemas.
- `challenges/README.md` and one folder per challenge — the incidents to handle.
- `challenges/CANDIDATE_GUIDE.md` — how to work with the kit.
- `challenges/starter/` — a Python starter (standard library only) that passes the first
  stage.
- The `faultdrill` self-check (the `graders/` package and `pyproject.toml` here). It runs
  the *visible* checks; your interviewer's grading also runs checks that are not in this
  bundle.
- `.github/workflows/faultdrill.yml` — runs the self-check on every push when this folder
  is a GitHub repository (template: `challenges/ci/`).

## Install and self-check

```sh
python3 -m venv .venv && . .venv/bin/activate     # Python 3.11 or newer
python -m pip install .                            # installs the `faultdrill` command
faultdrill check challenges/starter --challenge pipeline-basics
cp -r challenges/starter submission                # or write your own, in any language
faultdrill check submission                        # all visible checks, in stages
```

Commands in this bundle: {commands}. `faultdrill check PATH --seed N` replays a run.
"""


@dataclass
class BundleInfo:
    root: Path
    files: list[str]
    checks: list[str]
    removed_checks: int
    deps: list[str]


def verify_candidate_bundle(root: Path, markers) -> list[str]:
    """Problems that make a candidate bundle unsafe to hand out (empty when fine)."""
    root = Path(root)
    problems = []
    # graders/bughunt and graders/drills hold answer keys (planted defects, incidents).
    for forbidden in ("reference_impl", "rubric", "graders/bughunt", "graders/drills"):
        if (root / forbidden).exists():
            problems.append(f"{forbidden}/ is in the bundle")
    for name in ("rubric.toml", "RUBRIC.md", "INTERVIEWER_GUIDE.md", "INCIDENTS.md", "defects.toml"):
        for hit in root.rglob(name):
            problems.append(f"interviewer material in the bundle: {hit.relative_to(root)}")
    imp = re.compile(r"^\s*(from|import)\s+reference_impl\b", re.M)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        data = path.read_bytes()
        text = data.decode("utf-8", errors="replace")
        for m in markers:
            if m and m in text:
                problems.append(f"{rel} mentions interviewer-only check {m!r}")
        if path.suffix == ".py" and imp.search(text):
            problems.append(f"{rel} imports reference_impl")
    return problems


def build_candidate_bundle(out: Path, *, repo: Path | None = None, force: bool = False) -> BundleInfo:
    """Write the candidate bundle into `out` (see CANDIDATE_README for its layout)."""
    from graders.paths import REPO_ROOT
    repo = Path(repo or REPO_ROOT)
    out = Path(out)
    plan = plan_kit(repo, CANDIDATE_COMMANDS, strip_hidden=True)
    _prepare_out(out, force)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        _copy_tree(repo / "challenges", tmp / "challenges")
        for rel, text in plan.files.items():
            _write(tmp / rel, text)
        _write(tmp / "pyproject.toml", render_pyproject(
            "faultdrill-candidate",
            "faultdrill self-check for candidates: the visible checks of the faultdrill kit.",
            plan.deps, plan.extras))
        _write(tmp / "README.md", CANDIDATE_README.format(
            version=KIT_VERSION, commands=", ".join(f"`{c}`" for c in plan.commands)))
        from graders.checks.registry import CHALLENGES
        _write(tmp / ".github" / "workflows" / "faultdrill.yml", render_github_workflow(CHALLENGES))
        checks = _visible_ids(plan)
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        manifest = {"kind": "faultdrill-candidate-bundle", "kit_version": KIT_VERSION,
                    "commands": plan.commands, "checks": checks,
                    "interviewer_only_checks_removed": len(plan.removed_checks),
                    "dependencies": plan.deps,
                    "files": {f: hashlib.sha256((tmp / f).read_bytes()).hexdigest() for f in files}}
        _write(tmp / "BUNDLE.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        problems = verify_candidate_bundle(tmp, plan.hidden_markers)
        if problems:
            raise PackagingError("the bundle failed verification:\n  " + "\n  ".join(problems))
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return BundleInfo(root=out, files=files + ["BUNDLE.json"], checks=checks,
                      removed_checks=len(plan.removed_checks), deps=plan.deps)


def _visible_ids(plan: KitPlan) -> list[str]:
    ids = []
    for rel, text in plan.files.items():
        if rel.startswith("graders/checks/"):
            ids += [c["id"] for c in registered_checks(text, rel)]
    return sorted(ids)


# --------------------------------------------------------------------------- Gradescope

SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once while building the autograder image (as root, in the unzipped
# package, normally /autograder/source). It installs the vendored faultdrill kit into a
# virtual environment; wheels/ (if the package has one) makes it fully offline.
#
# Overrides (for testing outside Gradescope): FAULTDRILL_AUTOGRADER_ROOT (default
# /autograder), FAULTDRILL_PYTHON (interpreter), FAULTDRILL_VENV_ARGS (e.g.
# --system-site-packages), FAULTDRILL_PIP_ARGS (e.g. --no-index).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${FAULTDRILL_AUTOGRADER_ROOT:-/autograder}"
VENV="$ROOT/faultdrill-venv"

good_python() { command -v "$1" >/dev/null 2>&1 && "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
PY="${FAULTDRILL_PYTHON:-}"
if [ -z "$PY" ]; then
  for c in python3.13 python3.12 python3.11 python3; do
    if good_python "$c"; then PY="$c"; break; fi
  done
fi
if [ -z "$PY" ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq python3.11 python3.11-venv >/dev/null || true
  good_python python3.11 && PY=python3.11
fi
if [ -z "$PY" ]; then
  echo "faultdrill setup: no Python 3.11+ found and none could be installed" >&2
  exit 1
fi

# shellcheck disable=SC2086
if ! "$PY" -m venv ${FAULTDRILL_VENV_ARGS:-} "$VENV"; then
  # Debian/Ubuntu ship ensurepip separately.
  if command -v apt-get >/dev/null 2>&1; then
    ver="$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    apt-get install -y -qq "python$ver-venv" >/dev/null || apt-get install -y -qq python3-venv >/dev/null
  fi
  rm -rf "$VENV"
  "$PY" -m venv ${FAULTDRILL_VENV_ARGS:-} "$VENV"
fi

PIP_ARGS=(--disable-pip-version-check)
if compgen -G "$HERE/wheels/*.whl" >/dev/null; then
  # Offline: the wheelhouse holds the dependencies and the build backend (setuptools, wheel).
  PIP_ARGS+=(--no-index --find-links "$HERE/wheels")
fi
# Editable: the kit finds its rubric next to its code (graders/paths.py).
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install -q "${PIP_ARGS[@]}" ${FAULTDRILL_PIP_ARGS:-} -e "$HERE/faultdrill"
"$VENV/bin/faultdrill" --version
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this for every submission (from /autograder). It grades
# /autograder/submission with `faultdrill grade` and writes
# /autograder/results/results.json, also when grading cannot run (then with a message).
ROOT="${FAULTDRILL_AUTOGRADER_ROOT:-/autograder}"
PY="$ROOT/faultdrill-venv/bin/python"
if [ ! -x "$PY" ]; then
  msg="faultdrill-venv missing: setup.sh did not finish"
  echo "faultdrill autograder: INCOMPLETE: $msg" >&2
  mkdir -p "$ROOT/results" 2>/dev/null
  if ! { printf '%s\n' '{"score": 0, "output": "INCOMPLETE: GRADER ERROR: the autograder is not installed (setup.sh did not finish); this is not your fault, please tell the course staff.", "output_format": "text", "tests": [{"name": "grader error", "score": 0, "max_score": 0, "status": "failed", "output": "faultdrill-venv missing"}], "extra_data": {"incomplete": true, "failure": "grader"}}' > "$ROOT/results/results.json"; } 2>/dev/null; then
    echo "faultdrill autograder: cannot write $ROOT/results/results.json as uid $(id -u): run run_autograder as root (as Gradescope does) or make $ROOT/results writable" >&2
    exit 1
  fi
  exit 0
fi
exec "$PY" -m graders.packaging autograde --root "$ROOT"
"""

GRADESCOPE_README = """\
faultdrill Gradescope autograder (kit {version})

Upload this zip as a Gradescope "autograder" (Ubuntu base image). setup.sh installs the
kit from faultdrill/ into /autograder/faultdrill-venv{wheels_note}; run_autograder grades
the submission in /autograder/submission with `faultdrill grade` and writes
/autograder/results/results.json. The submission is the folder with a faultdrill.toml: at
the top of the upload, in a folder (a zipped folder), or beside the candidate bundle in a
repository (the bundle's own challenges/starter is skipped unless it is the only one);
two at the same level are refused with a message naming both. Set the assignment's
autograder points to 100: the score is 100 x the report's overall score. Candidates see
each visible check at once; the total, the top-level summary and the hidden checks only
once grades are published; instructors also see the run's stdout (score, suggested
level, cap, areas) and an "Interviewer summary" test with the whole report. Full reports
(report.html, report.md, junit.xml, grade.log) are kept in
/autograder/results/faultdrill/ (or a temporary folder, named in the output, when that
cannot be created). The seed is derived from the submission id, so a regrade
replays the same run; set FAULTDRILL_SEED to choose one. FAULTDRILL_GRADE_ARGS adds
arguments to `faultdrill grade` (e.g. "--runs 3"); FAULTDRILL_GRADE_TIMEOUT bounds the
run in seconds (default 2400).
"""


@dataclass
class ZipInfo:
    path: Path
    entries: list[str]
    deps: list[str]
    wheels: int


def _zip_add(zf: zipfile.ZipFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def build_gradescope_zip(out: Path, *, repo: Path | None = None, wheelhouse: Path | None = None,
                         force: bool = False) -> ZipInfo:
    """Write the Gradescope autograder package. Deterministic: same inputs, same bytes."""
    from graders.paths import REPO_ROOT
    repo = Path(repo or REPO_ROOT)
    out = Path(out)
    if out.exists() and not force:
        raise PackagingError(f"{out} exists (use --force to replace it)")
    plan = plan_kit(repo, AUTOGRADER_COMMANDS, strip_hidden=False, extra_entries=("graders.packaging",))
    if not (repo / "rubric" / "rubric.toml").is_file():
        raise PackagingError(f"{repo / 'rubric' / 'rubric.toml'} is missing: grading needs the rubric")
    entries: dict[str, tuple[bytes, int]] = {
        "setup.sh": (SETUP_SH.encode(), 0o755),
        "run_autograder": (RUN_AUTOGRADER.encode(), 0o755),
    }
    wheels = sorted(Path(wheelhouse).glob("*.whl")) if wheelhouse else []
    if wheelhouse:
        names = {w.name.split("-")[0].lower().replace("_", "-") for w in wheels}
        missing = [n for n in ["setuptools", "wheel", *(re.split(r"[<>=!~ ]", d)[0] for d in plan.deps)]
                   if n.replace("_", "-") not in names]
        if missing:
            raise PackagingError(f"--wheelhouse {wheelhouse} lacks wheels for: {', '.join(missing)} "
                                 "(an offline setup needs the dependencies and the build backend)")
    entries["README.txt"] = (GRADESCOPE_README.format(
        version=KIT_VERSION, wheels_note=" offline from wheels/" if wheels else "").encode(), 0o644)
    src = "faultdrill/"
    entries[src + "pyproject.toml"] = (render_pyproject(
        "faultdrill-autograder", "faultdrill grading kit packaged as a Gradescope autograder.",
        plan.deps, plan.extras).encode(), 0o644)
    for rel, text in plan.files.items():
        entries[src + rel] = (text.encode(), 0o644)
    # Only what scoring reads; the interviewer's prose stays out of the package.
    entries[src + "rubric/rubric.toml"] = ((repo / "rubric" / "rubric.toml").read_bytes(), 0o644)
    # The starter's code (candidate material): feedback points at its CHALLENGE(...) lines.
    for path in sorted((repo / "challenges" / "starter").glob("*.py")):
        entries[src + "challenges/starter/" + path.name] = (path.read_bytes(), 0o644)
    for w in wheels:
        entries["wheels/" + w.name] = (w.read_bytes(), 0o644)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name in sorted(entries):
            data, mode = entries[name]
            _zip_add(zf, name, data, mode)
    os.replace(tmp, out)
    return ZipInfo(path=out, entries=sorted(entries), deps=plan.deps, wheels=len(wheels))


# --------------------------------------------------------------------------- autograder run

class SubmissionLayoutError(Exception):
    """The upload holds no submission, or several that cannot be told apart (the message
    says what was found and what to upload)."""


# How deep, and through how many entries, an upload is searched for faultdrill.toml.
_SEARCH_DEPTH = 4
_SEARCH_ENTRIES = 20_000
# Folders that never hold a submission's manifest (tooling, dependencies, caches).
_SEARCH_SKIP = {"node_modules", "__pycache__", "venv", ".venv", "site-packages"}


def manifest_dirs(sub: Path) -> list[Path]:
    """Folders of `sub` (itself included) holding a regular-file faultdrill.toml, at most
    _SEARCH_DEPTH levels down, never through a symbolic link, hidden folders skipped."""
    found, seen = [], 0
    level = [sub]
    for _depth in range(_SEARCH_DEPTH + 1):
        nxt = []
        for d in level:
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                seen += 1
                if seen > _SEARCH_ENTRIES:
                    return found
                if e.name == "faultdrill.toml" and e.is_file(follow_symlinks=False):
                    found.append(Path(d))
                elif (e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
                      and e.name not in _SEARCH_SKIP):
                    nxt.append(Path(e.path))
        level = nxt
    return found


def _kit_owned(d: Path) -> bool:
    """The kit's own folders inside an upload (a candidate bundle or a kit checkout in a
    repository): its starter and its reference, never the candidate's work by default."""
    if d.name == "starter" and d.parent.name == "challenges" and (d.parent / "SPEC.md").is_file():
        return True
    return d.name == "reference_impl" and (d.parent / "graders").is_dir()


def find_submission(sub: Path) -> Path:
    """The candidate's folder in an upload: the one with a faultdrill.toml, at the top,
    in a folder (a zipped folder) or beside the candidate bundle in a repository. The
    bundle's own starter counts only when it is the only manifest (the candidate edited
    it in place). Raises SubmissionLayoutError when there is none or the choice is
    ambiguous: the shallowest manifests win, and of several at one level only a folder
    named `submission` (the bundle's convention) is taken, never a guess."""
    sub = Path(sub)
    if not sub.is_dir():
        raise SubmissionLayoutError(f"{sub} is not a folder: nothing was uploaded")
    found = manifest_dirs(sub)
    if not found:
        raise SubmissionLayoutError(
            f"no faultdrill.toml in the upload (searched {_SEARCH_DEPTH} folders deep). Upload the "
            "folder whose faultdrill.toml says how to start the four services (SPEC §3), or a "
            "repository holding it.")
    own = [d for d in found if not _kit_owned(d)]
    pool = own or [d for d in found if d.name == "starter"]
    if not pool:
        raise SubmissionLayoutError("the upload holds only the kit's own reference_impl; upload your submission")
    depth = min(len(d.relative_to(sub).parts) for d in pool)
    top = [d for d in pool if len(d.relative_to(sub).parts) == depth]
    if len(top) == 1:
        return top[0]
    named = [d for d in top if d.name == "submission"]
    if len(named) == 1:
        return named[0]
    listed = ", ".join(f"{d.relative_to(sub).as_posix()}/" for d in top[:6]) + (" ..." if len(top) > 6 else "")
    raise SubmissionLayoutError(
        f"the upload has {len(top)} folders with a faultdrill.toml at the same level ({listed}); "
        "keep only your submission, or name its folder submission/")


def replay_path_for(sub: Path, upload: Path) -> str:
    """The submission's folder as the candidate has it (relative to the upload), for the
    `faultdrill check` lines of the feedback."""
    try:
        rel = Path(sub).relative_to(upload).as_posix()
    except ValueError:
        return "PATH"
    return rel if rel not in ("", ".") else "."


def seed_for(root: Path) -> int:
    """FAULTDRILL_SEED, else from the Gradescope submission id (a regrade replays the same
    run), else from the clock. Printed in the results either way."""
    if os.environ.get("FAULTDRILL_SEED", "").strip():
        return int(os.environ["FAULTDRILL_SEED"])
    try:
        meta = json.loads((root / "submission_metadata.json").read_text(encoding="utf-8"))
        sid = str(meta["id"])
        return int(hashlib.sha256(sid.encode()).hexdigest(), 16) % 1_000_000
    except (OSError, ValueError, KeyError, TypeError):
        return int(time.time()) % 1_000_000


def failure_results(kind: str, message: str, *, seed: int | None, elapsed: float,
                    detail: str | None = None) -> dict:
    """results.json when no grade report exists. `kind` is "submission" (the candidate's
    upload cannot be graded: counts as a failed test) or "grader" (our fault: max_score 0,
    flagged so staff can regrade). `message` is shown to the candidate; `detail` (the
    grader's log, which names interviewer-only checks) only to instructors, in a hidden
    test."""
    grader = kind == "grader"
    head = ("INCOMPLETE: GRADER ERROR (not your fault; the course staff will regrade): " if grader
            else "Your submission could not be graded: ")
    hidden = [{
        "name": "grader log (instructors only)",
        "number": "0.2",
        "score": 0.0,
        "max_score": 0.0,
        "status": "failed",
        "output": detail,
        "output_format": "text",
        "visibility": "hidden",
    }] if detail else []
    return {
        "score": 0,
        "execution_time": round(elapsed, 3),
        "output": head + message,
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [{
            "name": "grader error" if grader else "submission: faultdrill.toml and services start",
            "number": "0.1",
            "score": 0.0,
            "max_score": 0.0 if grader else 1.0,
            "status": "failed",
            "output": message,
            "output_format": "text",
            "visibility": "visible",
        }] + hidden,
        "extra_data": {"seed": seed, "kit_version": KIT_VERSION, "failure": kind, "incomplete": grader},
    }


def refusal_message(log_tail: str, folder: str) -> str:
    """What a candidate reads when `faultdrill grade` refused the upload (exit 2): its
    last line without the command's name (candidates do not have `grade`), and the
    self-check command that shows the same message."""
    lines = [ln.strip() for ln in log_tail.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else "the submission's faultdrill.toml could not be used"
    last = re.sub(r"^faultdrill grade:\s*(cannot grade:\s*)?", "", last)
    return f"{last}\nRun `faultdrill check {folder}` on your machine to see the same message."


class ResultsUnwritable(Exception):
    """results.json cannot be written at all (the message says why and what to do)."""


def _why_unwritable(path: Path) -> str:
    d = path.parent
    try:
        st = d.stat()
        owner = f"{d} is owned by uid {st.st_uid} with mode {st.st_mode & 0o7777:o}"
    except OSError as exc:
        owner = f"{d}: {exc.strerror or exc}"
    return (f"cannot write {path}: {owner} and this process runs as uid {os.getuid()}. Run "
            f"run_autograder as root (as Gradescope does), or make {d} writable for this user.")


def results_writable(path: Path) -> str | None:
    """None when results.json can be written (atomically in its folder, or in place into
    an existing writable file), else the reason, in one sentence."""
    d = path.parent
    if not d.exists():
        try:
            d.mkdir(parents=True)
        except OSError:
            return _why_unwritable(path)
    if os.access(d, os.W_OK | os.X_OK):
        return None
    if path.is_file() and os.access(path, os.W_OK):
        return None
    return _why_unwritable(path)


def write_results(path: Path, obj: dict) -> None:
    """Write results.json: a new file renamed into place when the folder is writable,
    else into the existing file (a results/ folder owned by another user with a
    results.json this user may write). Raises ResultsUnwritable otherwise."""
    text = json.dumps(obj, indent=2, default=str) + "\n"
    tmp = path.with_name("." + path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        return
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
    try:
        with open(path, "r+", encoding="utf-8") as fh:
            fh.truncate(0)
            fh.write(text)
    except OSError:
        raise ResultsUnwritable(_why_unwritable(path)) from None


_atomic_json = write_results


def _work_dir(results: Path) -> tuple[Path, str | None]:
    """Where the full reports go: results/faultdrill, or a fresh temporary folder (and a
    note saying so) when that cannot be created."""
    work = results / "faultdrill"
    try:
        work.mkdir(parents=True, exist_ok=True)
        if os.access(work, os.W_OK | os.X_OK):
            return work, None
    except OSError:
        pass
    import tempfile
    tmp = Path(tempfile.mkdtemp(prefix="faultdrill-autograde-"))
    return tmp, f"{work} cannot be written; the full reports are in {tmp}"


def _say(text: str) -> None:
    """Instructor-facing output: Gradescope shows run_autograder's stdout to staff only."""
    print(text, flush=True)


# After the grade's time bound: SIGTERM lets `faultdrill grade` stop the candidate's
# services and clean up; this long later its whole process group is killed.
_TERM_GRACE_S = 30.0


def _run_bounded(cmd, out, timeout: float) -> int | None:
    """Run `cmd` in its own session with stdout/stderr to `out`; its exit status, or None
    when it outlived `timeout` (then it was stopped: SIGTERM, then SIGKILL to its group)."""
    import signal
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=_TERM_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        return None
    except BaseException:
        # Interrupted (Ctrl-C while testing by hand): never leave the grade running.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        raise


def autograde(root: Path, *, timeout: float | None = None) -> int:
    """Grade the upload in root/submission into root/results/results.json. Writes
    results.json whatever happened and returns 0; returns 1, with one clear message and
    no traceback, only when results.json cannot be written at all."""
    t0 = time.monotonic()
    root = Path(root)
    results = root / "results"
    target = results / "results.json"
    problem = results_writable(target)
    if problem:
        print(f"faultdrill autograder: {problem}", file=sys.stderr, flush=True)
        _say(f"faultdrill autograder: no results.json written: {problem}")
        return 1
    seed = None
    final: dict | None = None
    try:
        work, note = _work_dir(results)
        if note:
            _say(f"faultdrill autograder: {note}")
        seed = seed_for(root)
        upload = root / "submission"
        try:
            sub = find_submission(upload)
        except SubmissionLayoutError as exc:
            final = failure_results("submission", str(exc), seed=seed, elapsed=time.monotonic() - t0)
            return 0
        _say(f"faultdrill autograder: grading {sub} (seed {seed})")
        timeout = timeout or float(os.environ.get("FAULTDRILL_GRADE_TIMEOUT", "") or 2400)
        cmd = [sys.executable, "-m", "graders.cli", "grade", str(sub), "--out", str(work),
               "--seed", str(seed), *shlex.split(os.environ.get("FAULTDRILL_GRADE_ARGS", ""))]
        # The log is written beside the report directory and moved into it afterwards:
        # `faultdrill grade` empties its --out of earlier results before grading.
        log = work.parent / f".faultdrill-grade-{os.getpid()}.log"
        if not os.access(work.parent, os.W_OK):
            log = work / "grade.log"
        with open(log, "wb") as fh:
            code = _run_bounded(cmd, fh, timeout)
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        # An `--only` run (FAULTDRILL_GRADE_ARGS) writes to a new `<out>-replay-<time>`.
        replays = sorted(work.parent.glob(work.name + "-replay-*"), key=lambda p: p.stat().st_mtime)
        if not (work / "results.json").is_file() and replays:
            work = replays[-1]
        if log != work / "grade.log":
            os.replace(log, work / "grade.log")
        report = work / "results.json"
        # faultdrill grade: 0 all passed, 1 some failed, 3 incomplete (the report says
        # INCOMPLETE); 2 is a usage error (the upload's manifest cannot be read).
        if code in (0, 1, 3) and report.is_file():
            from graders.report.gradescope import for_gradescope, instructor_stdout
            data = json.loads(report.read_text(encoding="utf-8"))
            md = work / "report.md"
            final = for_gradescope(
                data, report_md=md.read_text(encoding="utf-8") if md.is_file() else None,
                replay_path=replay_path_for(sub, upload),
                seed_note=f"Seed {seed}: `faultdrill check {replay_path_for(sub, upload)} --seed {seed}` "
                          "replays the visible checks on your machine; each failed check shows the "
                          "command for its challenge.")
            _say(instructor_stdout(data))
            _say(f"full reports: {work}")
        elif code == 2:
            final = failure_results("submission", refusal_message(tail, replay_path_for(sub, upload)),
                                    seed=seed, elapsed=time.monotonic() - t0, detail=tail)
        else:
            why = (f"grading did not finish within {timeout:.0f} s" if code is None
                   else f"the grader stopped before writing a report (exit status {code})")
            final = failure_results("grader", why, seed=seed, elapsed=time.monotonic() - t0,
                                    detail=tail)
    except Exception as exc:  # noqa: BLE001 - results.json must exist whatever happened
        final = failure_results("grader", f"{type(exc).__name__}: {exc}", seed=seed,
                                elapsed=time.monotonic() - t0)
    finally:
        if final is not None:
            if final.get("extra_data", {}).get("failure"):
                _say(f"faultdrill autograder: {final['output']}")
                for t in final.get("tests", []):
                    if t.get("visibility") == "hidden" and t.get("output"):
                        _say(t["output"])
            try:
                write_results(target, final)
            except ResultsUnwritable as exc:
                print(f"faultdrill autograder: {exc}", file=sys.stderr, flush=True)
                return 1
    return 0


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m graders.packaging")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("autograde", help="Gradescope run_autograder entry point")
    a.add_argument("--root", type=Path, default=Path(os.environ.get("FAULTDRILL_AUTOGRADER_ROOT", "/autograder")))
    args = p.parse_args(argv)
    return autograde(args.root)


if __name__ == "__main__":
    sys.exit(main())
