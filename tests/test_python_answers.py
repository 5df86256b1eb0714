"""`PythonAnswers.allow_extended` with resolvelib's own structures: a criterion that has its
candidate is extended by asking only the appended requirements; anything else is asked in full."""

from __future__ import annotations

import operator
from collections.abc import Iterator, Mapping
from typing import TypeAlias, cast

from packaging.specifiers import SpecifierSet
from packaging.version import Version
from resolvelib.resolvers import Criterion
from resolvelib.structs import IteratorMapping, RequirementInformation, build_iter_view

from lockd.resolver.candidates import PYTHON, AnyRequirement, Identifier, PythonCandidate, PythonRequirement
from lockd.resolver.python_answers import PythonAnswers

TARGET = Version("3.11")
Asked: TypeAlias = Mapping[Identifier, Iterator[AnyRequirement]]


class _Counting(PythonAnswers):
    def __init__(self) -> None:
        super().__init__(TARGET)
        self.asked: list[str] = []

    def allows(self, requirement: AnyRequirement) -> bool:
        if isinstance(requirement, PythonRequirement):
            self.asked.append(str(requirement.specifier))
        return super().allows(requirement)


def _requirement(specifier: str) -> PythonRequirement:
    return PythonRequirement(specifier=SpecifierSet(specifier))


def _criterion(requirements: list[PythonRequirement], *, candidate: bool) -> Criterion:  # type: ignore[type-arg]
    matches = [PythonCandidate(version=TARGET)] if candidate else []
    information = [RequirementInformation(r, None) for r in requirements]
    return Criterion(build_iter_view(matches), information, [])


def _extending(criterion: Criterion | None, appended: PythonRequirement) -> Asked:  # type: ignore[type-arg]
    """What resolvelib 1.2's `_add_to_criteria` hands `find_matches` for `<python>`."""
    criteria = {} if criterion is None else {PYTHON: criterion}
    mapping = IteratorMapping(criteria, operator.methodcaller("iter_requirement"), {PYTHON: [appended]})
    return cast(Asked, mapping)


def test_a_criterion_with_its_candidate_is_extended_by_the_appended_requirement_alone() -> None:
    held = [_requirement(f">=3.{minor}") for minor in range(8, 11)]
    answers = _Counting()
    assert answers.allow_extended(_extending(_criterion(held, candidate=True), _requirement("<3.13")), PYTHON)
    assert answers.asked == ["<3.13"]
    assert not answers.allow_extended(
        _extending(_criterion(held, candidate=True), _requirement(">=3.12")), PYTHON
    )
    assert answers.asked == ["<3.13", ">=3.12"]


def test_a_criterion_without_a_candidate_or_a_new_one_is_asked_in_full() -> None:
    refused = [_requirement(">=3.8"), _requirement(">=3.12")]
    answers = _Counting()
    assert not answers.allow_extended(
        _extending(_criterion(refused, candidate=False), _requirement(">=3")), PYTHON
    )
    assert sorted(answers.asked) == [">=3", ">=3.12", ">=3.8"]
    assert answers.allow_extended(_extending(None, _requirement("~=3.11")), PYTHON)


def test_criteria_patched_after_a_backjump_are_read_whole_when_they_lack_a_candidate() -> None:
    """resolvelib's `_patch_criteria` asks with no appends: a kept criterion needs no question."""
    held = _criterion([_requirement(">=3.9")], candidate=True)
    answers = _Counting()
    patched = cast(Asked, IteratorMapping({PYTHON: held}, operator.methodcaller("iter_requirement")))
    assert answers.allow_extended(patched, PYTHON)
    assert answers.asked == []
    plain: Asked = {PYTHON: iter([_requirement(">=3.9"), _requirement("<3.11")])}  # any other mapping
    assert not answers.allow_extended(plain, PYTHON)
