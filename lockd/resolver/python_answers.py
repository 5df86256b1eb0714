"""Whether the target's Python meets `<python>` requirements: each answered once, all at set speed.

Every package's Requires-Python joins the `<python>` criterion, and resolvelib asks for that
criterion's matches with all of its requirements at each pin. Asked one by one, that is
quadratic in the pins. The answers are kept by the requirement's id (the entry holds the
requirement, so the id stays its own); the requirements not answered yet are the newest, at
the end, so only they are looked at, and the rest is set arithmetic in C. Better still, when
resolvelib extends a criterion that has its candidate, only the appended requirement is asked
(`allow_extended`): a fully cached 300-pin resolution built that list of every Requires-Python
seen so far at each pin.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from packaging.version import Version

from lockd.resolver.candidates import AnyRequirement, Identifier, PythonRequirement

__all__ = ["PythonAnswers"]


class PythonAnswers:
    """The target Python's answers to `<python>` requirements, for one resolution (one thread)."""

    def __init__(self, python: Version) -> None:
        self._python = python
        self._known: dict[int, tuple[AnyRequirement, bool]] = {}
        self._refused: set[int] = set()  # ids in `_known` whose answer is no

    def allow_extended(
        self, requirements: Mapping[Identifier, Iterator[AnyRequirement]], identifier: Identifier
    ) -> bool:
        """Whether the target's Python meets every requirement of `requirements[identifier]`.

        resolvelib (1.2, pinned) asks with an `IteratorMapping` of the criteria and what each
        gets appended. A criterion that has its candidate was found with every one of its
        requirements met (`find_matches` gives `<python>` no candidate otherwise, and resolvelib
        never changes a criterion, only replaces it), so only the appended are asked then.
        """
        criteria = getattr(requirements, "_mapping", None)
        appends = getattr(requirements, "_appends", None)
        if criteria is not None and appends is not None:
            criterion = criteria.get(identifier)
            if criterion is not None and criterion.candidates:
                return all(self.allows(requirement) for requirement in appends.get(identifier, ()))
        return self.allow_all(list(requirements[identifier]))

    def allow_all(self, requirements: list[AnyRequirement]) -> bool:
        """Whether the target's Python meets every requirement given."""
        ids = set(map(id, requirements))
        unknown = len(ids.difference(self._known))
        for requirement in reversed(requirements):
            if not unknown:
                break
            if id(requirement) not in self._known:
                self.allows(requirement)
                unknown -= 1
        return self._refused.isdisjoint(ids)

    def allows(self, requirement: AnyRequirement) -> bool:
        """Whether the target's Python meets one `<python>` requirement (anything else: no)."""
        known = self._known.get(id(requirement))
        if known is None:
            ok = isinstance(requirement, PythonRequirement) and requirement.specifier.contains(
                self._python, prereleases=True
            )
            known = (requirement, ok)
            self._known[id(requirement)] = known
            if not ok:
                self._refused.add(id(requirement))
        return known[1]
