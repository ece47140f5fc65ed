"""The `faultdrill` command line: one entry point, one module per subcommand.

Each subcommand lives in `graders/commands/<name>.py` and exposes `HELP`,
`add_arguments(parser)` and `run(args) -> int`. Modules are imported lazily so that
`faultdrill --help` stays fast and a broken optional command (e.g. Docker support on a
machine without the SDK) cannot take the others down.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from graders import KIT_VERSION

#: One exit-status convention for every command (RULES.md, README "Exit status").
EXIT_STATUS = ("exit status (grade, check, task and the other commands): 0 completed, every "
               "check passed; 1 completed, some checks failed; 2 usage error (bad arguments, "
               "missing or unreadable input); 3 incomplete (a grader error, a failed preflight: "
               "missing dependency, no Docker engine, no sandbox; leftover processes); "
               "130 interrupted (Ctrl-C)")
EXIT_INCOMPLETE = 3

# Order is the order shown in --help: the interviewer's and candidate's everyday commands
# first, then the tools around them.
SUBCOMMANDS = (
    ("demo", "graders.commands.demo"),
    ("up", "graders.commands.up"),
    ("fault", "graders.commands.fault"),
    ("drill", "graders.commands.drill"),
    ("bughunt", "graders.commands.bughunt"),
    ("task", "graders.commands.task"),
    ("grade", "graders.commands.grade"),
    ("round", "graders.commands.round"),
    ("check", "graders.commands.check"),
    ("rubric", "graders.commands.rubric"),
    ("calibrate", "graders.commands.calibrate"),
    ("bundle", "graders.commands.bundle"),
    ("gradescope", "graders.commands.gradescope"),
    ("clean", "graders.commands.clean"),
)


def _available():
    """Yield (name, module) for every subcommand whose module imports."""
    for name, modname in SUBCOMMANDS:
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:  # not built (yet): absent, never faked
                continue
            raise
        yield name, module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faultdrill",
        description="faultdrill: a fault-injecting interview kit for distributed-systems "
        "engineering: run a system, inject faults, check it against the contract.",
        epilog=EXIT_STATUS,
    )
    parser.add_argument("--version", action="version", version=f"faultdrill {KIT_VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _available():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("faultdrill: interrupted; everything started was stopped.", file=sys.stderr)
        return 130
    except BrokenPipeError:             # `faultdrill ... | head`: the reader left
        return 0
    except Exception:  # noqa: BLE001 - a bug in the kit, never the user's mistake
        # Exit 3 (incomplete), not Python's 1, which would read as "some checks failed".
        print("faultdrill: internal error (a bug in the kit, not in what you gave it; "
              "please report it with this traceback):\n" + traceback.format_exc().rstrip(), file=sys.stderr)
        return EXIT_INCOMPLETE


if __name__ == "__main__":
    sys.exit(main())
