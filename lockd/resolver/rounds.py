"""`Rounds`: resolvelib's resolution, keeping from round to round which criteria are unsatisfied.

resolvelib (1.2) starts every round by asking each criterion whether its pin satisfies it, and
after each pin asks it again of every criterion satisfied before: two passes over all criteria
per round, for hundreds of rounds. On a fully cached 300-pin stack that was a third of the
resolution. Between two rounds that end in a pin, only the criterion pinned and those the pin's
dependencies touched (`_add_to_criteria`) can change their answer; so `Rounds` asks only those,
and asks everything again after anything else (a backjump, a rollback, information removed
from all criteria). The loop is resolvelib's own, step for step, with its optimistic backjumping:
the same criteria, in the same order, reach `narrow_requirement_selection` and `get_preference`,
so the pins are the ones pip's resolvelib gives. Whether a pin satisfies a criterion is
remembered as long as both objects live, as resolvelib never mutates a `Criterion`; a criterion
that extends another by one requirement takes the other's answer and asks only about that one.
Likewise each unsatisfied name's preference is kept until a round touches the name (`_choose`).
Trying a candidate makes only the criteria its dependencies change (`_Changes`), over the round's.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Collection, Iterable, Sequence
from typing import Any, cast

from resolvelib.providers import AbstractProvider
from resolvelib.reporters import BaseReporter
from resolvelib.resolvers import (
    Criterion,
    RequirementsConflicted,
    Resolution,
    ResolutionImpossible,
    ResolutionTooDeep,
)
from resolvelib.structs import (
    IteratorMapping,
    RequirementInformation,
    State,
    _SequenceIterableView,
    build_iter_view,
)

from lockd.resolver.candidates import AnyCandidate, AnyRequirement, Identifier
from lockd.resolver.views import InformationView

__all__ = ["Rounds"]

_State = State[AnyRequirement, AnyCandidate, Identifier]
_Criterion = Criterion[AnyRequirement, AnyCandidate]
_REQUIREMENTS_OF = operator.methodcaller("iter_requirement")
_INCOMPATIBILITIES_OF = operator.attrgetter("incompatibilities")
# What `build_iter_view` wraps as it is (a `Sequence`); anything else takes its way.
_SEQUENCES = (list, tuple)


class _Changes(dict[Identifier, _Criterion]):
    """The criteria a candidate's dependencies change, read through to the round's for the rest.

    resolvelib copies all the criteria for each candidate it tries and then updates the state
    with the whole copy: two passes over every criterion a round (fully cached pypi-300: 300
    entries, 318 rounds, ~3% of the resolution) to change the few a pin touches. Updated with
    these, the state takes the same entries in the same order: a changed criterion keeps its
    place, and a new one goes last, in the order the dependencies added them, as from the copy.
    Only what `_add_to_criteria` and the provider use is read through: `get`, `[]` and `in`.
    """

    __slots__ = ("_round",)

    def __init__(self, round_criteria: dict[Identifier, _Criterion]) -> None:
        super().__init__()
        self._round = round_criteria

    def __missing__(self, key: Identifier) -> _Criterion:
        return self._round[key]

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._round

    def get(self, key: Identifier, default: Any = None) -> Any:
        found = dict.get(self, key)
        return self._round.get(key, default) if found is None else found


class Rounds(Resolution[AnyRequirement, AnyCandidate, Identifier]):
    """resolvelib's resolution; the unsatisfied criteria carried between rounds (see the module)."""

    def __init__(
        self,
        provider: AbstractProvider[AnyRequirement, AnyCandidate, Identifier],
        reporter: BaseReporter[AnyRequirement, AnyCandidate, Identifier],
    ) -> None:
        super().__init__(provider, reporter)
        # By the criterion's id: its last pin and the answer. Asked ~n times per round in
        # resolvelib's loop, so no tuple key and no `state` property call.
        self._pin_ok: dict[int, tuple[object, object, bool]] = {}
        # The criteria unsatisfied at the start of the round, each criterion's place in the
        # criteria (their order is resolvelib's), and what may have changed since: None, all.
        self._unsatisfied: set[Identifier] = set()
        self._places: dict[Identifier, int] = {}
        self._touched: set[Identifier] | None = None
        # Each unsatisfied name's preference while no backtrack cause is known, kept until the
        # name is touched (see `_choose`).
        self._preferences: dict[Identifier, Any] = {}

    # -- what may change an answer ----------------------------------------------------------

    def _add_to_criteria(
        self,
        criteria: dict[Identifier, _Criterion],
        requirement: AnyRequirement,
        parent: AnyCandidate | None,
    ) -> None:
        # resolvelib's own, step for step, less its second `identify` and criteria lookup, and
        # with a view of a list or tuple of matches made without `build_iter_view`'s ABC checks
        # (990 calls in a fully cached 300-pin resolution).
        self._r.adding_requirement(requirement=requirement, parent=parent)
        name = self._p.identify(requirement_or_candidate=requirement)
        extended = criteria.get(name)
        incompatibilities = [] if extended is None else list(extended.incompatibilities)
        try:
            matches = self._p.find_matches(
                identifier=name,
                requirements=IteratorMapping(criteria, _REQUIREMENTS_OF, {name: [requirement]}),
                incompatibilities=IteratorMapping(criteria, _INCOMPATIBILITIES_OF, {name: incompatibilities}),
            )
            information = [] if extended is None else list(extended.information)
            information.append(RequirementInformation(requirement, parent))
            view: Iterable[AnyCandidate] = (
                _SequenceIterableView(cast("Sequence[AnyCandidate]", matches))
                if type(matches) in _SEQUENCES
                else build_iter_view(matches)
            )
            criterion = Criterion(
                candidates=view, information=information, incompatibilities=incompatibilities
            )
            if not view:
                raise RequirementsConflicted(criterion)
            criteria[name] = criterion
        finally:
            # Also for a candidate that then fails, or a requirement that conflicts here: asked
            # again, no harm. find_matches ran for the name either way, and what it found is
            # part of the name's preference (`_choose`).
            if self._touched is not None:
                self._touched.add(name)
        # The new criterion is the one it extends plus `requirement`: whether the pin satisfies it
        # follows from the extended one's answer and this requirement alone. Asked in full, a
        # criterion most packages join (`<python>`, by their Requires-Python) cost a pass over
        # all its requirements at every pin: quadratic in the pins.
        pin = self._states[-1].mapping.get(name)
        known = None if extended is None else self._pin_ok.get(id(extended))
        if pin is not None and known is not None and known[1] is pin:
            satisfied = known[2] and self._p.is_satisfied_by(requirement=requirement, candidate=pin)
            self._pin_ok[id(criterion)] = (criterion, pin, satisfied)

    def _get_updated_criteria(self, candidate: AnyCandidate) -> dict[Identifier, _Criterion]:
        criteria = _Changes(self._states[-1].criteria)
        for requirement in self._p.get_dependencies(candidate=candidate):
            self._add_to_criteria(criteria, requirement, parent=candidate)
        return criteria

    def _remove_information_from_criteria(
        self, criteria: dict[Identifier, _Criterion], parents: Collection[Identifier]
    ) -> None:
        if parents:
            self._touched = None  # every criterion is built again
        super()._remove_information_from_criteria(criteria, parents)

    def _backjump(self, causes: list[RequirementInformation[AnyRequirement, AnyCandidate]]) -> bool:
        self._touched = None  # states dropped and patched
        return super()._backjump(causes)

    def _rollback_states(self) -> None:
        self._touched = None
        super()._rollback_states()

    def _is_current_pin_satisfying(self, name: Identifier, criterion: _Criterion) -> bool:
        pin = self._states[-1].mapping.get(name)  # `self.state`, without the property
        if pin is None:
            return False
        known = self._pin_ok.get(id(criterion))
        if known is not None and known[1] is pin:
            return known[2]
        # The entry holds the criterion, so its id is not reused while it is kept; another pin
        # of the same criterion (after a backjump) replaces it.
        satisfied = super()._is_current_pin_satisfying(name, criterion)
        self._pin_ok[id(criterion)] = (criterion, pin, satisfied)
        return satisfied

    # -- the unsatisfied criteria -----------------------------------------------------------

    def unsatisfied_names(self) -> list[Identifier]:
        """The criteria the current pins do not satisfy, in the criteria's order (as resolvelib's)."""
        criteria = self._states[-1].criteria
        touched, self._touched = self._touched, set()
        if touched is None:
            self._preferences.clear()
            self._places = {name: place for place, name in enumerate(criteria)}
            self._unsatisfied = {
                name
                for name, criterion in criteria.items()
                if not self._is_current_pin_satisfying(name, criterion)
            }
        else:
            # A round that pinned adds criteria at the end and replaces none.
            added = len(criteria) - len(self._places)
            first = len(self._places)
            for offset, name in enumerate(reversed(list(itertools.islice(reversed(criteria), added)))):
                self._places[name] = first + offset
            for name in touched:
                self._preferences.pop(name, None)
                criterion = criteria.get(name)  # None: touched only by a candidate that failed
                if criterion is None or self._is_current_pin_satisfying(name, criterion):
                    self._unsatisfied.discard(name)
                else:
                    self._unsatisfied.add(name)
        return sorted(self._unsatisfied, key=self._places.__getitem__)

    # -- resolvelib's loop ------------------------------------------------------------------

    def resolve(self, requirements: Iterable[AnyRequirement], max_rounds: int) -> _State:
        if self._states:
            raise RuntimeError("already resolved")
        self._r.starting()
        # A dict where resolvelib starts with an OrderedDict: every round copies the mapping
        # (`_push_new_state`), and a dict copies in one C call (fully cached pypi-300: 7 ms of
        # about 110). resolvelib only re-inserts, pops the last pin and iterates, which a dict
        # does in the same order.
        self._states = [State(mapping={}, criteria={}, backtrack_causes=[])]
        for requirement in requirements:
            try:
                self._add_to_criteria(self.state.criteria, requirement, parent=None)
            except RequirementsConflicted as e:
                raise ResolutionImpossible(e.criterion.information) from e
        self._push_new_state()  # the root state: what the first pin backtracks to
        self._touched = None
        cutoff: int | None = None
        optimistic_since: int | None = None
        for round_index in range(max_rounds):
            self._r.starting_round(index=round_index)
            # Optimistic backjumping gives up after a share of the rounds left (resolvelib's rule).
            if self._optimistic_backjumping_ratio and self._save_states is not None:
                if optimistic_since is None:
                    optimistic_since = round_index
                    cutoff = int((max_rounds - round_index) * self._optimistic_backjumping_ratio)
                    if cutoff <= 0:
                        self._rollback_states()
                        continue
                elif cutoff is not None and round_index - optimistic_since >= cutoff:
                    self._rollback_states()
                    continue

            unsatisfied = self.unsatisfied_names()
            if not unsatisfied:
                self._r.ending(state=self.state)
                return self.state
            name = self._choose(unsatisfied)
            failure = self._attempt_to_pin_criterion(name)
            if self._touched is not None:
                self._touched.add(name)  # its pin changed (or, failing, the state is rebuilt)
            if failure:
                self._after_failure(failure)
            else:
                criteria = self.state.criteria
                satisfied_before: set[Identifier] = set(self._touched or ()) - self._unsatisfied - {name}
                newly_unsatisfied = {
                    key
                    for key in satisfied_before
                    if key in self._places and not self._is_current_pin_satisfying(key, criteria[key])
                }
                self._remove_information_from_criteria(criteria, newly_unsatisfied)
                self._push_new_state()
            self._r.ending_round(index=round_index, state=self.state)
        raise ResolutionTooDeep(max_rounds)

    def _choose(self, unsatisfied: list[Identifier]) -> Identifier:
        state = self.state
        # Views of this round's criteria, made once: resolvelib's `_get_preference` makes both
        # again for each name it compares (tens a round).
        candidates = IteratorMapping(state.criteria, operator.attrgetter("candidates"))
        information = InformationView(state.criteria)
        narrowed = unsatisfied
        if len(unsatisfied) > 1:
            narrowed = list(
                self._p.narrow_requirement_selection(
                    identifiers=unsatisfied,
                    resolutions=state.mapping,
                    candidates=candidates,
                    information=information,
                    backtrack_causes=state.backtrack_causes,
                )
            )
        if not narrowed:
            raise RuntimeError("narrow_requirement_selection returned 0 names")
        if len(narrowed) == 1:
            return narrowed[0]
        preference = self._p.get_preference

        def ask(name: Identifier) -> Any:  # the provider's preference: anything comparable
            return preference(
                identifier=name,
                resolutions=state.mapping,
                candidates=candidates,
                information=information,
                backtrack_causes=state.backtrack_causes,
            )

        if state.backtrack_causes:
            return min(narrowed, key=ask)
        # Asked of every unsatisfied name every round (10,700 times for a 300-pin stack), though
        # a name's answer changes only with its own criterion (its requirements and what
        # find_matches found), which only a round that touched it replaces: kept until then.
        # So the provider's preference must read nothing of other names; lockd's reads only the
        # name's own information and candidate count, and its depth, fixed at its first ask.
        kept = self._preferences
        for name in narrowed:
            if name not in kept:
                kept[name] = ask(name)
        return min(narrowed, key=kept.__getitem__)

    def _after_failure(self, failure: list[_Criterion]) -> None:
        causes = self._extract_causes(failure)
        # Backjump: the state is then unpinned, for the next round to work on.
        self._r.resolving_conflicts(causes=causes)
        success = False
        try:
            success = self._backjump(causes)
        except ResolutionImpossible:
            if not (self._optimistic_backjumping_ratio and self._save_states):
                raise
            failed_optimistically = True
        else:
            failed_optimistically = bool(
                not success and self._optimistic_backjumping_ratio and self._save_states
            )
        if failed_optimistically and self._save_states:
            self._rollback_states()
            return
        self.state.backtrack_causes[:] = causes
        if not success:
            raise ResolutionImpossible(self.state.backtrack_causes)
