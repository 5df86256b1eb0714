"""Which other package ruled out the versions of a conflict's side that would have fitted.

A conflict names two sides: `a 3.0 requires b==3, but line 2 asks for b>=2,<3`. That is true
and useless when versions of `a` that need a `b` in range (2.0 … 2.3) exist: the real cause is
a third package, say `c`, whose every version requires `a<2` or `a>=3`. uv names it; so does
this. The versions considered are those the request's own lines (and constraints) allow, the
target installs and the resolver did not try; a third package rules one out when every version
of it whose dependencies were read excludes it. Costs one pass over the recorded demands.
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
    """`c 1.0 (requires a<2) and c 2.0 (requires a>=3) rule out a 2.1, 2.0`, or None."""
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
    untried = {c.version for c in allowed if c.version not in tried}
    by_project: dict[NormalizedName, list[tuple[ProjectCandidate, ProjectRequirement]]] = {}
    for parent, requirement in demands:
        if parent is not None and parent.name != name and parent.name not in conflict:
            by_project.setdefault(parent.name, []).append((parent, requirement))
    found: list[str] = []
    for third, asked in sorted(by_project.items()):
        ruled_out = _ruled_out_by_every_version(provider, third, asked, untried)
        if ruled_out:
            ordered = sorted(asked, key=lambda pair: pair[0].version)
            who = list(dict.fromkeys(f"{describe_candidate(p)} (requires {r})" for p, r in ordered))
            versions = sorted(ruled_out, reverse=True)
            shown = ", ".join(str(v) for v in versions[:_SHOWN]) + (" …" if len(versions) > _SHOWN else "")
            verb = "rules" if len(who) == 1 else "rule"
            found.append(f"{' and '.join(who[:_SHOWN])} {verb} out {name} {shown}")
    return "; ".join(found) or None


def _ruled_out_by_every_version(
    provider: Provider,
    third: NormalizedName,
    asked: list[tuple[ProjectCandidate, ProjectRequirement]],
    untried: set[Version],
) -> set[Version]:
    """The untried versions that no read version of `third` allows."""
    left = set(untried)
    for version in provider.demands.versions_read(third):
        specifiers = [r.specifier for p, r in asked if p.version == version]
        # A version of `third` that did not ask for the project at all allows every version of it.
        left &= {v for v in untried if any(not s.contains(v, prereleases=True) for s in specifiers)}
    return left
