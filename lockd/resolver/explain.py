"""Why a resolution failed, as a `LockdError` a person can act on.

resolvelib's `ResolutionImpossible.causes` carries structured data (which requirement, asked
by which candidate); the message is built here, at the edge, as resolvelib's docs advise. A
requirement with no candidate at all becomes `NoMatchingDistribution` saying why its newest
matching version does not install on the target; versions whose metadata pip would refuse
say so; anything else is a `ResolutionImpossible` naming both sides of the conflict. Only the
public reads of `Provider` and `Finder` are used.
"""

from __future__ import annotations

from typing import Any

import resolvelib

from lockd.errors import LockdError, NoMatchingDistribution, ResolutionImpossible
from lockd.resolver.candidates import (
    AnyCandidate,
    AnyRequirement,
    InvalidMetadata,
    ProjectCandidate,
    ProjectRequirement,
    PythonRequirement,
)
from lockd.resolver.provider import Provider, RequirementInfo

__all__ = ["describe_demand", "explain_impossible"]


def describe_demand(parent: AnyCandidate | None, requirement: AnyRequirement) -> str:
    """Who asks for `requirement`, in words: a request line, or a candidate's metadata."""
    if isinstance(requirement, InvalidMetadata):
        return str(requirement)
    if isinstance(requirement, PythonRequirement):
        who = f"{parent.name} {parent.version}" if isinstance(parent, ProjectCandidate) else "a dependency"
        return f"{who} requires Python{requirement.specifier}"
    if parent is None:
        if requirement.source is not None:
            return requirement.source.describe()
        return f"the request asks for {requirement}"
    assert isinstance(parent, ProjectCandidate)
    return f"{parent.name} {parent.version} requires {requirement}"


def explain_impossible(
    provider: Provider, exc: resolvelib.ResolutionImpossible[AnyRequirement, AnyCandidate]
) -> LockdError:
    """The `LockdError` for resolvelib's `ResolutionImpossible`."""
    causes: list[RequirementInfo] = list(exc.causes)
    identities = {c.requirement.identity for c in causes}
    invalid = [c.requirement for c in causes if isinstance(c.requirement, InvalidMetadata)]
    if invalid and len(invalid) == len(causes):
        return _explain_invalid_metadata(provider, invalid)
    if len(identities) == 1:
        for cause in causes:
            if isinstance(cause.requirement, ProjectRequirement):
                empty = _explain_empty(provider, cause.requirement, cause.parent)
                if empty is not None:
                    return empty
    # The dependency's demand first, then what the user asked for: "X requires A, but line 1 asks for B".
    ordered = sorted(causes, key=lambda c: (c.parent is None, describe_demand(c.parent, c.requirement)))
    described = list(dict.fromkeys(describe_demand(c.parent, c.requirement) for c in ordered))
    message = described[0] if len(described) == 1 else described[0] + ", but " + " and ".join(described[1:])
    return ResolutionImpossible(
        message,
        hint="relax one of these requirements",
        context={
            "conflicts": [_conflict(cause) for cause in causes],
            "target": provider.target.to_json(),
        },
    )


def _conflict(cause: RequirementInfo) -> dict[str, Any]:
    requirement = cause.requirement
    source = None
    if isinstance(requirement, ProjectRequirement) and requirement.source is not None:
        source = {"source": requirement.source.source, "line": requirement.source.line}
    return {
        "requirement": str(requirement),
        "required_by": None if cause.parent is None else str(cause.parent),
        "source": source,
    }


def _explain_empty(
    provider: Provider, requirement: ProjectRequirement, parent: AnyCandidate | None
) -> LockdError | None:
    """A `NoMatchingDistribution` when this one requirement has no candidate at all."""
    if provider.candidates_for(requirement):
        return None
    finder = provider.finder(requirement.name)
    specifier = provider.specifier_for(requirement.name, [requirement])
    who = describe_demand(parent, requirement)
    on_index = sorted(finder.page.versions, reverse=True)
    matching = [v for v in on_index if specifier.contains(v, prereleases=True)]
    context: dict[str, Any] = {
        "project": requirement.name,
        "requirement": str(requirement),
        "required_by": who,
        "index": finder.page.index_url,
        "target": provider.target.to_json(),
    }
    if not matching:
        shown = ", ".join(str(v) for v in on_index[:8]) or "none"
        constrained = " (with constraints)" if requirement.name in provider.constraints else ""
        return NoMatchingDistribution(
            f"no version of {requirement.name} matches {specifier or 'any version'}{constrained}: {who}; "
            f"the index has {shown}",
            context={**context, "available": [str(v) for v in on_index[:50]]},
        )
    reason = finder.why_not(matching[0])
    return NoMatchingDistribution(
        f"{reason} ({who})",
        hint="pick another version, or a target that version supports",
        context={**context, "versions": [str(v) for v in matching[:50]]},
    )


def _explain_invalid_metadata(provider: Provider, invalid: list[InvalidMetadata]) -> NoMatchingDistribution:
    """Every version left to try has metadata pip would refuse."""
    newest = max(invalid, key=lambda r: r.version)
    versions = sorted({r.version for r in invalid}, reverse=True)
    return NoMatchingDistribution(
        f"no usable version of {newest.name}: {newest}"
        + (f" (and so does {', '.join(str(v) for v in versions[1:8])})" if len(versions) > 1 else ""),
        hint="pin a version whose metadata is valid, or ask its maintainers to fix the metadata",
        context={
            "project": newest.name,
            "versions": [str(v) for v in versions[:50]],
            "requires_dist": newest.line,
            "reason": newest.reason,
            "metadata_problem": newest.code,
            "target": provider.target.to_json(),
        },
    )
