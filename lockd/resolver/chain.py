"""Who asked for what during one resolution: the chain from a request line to a dependency.

An error about a project the user never typed is useless without the way it was reached:
`requirements.in line 1 asks for app → app 2.0 requires lib>=1 → lib 1.3 requires missing`.
`DemandLog` records every root requirement and every dependency a candidate's metadata gave,
as the provider reads them, and answers the shortest such chain. Recording costs one list
append per edge; a chain is a breadth-first search over what was recorded, run only when an
explanation is built.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence

from packaging.utils import NormalizedName
from packaging.version import Version

from lockd.resolver.candidates import ProjectCandidate, ProjectRequirement

__all__ = ["ARROW", "Demand", "DemandLog", "describe_candidate"]

ARROW = " → "

# (the candidate whose metadata asked, or None for a request line; what it asked for)
Demand = tuple[ProjectCandidate | None, ProjectRequirement]


def describe_candidate(candidate: ProjectCandidate) -> str:
    """`app 1.0`, or `app[extra] 1.0` when the demand came from one of its extras."""
    extra = f"[{candidate.extra}]" if candidate.extra else ""
    return f"{candidate.name}{extra} {candidate.version}"


def _describe(demand: Demand) -> str:
    parent, requirement = demand
    if parent is None:
        return requirement.asked_by()
    return f"{describe_candidate(parent)} requires {requirement}"


class DemandLog:
    """Every demand seen, by the project demanded. Thread-safe; appends only."""

    def __init__(self) -> None:
        self._demands: dict[NormalizedName, list[Demand]] = {}
        self._read: dict[NormalizedName, set[Version]] = {}
        self._lock = threading.Lock()

    def note_roots(self, requirements: Iterable[object]) -> None:
        """The request's own lines (other requirement kinds are ignored)."""
        with self._lock:
            for requirement in requirements:
                if isinstance(requirement, ProjectRequirement):
                    self._demands.setdefault(requirement.name, []).append((None, requirement))

    def note_dependencies(self, candidate: ProjectCandidate, requirements: Iterable[object]) -> None:
        """What `candidate`'s metadata asked for (its own `name==version` edge excluded)."""
        with self._lock:
            self._read.setdefault(candidate.name, set()).add(candidate.version)
            for requirement in requirements:
                if isinstance(requirement, ProjectRequirement) and requirement.name != candidate.name:
                    self._demands.setdefault(requirement.name, []).append((candidate, requirement))

    def demands_on(self, name: NormalizedName) -> list[Demand]:
        """Every recorded demand on the project `name`, in the order they were seen."""
        with self._lock:
            return list(self._demands.get(name, ()))

    def versions_read(self, name: NormalizedName) -> frozenset[Version]:
        """The versions of `name` whose dependencies were read (demanding anything or nothing)."""
        with self._lock:
            return frozenset(self._read.get(name, ()))

    def chain_to(self, candidate: ProjectCandidate | None) -> list[str]:
        """The shortest run of demands from a request line down to `candidate`, in words.

        Empty for a request line itself (`None`); one step when a request line asks for the
        candidate's project. A demand counts only when its specifier allows the version that
        was reached, so the chain is one the resolver could really have walked.
        """
        if candidate is None:
            return []
        with self._lock:
            demands = {name: list(found) for name, found in self._demands.items()}
        # Breadth first from the candidate upward; each project is entered once.
        queue: deque[tuple[ProjectCandidate, tuple[Demand, ...]]] = deque([(candidate, ())])
        seen: set[NormalizedName] = {candidate.name}
        while queue:
            reached, below = queue.popleft()
            found = _allowing(demands.get(reached.name, ()), reached)
            for demand in found:
                if demand[0] is None:
                    return [_describe(step) for step in (demand, *below)]
            for demand in found:
                parent = demand[0]
                if parent is not None and parent.name not in seen:
                    seen.add(parent.name)
                    queue.append((parent, (demand, *below)))
        return []  # reached only through demands no longer recorded: say nothing rather than guess

    def chain_text(self, parent: ProjectCandidate | None, last: str) -> str:
        """`line asks for app → app 1.0 requires lib`: the chain to `parent`, then `last`."""
        return ARROW.join([*self.chain_to(parent), last])


def _allowing(demands: Sequence[Demand], candidate: ProjectCandidate) -> list[Demand]:
    return [d for d in demands if d[1].specifier.contains(candidate.version, prereleases=True)]
