"""Intake: request text and a loose target spec → one normalised `LockRequest`.

Every way into lockd (`POST /lock`, `lockd lock`, refresh of a stored input) builds its request
here, from explicit values: the requirements and constraints text, the target as given, which
index plan a target gets (`Settings.index_plan`) and the requirements limit. It reads no
settings and imports no index client, so a request is the same value whoever builds it.
`cuda=auto` asks the caller's `offers` (`lockd.resolver.variant_offers` over an index) which
variants have builds of what the request pins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from lockd.errors import InvalidRequest
from lockd.inputs import InputRequirement, LockOptions, LockRequest, parse_requirements
from lockd.routing import IndexPlan
from lockd.target import Target, VariantOffers, choose_target

__all__ = ["OffersFor", "build_request"]

# (requirements, constraints, options) → the `offers` answer of `lockd.target.choose_target`.
OffersFor = Callable[[Sequence[InputRequirement], Sequence[InputRequirement], LockOptions], VariantOffers]


def build_request(
    *,
    requirements: str,
    target: Mapping[str, object],
    index_plan: Callable[[Target], IndexPlan],
    constraints: str = "",
    options: LockOptions | None = None,
    max_requirements: int | None = None,
    offers: OffersFor | None = None,
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
    options = options or LockOptions()
    answer = None if offers is None else offers(parsed, parsed_constraints, options)
    resolved_target, selection = choose_target(target, offers=answer)
    return LockRequest(
        requirements=parsed,
        constraints=parsed_constraints,
        target=resolved_target,
        plan=index_plan(resolved_target),
        options=options,
        selection=selection,
    )
