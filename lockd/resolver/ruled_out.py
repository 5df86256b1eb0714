"""Which other packages ruled out the versions of a conflict's side that would have fitted.

A conflict names two sides: `a 3.0 requires b==3, but line 2 asks for b>=2,<3`. That is true
and useless when the versions of `a` that need a `b` in range (2.0 … 2.3) exist: the real
cause is a third package, say `c`, whose every version requires `a<2` or `a>=3`. uv names it;
so does this. The versions considered are those the request's own lines (and constraints)
allow and the target installs; a third package is any other candidate whose recorded demand
on the side's project excludes some of them. Costs one pass over the recorded demands.
"""

from __future__ import annotations

from collections.abc import Sequence

from packaging.utils import NormalizedName
from packaging.version import Version

from lockd.errors import LockdError
from lockd.resolver.candidates import ProjectCandidate, ProjectRequirement
from lockd.resolver.chain import describe_candidate
from lockd.resolver.provider import Provider, RequirementInfo

__all__ = ["ruled_out_by"]

_SHOWN = 8


def ruled_out_by(provider: Provider, causes: Sequence[RequirementInfo]) -> str | None:
    """`c 1.0 (requires a<2) and c 2.0 (requires a>=3) rule out a 2.0, 2.1`, or None."""
    conflict = {c.requirement.name for c in causes if isinstance(c.requirement, ProjectRequirement)}
    tried: dict[NormalizedName, set[Version]] = {}
    for cause in causes:
        if isinstance(cause.parent, ProjectCandidate):
            tried.setdefault(cause.parent.name, set()).add(cause.parent.version)
    found = [
        text
        for name, versions in sorted(tried.items())
        if (text := _ruled_out_for(provider, name, versions, conflict)) is not None
    ]
    return "; ".join(found) or None


def _ruled_out_for(
    provider: Provider, name: NormalizedName, tried: set[Version], conflict: set[NormalizedName]
) -> str | None:
    demands = provider.demands.demands_on(name)
    roots = [r for parent, r in demands if parent is None]
    try:
        allowed = provider.finder(name).candidates(provider.specifier_for(name, roots), None)
    except LockdError:
        return None  # the page is gone or unreadable now: name no third package rather than guess
    untried = [c.version for c in allowed if c.version not in tried]
    third: list[tuple[ProjectCandidate, ProjectRequirement, list[Version]]] = []
    for parent, requirement in demands:
        if parent is None or parent.name == name or parent.name in conflict:
            continue
        excluded = [v for v in untried if not requirement.specifier.contains(v, prereleases=True)]
        if excluded:
            third.append((parent, requirement, excluded))
    if not third:
        return None
    versions = sorted({v for _, _, excluded in third for v in excluded}, reverse=True)
    shown = ", ".join(str(v) for v in versions[:_SHOWN]) + (" …" if len(versions) > _SHOWN else "")
    who = list(
        dict.fromkeys(
            f"{describe_candidate(parent)} (requires {requirement})" for parent, requirement, _ in third
        )
    )
    verb = "rules" if len(who) == 1 else "rule"
    return f"{' and '.join(who[:_SHOWN])} {verb} out {name} {shown}"
