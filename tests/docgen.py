"""The command line of a generated document (docs/DEFECT_MATRIX.md, docs/RULE_COVERAGE.md):
print it, or `--write` it where the test that keeps it identical expects it."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable


def main(render: Callable[[], str], doc: Path, argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if argv[:1] == ["--write"]:
        doc.write_text(text, encoding="utf-8")
        print(f"wrote {doc}")
    else:
        sys.stdout.write(text)
    return 0
