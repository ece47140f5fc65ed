"""Where the kit's own files live.

faultdrill runs from a checkout (installed editable), so data that is not Python code —
the SPEC, schemas, challenges, rubric, the reference's manifest — is found relative to
the repository root rather than packaged.
"""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CHALLENGES = REPO_ROOT / "challenges"
SPEC = CHALLENGES / "SPEC.md"
SCHEMAS = CHALLENGES / "schemas"
RUBRIC_DIR = REPO_ROOT / "rubric"
REFERENCE = REPO_ROOT / "reference_impl"
STARTER = CHALLENGES / "starter"
