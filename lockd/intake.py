"""Intake: request text and a loose target spec → one normalised `LockRequest`.

Every way into lockd (`POST /lock`, `lockd lock`, refresh of a stored input) builds its request
here, from explicit values: the requirements and constraints text, the target as given, which
index plan a target gets (`Settings.index_plan`) and the requirements limit. It reads no
settings and imports no index client, so a request is the same value whoever builds it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from lockd.errors import InvalidRequest
from lockd.inputs import LockOptions, LockRequest, parse_requirements
from lockd.routing import IndexPlan
from lockd.target import Target, target_from_spec

__all__ = ["build_request"]


def build_request(
    *,
    requirements: str,
    target: Mapping[str, object],
    index_plan: Callable[[Target], IndexPlan],
    constraints: str = "",
    options: LockOptions | None = None,
    max_requirements: int | None = None,
) -> LockRequest:
    """The `LockRequest` for this text and target; `index_plan` routes the target's projects."""
    parsed = parse_requirements(requirements, max_requirements=max_requirements)
    if not parsed:
        raise InvalidRequest(
            "no requirements given", hint="send a requirements.in with at least one project name"
        )
    parsed_constraints = parse_requirements(
        constraints, source="constraints.txt", max_requirements=max_requirements
    )
    resolved_target = target_from_spec(target)
    return LockRequest(
        requirements=parsed,
        constraints=parsed_constraints,
        target=resolved_target,
        plan=index_plan(resolved_target),
        options=options or LockOptions(),
    )
