"""The Docker tests' one precondition: a running engine. Without one a test is skipped,
unless FAULTDRILL_REQUIRE_DOCKER=1 (CI, which installs an engine): then it fails, so a
missing engine can never pass as green."""
from __future__ import annotations

import os

import pytest


def require_engine() -> None:
    from graders.drivers.docker import ensure_engine
    ok, reason = ensure_engine()
    if not ok:
        if os.environ.get("FAULTDRILL_REQUIRE_DOCKER") == "1":
            pytest.fail(f"FAULTDRILL_REQUIRE_DOCKER=1 but no Docker engine: {reason}")
        pytest.skip(f"no Docker engine can run here: {reason}")
