"""Why a resolution failed, as a `LockdError` a person can act on.

resolvelib's `ResolutionImpossible.causes` carries structured data (which requirement, asked
by which candidate); the message is built here, at the edge, as resolvelib's docs advise.
Each message names who asked, as a chain from the request line down (`DemandLog`):

- a project the index does not have: `UnknownProject`, with the chain that reached it;
- versions ruled out because their metadata is unparsable or needs a build:
  `NoMatchingDistribution` or `SdistNeedsBuild`, the newest with its reason;
- a requirement with no candidate at all: `NoMatchingDistribution` saying why its newest
  matching version does not install on the target (with the wheel tags that do exist);
- anything else: `ResolutionImpossible` naming both sides of the conflict, the extra that
  brought a side in, and the other packages whose requirements rule out the versions of a
  side that would have fitted (`ruled_out_by`).

Only the public reads of `Provider`, `Finder` and `DemandLog` are used.
"""

from __future__ import annotations

from typing import Any

import resolvelib

from lockd.errors import (
    LockdError,
    NoMatchingDistribution,
    ResolutionImpossible,
    SdistNeedsBuild,
    UnknownProject,
)
from lockd.resolver.candidates import (
    AnyCandidate,
    AnyRequirement,
    InvalidMetadata,
    MetadataUnavailable,
    ProjectCandidate,
    ProjectRequirement,
    PythonRequirement,
)
from lockd.resolver.chain import ARROW, describe_candidate
from lockd.resolver.provider import Provider, RequirementInfo
from lockd.resolver.ruled_out import ruled_out_by

__all__ = ["describe_demand", "explain_impossible"]

_SHOWN = 8


def describe_demand(parent: AnyCandidate | None, requirement: AnyRequirement) -> str:
    """Who asks for `requirement`, in words: a request line, or a candidate's metadata."""
    if isinstance(requirement, InvalidMetadata | MetadataUnavailable):
        return str(requirement)
    if isinstance(requirement, PythonRequirement):
        who = describe_candidate(parent) if isinstance(parent, ProjectCandidate) else "a dependency"
        return f"{who} requires Python{requirement.specifier}"
    if parent is None:
        if requirement.source is not None:
            return requirement.source.describe()
        return f"the request asks for {requirement}"
    assert isinstance(parent, ProjectCandidate)
    return f"{describe_candidate(parent)} requires {requirement}"


def explain_impossible(
    provider: Provider, exc: resolvelib.ResolutionImpossible[AnyRequirement, AnyCandidate]
) -> LockdError:
    """The `LockdError` for resolvelib's `ResolutionImpossible`."""
    causes: list[RequirementInfo] = list(exc.causes)
    unusable = [c for c in causes if isinstance(c.requirement, InvalidMetadata | MetadataUnavailable)]
    if unusable and len(unusable) == len(causes):
        return _explain_unusable(provider, causes)
    identities = {c.requirement.identity for c in causes}
    if len(identities) == 1:
        missing = _explain_missing(provider, causes)
        if missing is not None:
            return missing
        for cause in causes:
            if isinstance(cause.requirement, ProjectRequirement):
                empty = _explain_empty(provider, cause.requirement, cause.parent)
                if empty is not None:
                    return empty
    return _explain_conflict(provider, causes)


def _chained(provider: Provider, parent: AnyCandidate | None, requirement: AnyRequirement) -> str:
    """The demand in words, after the chain that reached its parent when the user did not name it."""
    text = describe_demand(parent, requirement)
    if not isinstance(parent, ProjectCandidate):
        return text
    chain = provider.demands.chain_to(parent)
    return ARROW.join([*chain, text]) if len(chain) > 1 else text


def _explain_conflict(provider: Provider, causes: list[RequirementInfo]) -> ResolutionImpossible:
    # The dependency's demand first, then what the user asked for: "X requires A, but line 1 asks for B".
    ordered = sorted(causes, key=lambda c: (c.parent is None, describe_demand(c.parent, c.requirement)))
    described = list(dict.fromkeys(_chained(provider, c.parent, c.requirement) for c in ordered))
    message = described[0] if len(described) == 1 else described[0] + ", but " + " and ".join(described[1:])
    extras = _conflicting_extras(causes)
    if extras:
        message = f"{extras}: {message}"
    ruled_out = ruled_out_by(provider, causes)
    if ruled_out:
        message = f"{message}; {ruled_out}"
    return ResolutionImpossible(
        message,
        hint="relax one of these requirements",
        context={
            "conflicts": [_conflict(cause) for cause in causes],
            "target": provider.target.to_json(),
        },
    )


def _conflicting_extras(causes: list[RequirementInfo]) -> str | None:
    """`the extras [a] and [b] of p 1.0 cannot be installed together` when both sides are extras."""
    parents = [c.parent for c in causes if isinstance(c.parent, ProjectCandidate)]
    by_release: dict[str, set[str]] = {}
    for parent in parents:
        if parent.extra is not None:
            by_release.setdefault(f"{parent.name} {parent.version}", set()).add(parent.extra)
    for release, extras in sorted(by_release.items()):
        if len(extras) > 1:
            named = " and ".join(f"[{e}]" for e in sorted(extras))
            return f"the extras {named} of {release} cannot be installed together"
    return None


def _conflict(cause: RequirementInfo) -> dict[str, Any]:
    requirement = cause.requirement
    source = None
    if isinstance(requirement, ProjectRequirement) and requirement.source is not None:
        source = {"source": requirement.source.source, "line": requirement.source.line}
    parent = cause.parent
    return {
        "requirement": str(requirement),
        "required_by": describe_candidate(parent) if isinstance(parent, ProjectCandidate) else None,
        "source": source,
    }


def _explain_missing(provider: Provider, causes: list[RequirementInfo]) -> UnknownProject | None:
    """The project is not on its index: say who asked, from the request line down."""
    requirement = causes[0].requirement
    if not isinstance(requirement, ProjectRequirement):
        return None
    missing = provider.missing(requirement.name)
    if missing is None:
        return None
    demands = list(dict.fromkeys((c.parent, c.requirement) for c in causes))
    if all(parent is None for parent, _ in demands):
        asked = sorted({r.asked_by() for _, r in demands if isinstance(r, ProjectRequirement)})
        return UnknownProject(
            f"{missing.message} ({'; '.join(asked)})",
            hint=missing.hint,
            context={**missing.context, "required_by": asked},
        )
    chains = [
        provider.demands.chain_text(
            parent if isinstance(parent, ProjectCandidate) else None, describe_demand(parent, r)
        )
        for parent, r in demands
    ]
    parents = sorted({p.name for p, _ in demands if isinstance(p, ProjectCandidate)})
    message = f"{missing.message}: {chains[0]}"
    if len(chains) > 1:
        others = [describe_demand(p, r) for p, r in demands[1:]]
        message += f" (and {', '.join(others[:_SHOWN])})"
    return UnknownProject(
        message,
        hint=f"nothing in the request names {requirement.name}, {' and '.join(parents)} "
        f"{'asks' if len(parents) == 1 else 'ask'} for it: pin a version that does not, "
        f"or have {requirement.name} published on that index",
        context={**missing.context, "required_by": chains},
    )


def _explain_empty(
    provider: Provider, requirement: ProjectRequirement, parent: AnyCandidate | None
) -> LockdError | None:
    """A `NoMatchingDistribution` when this one requirement has no candidate at all."""
    if provider.candidates_for(requirement):
        return None
    finder = provider.finder(requirement.name)
    specifier = provider.specifier_for(requirement.name, [requirement])
    who = _chained(provider, parent, requirement)
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
        shown = ", ".join(str(v) for v in on_index[:_SHOWN]) or "none"
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


def _explain_unusable(provider: Provider, causes: list[RequirementInfo]) -> LockdError:
    """Every version left to try has metadata pip would refuse, or that only a build could give."""
    unusable = [
        c.requirement for c in causes if isinstance(c.requirement, InvalidMetadata | MetadataUnavailable)
    ]
    newest = max(unusable, key=lambda r: r.version)
    versions = sorted({r.version for r in unusable}, reverse=True)
    parent = next((c.parent for c in causes if c.requirement is newest), None)
    chain = provider.demands.chain_to(parent if isinstance(parent, ProjectCandidate) else None)
    asked = f" ({ARROW.join(chain)})" if chain else ""
    also = f" (and so does {', '.join(str(v) for v in versions[1:_SHOWN])})" if len(versions) > 1 else ""
    context = {
        "project": newest.name,
        "versions": [str(v) for v in versions[:50]],
        "required_by": chain,
        "target": provider.target.to_json(),
    }
    if isinstance(newest, MetadataUnavailable):
        return SdistNeedsBuild(
            f"{newest}{asked}{also}",
            hint=newest.hint,
            context={**context, "version": str(newest.version)},
        )
    return NoMatchingDistribution(
        f"no usable version of {newest.name}: {newest}{also}{asked}",
        hint="pin a version whose metadata is valid, or ask its maintainers to fix the metadata",
        context={
            **context,
            "requires_dist": newest.line,
            "reason": newest.reason,
            "metadata_problem": newest.code,
        },
    )
