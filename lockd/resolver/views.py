"""A round's view of the criteria's information that also names the list it reads from.

resolvelib hands `get_preference` each criterion's information as an iterator, so a provider
cannot tell whether it has seen that information before, and works its preference out again
for every name at every round (pip's order reads every requirement on the name). A criterion's
information list is never changed once built: resolvelib builds a new list, in a new
`Criterion`, for every requirement added or removed. So `Rounds` passes this view, and the
provider keys what it worked out on the list itself (`list_of`), held so its id is not reused.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from resolvelib.resolvers import Criterion
from resolvelib.structs import IteratorMapping, RequirementInformation

from lockd.resolver.candidates import AnyCandidate, AnyRequirement, Identifier

__all__ = ["InformationView"]

_Information = RequirementInformation[AnyRequirement, AnyCandidate]


class InformationView(IteratorMapping[Criterion[AnyRequirement, AnyCandidate], _Information, Identifier]):
    """`IteratorMapping` of the criteria's information, as resolvelib makes it, plus `list_of`."""

    def __init__(self, criteria: Mapping[Identifier, Criterion[AnyRequirement, AnyCandidate]]) -> None:
        super().__init__(criteria, _information)
        self._criteria = criteria

    def list_of(self, identifier: Identifier) -> Collection[_Information] | None:
        """The criterion's own information list (never mutated), or None for a name it lacks."""
        criterion = self._criteria.get(identifier)
        return None if criterion is None else criterion.information


def _information(criterion: Criterion[AnyRequirement, AnyCandidate]) -> Collection[_Information]:
    return criterion.information
