"""pip's order of work: which unsatisfied name resolvelib pins next (`Provider.get_preference`).

Python first (it has one candidate and rules out whole versions), then what the last conflict
was about, then names pinned with `==` or `===`, then those with fewer candidates left, then the
shallower, then by name, so the order never depends on dict order.

Asked of every unsatisfied name every round, so what can be kept is kept: what depends on the
identifier alone once; whether a requirement pins, by the requirement; a name's depth from its
first ask; and, with no backtrack causes, the whole answer until the name's information list
(`InformationView.list_of`) or its candidate count changes, the only inputs left.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import NamedTuple, TypeAlias

from resolvelib.structs import RequirementInformation

from lockd.resolver.candidates import (
    PYTHON,
    AnyCandidate,
    AnyRequirement,
    Identifier,
    Identity,
    ProjectRequirement,
)
from lockd.resolver.views import InformationView

__all__ = ["PipOrder", "Preference", "RequirementInfo"]

# resolvelib defines RequirementInformation as a generic NamedTuple for type checkers only.
RequirementInfo: TypeAlias = "RequirementInformation[AnyRequirement, AnyCandidate]"


class Preference(NamedTuple):
    """`get_preference`'s sort key: resolvelib works on the smallest first (pip's order)."""

    not_python: bool  # `<python>` first: it has one candidate and rules out whole versions
    not_backtrack_cause: bool  # then what the last conflict was about
    not_pinned: bool  # then requirements pinned with == or ===
    candidates: int  # then those with fewer candidates left
    depth: int  # then the shallower
    identifier: str  # then by name, so the order never depends on dict order


class PipOrder:
    """The preferences of one resolution, and what they keep between rounds."""

    def __init__(self) -> None:
        self._depth: dict[Identifier, int] = {}
        self._kept: dict[Identifier, tuple[Collection[RequirementInfo], int, Preference]] = {}
        self._pinning: dict[int, tuple[AnyRequirement, bool]] = {}
        self._named: dict[Identifier, tuple[bool, Identifier, str]] = {}

    def preference(
        self,
        identifier: Identifier,
        information: Mapping[Identifier, Iterator[RequirementInfo]],
        backtrack_causes: Sequence[RequirementInfo],
        count: int,
    ) -> Preference:
        """The name's place; `count`: how many candidates find_matches last found for it."""
        kept = information.list_of(identifier) if isinstance(information, InformationView) else None
        if kept is not None and not backtrack_causes:
            known = self._kept.get(identifier)
            if known is not None and known[0] is kept and known[1] == count:
                return known[2]
        infos = list(information[identifier])
        pinned = any(self._pins(info.requirement) for info in infos)
        depth = self._depth.get(identifier)
        if depth is None:
            parents = [info.parent for info in infos]
            depth = (
                1
                if any(p is None for p in parents)
                else 1 + min((self._depth.get(p.identity, 1) for p in parents if p is not None), default=0)
            )
            self._depth[identifier] = depth
        named = self._named.get(identifier)
        if named is None:
            # A conflict over a project also concerns each of its extras.
            project = Identity(identifier.name, None) if isinstance(identifier, Identity) else identifier
            named = self._named[identifier] = (identifier != PYTHON, project, str(identifier))
        not_python, project, text = named
        not_cause = True
        if backtrack_causes:
            causes = {info.requirement.identity for info in backtrack_causes}
            not_cause = identifier not in causes and project not in causes
        preference = Preference(
            not_python=not_python,
            not_backtrack_cause=not_cause,
            not_pinned=not pinned,
            candidates=count,
            depth=depth,
            identifier=text,
        )
        if kept is not None and not backtrack_causes:
            self._kept[identifier] = (kept, count, preference)  # holds the list: its id stays its own
        return preference

    def _pins(self, requirement: AnyRequirement) -> bool:
        """Whether a requirement pins with == or ===; asked of every criterion's requirements each round, so kept."""
        known = self._pinning.get(id(requirement))
        if known is None:
            pins = isinstance(requirement, ProjectRequirement) and any(
                s.operator in ("==", "===") for s in requirement.specifier
            )
            known = (requirement, pins)  # holds the requirement: its id is not reused meanwhile
            self._pinning[id(requirement)] = known
        return known[1]
