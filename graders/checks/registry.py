"""The check registry: every check declares what it evidences, once, next to its code.

Why a registry rather than a list in the rubric: a check's id, stage, challenge and the
rubric items it evidences live in one decorator, so the rubric, the scorer, `check`
(staged, visible only) and `grade` (everything) all read the same facts, and a test can
prove that every check is referenced by the rubric and every rubric check id exists.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

CHALLENGES = (
    "pipeline-basics",
    "idempotency",
    "bad-tokens",
    "schema-drift",
    "dropped-sockets",
    "crash-restart",
    "corrupt-memory",
    "observability",
    "overload",
    "tls-shutdown",
)

VISIBILITIES = ("visible", "hidden")


class CheckFailed(Exception):
    """The submission did something the contract forbids. Counted against the candidate.

    Carries the evidence a person needs to see the defect without rerunning anything:
    what was sent, what was expected, what came back, and a hint for the usual mistake.
    """

    def __init__(self, message: str, *, sent=None, expected=None, received=None,
                 hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.sent = sent
        self.expected = expected
        self.received = received
        self.hint = hint


class GraderError(Exception):
    """The grader could not run a check (its own fault or the machine's), never the
    candidate's; reported apart and excluded from scores."""


@dataclass(frozen=True)
class CheckSpec:
    id: str
    title: str
    func: Callable
    items: tuple[str, ...]
    weight: float
    visibility: str
    stage: int
    challenge: str
    timeout: float
    needs_shared: bool = True
    doc: str = ""
    # The drivers under which the check can observe what it checks (None: every driver).
    # Under any other driver the check is not run and every report says so: it is left
    # out of the score, never a pass and never a grader error.
    drivers: tuple[str, ...] | None = None


_REGISTRY: dict[str, CheckSpec] = {}


def check(*, id: str, title: str, items: list[str] | tuple[str, ...], weight: float = 1.0,
          visibility: str = "visible", stage: int, challenge: str, timeout: float = 20.0,
          needs_shared: bool = True, drivers: tuple[str, ...] | None = None):
    """Register a check function `func(ctx) -> None` (raise CheckFailed to fail)."""
    if visibility not in VISIBILITIES:
        raise ValueError(f"check {id}: visibility must be one of {VISIBILITIES}")
    if challenge not in CHALLENGES:
        raise ValueError(f"check {id}: unknown challenge {challenge!r}")
    if weight <= 0:
        raise ValueError(f"check {id}: weight must be positive")
    if not items:
        raise ValueError(f"check {id}: must evidence at least one rubric item")

    def register(func):
        if id in _REGISTRY and _REGISTRY[id].func is not func:
            raise ValueError(f"duplicate check id {id}")
        _REGISTRY[id] = CheckSpec(id=id, title=title, func=func, items=tuple(items),
                                  weight=float(weight), visibility=visibility, stage=stage,
                                  challenge=challenge, timeout=timeout,
                                  needs_shared=needs_shared,
                                  doc=(func.__doc__ or "").strip(),
                                  drivers=tuple(drivers) if drivers else None)
        return func

    return register


def runs_under(spec: CheckSpec, driver: str) -> bool:
    """Whether `spec` can observe what it checks under `driver` (see CheckSpec.drivers)."""
    return spec.drivers is None or driver in spec.drivers


def all_checks() -> list[CheckSpec]:
    """Every registered check, in stage order then declaration order."""
    _load_modules()
    order = {cid: i for i, cid in enumerate(_REGISTRY)}
    return sorted(_REGISTRY.values(), key=lambda c: (c.stage, order[c.id]))


def get_check(check_id: str) -> CheckSpec:
    _load_modules()
    return _REGISTRY[check_id]


def _load_modules() -> None:
    # Importing the area modules runs their decorators. Done lazily so that the registry
    # module itself stays import-cheap (the rubric command needs only ids).
    from graders.checks import ALL_MODULES  # noqa: F401  (import for side effect)
