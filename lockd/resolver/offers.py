"""Does a variant index have builds of what a request pins? `cuda=auto` asks it per variant.

For each torch-family project the request names directly (or torch itself, when it names
none), the variant's index page must hold a version the request's specifier and constraints
allow with a file that installs on the target: the same `Finder` the resolution would use.
The answer is None (it has) or why not, in words.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name

from lockd.accelerator import Accelerator
from lockd.errors import UnknownProject
from lockd.inputs import InputRequirement, LockOptions
from lockd.intake import OffersFor
from lockd.resolver.dependencies import marker_true
from lockd.resolver.finder import Finder
from lockd.resolver.provider import IndexSource
from lockd.routing import IndexPlan
from lockd.target import Target, VariantOffers

__all__ = ["variant_offers"]

_TORCH = canonicalize_name("torch")


def _asked(
    requirements: Sequence[InputRequirement], target: Target, family: frozenset[NormalizedName]
) -> dict[NormalizedName, SpecifierSet]:
    asked: dict[NormalizedName, SpecifierSet] = {}
    for item in requirements:
        marker = item.requirement.marker
        if item.name in family and (marker is None or marker_true(target, marker, "")):
            asked[item.name] = asked.get(item.name, SpecifierSet()) & item.requirement.specifier
    return asked or {_TORCH: SpecifierSet()}


def variant_offers(index: IndexSource, plan_for_target: Callable[[Target], IndexPlan]) -> OffersFor:
    """`lockd.intake`'s `offers`: per request, whether each variant's index has its builds."""

    def for_request(
        requirements: Sequence[InputRequirement],
        constraints: Sequence[InputRequirement],
        options: LockOptions,
    ) -> VariantOffers:
        return _offers(index, plan_for_target, requirements, constraints, options)

    return for_request


def _offers(
    index: IndexSource,
    plan_for_target: Callable[[Target], IndexPlan],
    requirements: Sequence[InputRequirement],
    constraints: Sequence[InputRequirement],
    options: LockOptions,
) -> VariantOffers:
    def offers(base: Target, variant: Accelerator) -> str | None:
        target = replace(base, variant=variant)
        plan = plan_for_target(target)
        for name, asked in _asked(requirements, target, plan.family).items():
            specifier = asked
            for constraint in constraints:
                if constraint.name == name:
                    specifier &= constraint.requirement.specifier
            try:
                page = index.project_page(plan.index_for(name), name)
            except UnknownProject:
                return f"its index has no {name}"
            finder = Finder(name, page, target, as_of=options.as_of, prereleases=options.prereleases)
            if not finder.candidates(specifier, None):
                return f"no {name}{specifier} build for {target.platform.name}, Python {target.python_text}"
        return None

    return offers
