"""`lockd.resolver.rounds`: resolvelib's loop keeping the unsatisfied criteria between rounds.

Its answers must be resolvelib's, round for round: on generated universes (conflicts, backjumps,
dead ends) `Rounds` and resolvelib's own `Resolution` pin the same candidates in the same order,
or fail alike; and on the fixture index every round's unsatisfied criteria, kept from round to
round, are the ones a scan of all criteria finds, in the same order.
"""

from __future__ import annotations

import operator
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import resolvelib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from resolvelib.resolvers import Resolution
from resolvelib.structs import IteratorMapping

from fixtures.served_index import WatchedIndex
from lockd.index import IndexClient
from lockd.resolver import resolution as resolution_module
from lockd.resolver import resolve
from lockd.resolver.rounds import Rounds
from lockd.resolver.views import InformationView
from tests.support import linux_request

# -- generated universes -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Req:
    name: str
    low: int
    high: int  # versions low..high


_Universe = dict[str, dict[int, tuple[_Req, ...]]]  # name -> version -> dependencies


class _Provider(resolvelib.AbstractProvider[_Req, tuple[str, int], str]):
    """Newest first; a preference with many ties, so the order of the unsatisfied names decides.

    The preference also reads what find_matches last found for the name, as lockd's candidate
    count does: even for a requirement that then conflicts, or a candidate that fails."""

    def __init__(self, universe: _Universe) -> None:
        self.universe = universe
        self.found: dict[str, int] = {}

    def identify(self, requirement_or_candidate: _Req | tuple[str, int]) -> str:
        if isinstance(requirement_or_candidate, _Req):
            return requirement_or_candidate.name
        return requirement_or_candidate[0]

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, tuple[str, int]],
        candidates: Mapping[str, Iterator[tuple[str, int]]],
        information: Mapping[str, Iterator[Any]],
        backtrack_causes: Sequence[Any],
    ) -> Any:
        causes = {c.requirement.name for c in backtrack_causes}
        return (
            identifier not in causes,
            len(list(information[identifier])) % 2,
            self.found.get(identifier, 0) % 2,
        )

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[_Req]],
        incompatibilities: Mapping[str, Iterator[tuple[str, int]]],
    ) -> Iterable[tuple[str, int]]:
        wanted = list(requirements[identifier])
        bad = {c[1] for c in incompatibilities[identifier]}
        found = [
            (identifier, v)
            for v in sorted(self.universe.get(identifier, {}), reverse=True)
            if v not in bad and all(r.low <= v <= r.high for r in wanted)
        ]
        self.found[identifier] = len(found)
        return found

    def is_satisfied_by(self, requirement: _Req, candidate: tuple[str, int]) -> bool:
        return requirement.low <= candidate[1] <= requirement.high

    def get_dependencies(self, candidate: tuple[str, int]) -> Iterable[_Req]:
        return self.universe[candidate[0]][candidate[1]]


class _Pins(resolvelib.BaseReporter[_Req, tuple[str, int], str]):
    def __init__(self) -> None:
        self.events: list[object] = []

    def pinning(self, candidate: tuple[str, int]) -> None:
        self.events.append(candidate)

    def resolving_conflicts(self, causes: Collection[Any]) -> None:
        self.events.append("conflict")


_NAMES = [f"p{n}" for n in range(7)]


@st.composite
def _universes(draw: st.DrawFn) -> tuple[_Universe, list[_Req]]:
    def req(names: list[str]) -> st.SearchStrategy[_Req]:
        return st.builds(
            lambda name, a, b: _Req(name, min(a, b), max(a, b)),
            st.sampled_from(names),
            st.integers(1, 4),
            st.integers(1, 4),
        )

    universe: _Universe = {}
    for name in _NAMES:
        versions = draw(st.sets(st.integers(1, 4), min_size=1, max_size=4))
        others = [n for n in _NAMES if n != name]
        universe[name] = {v: tuple(draw(st.lists(req(others), max_size=3))) for v in sorted(versions)}
    roots = draw(st.lists(req(_NAMES), min_size=1, max_size=4))
    return universe, roots


def _run(cls: type[Any], universe: _Universe, roots: list[_Req]) -> tuple[Any, ...]:
    reporter = _Pins()
    try:
        state = cls(_Provider(universe), reporter).resolve(roots, max_rounds=300)
    except resolvelib.ResolutionImpossible as exc:
        return ("impossible", sorted(str(c.requirement) for c in exc.causes), reporter.events)
    except resolvelib.ResolutionTooDeep:
        return ("too deep", reporter.events)
    # The criteria too, in their order, each with who asked for what: the next round's choice
    # among equals and the explanation of a conflict read them.
    criteria = [
        (name, [(repr(i.requirement), i.parent) for i in c.information]) for name, c in state.criteria.items()
    ]
    return (list(state.mapping.items()), criteria, reporter.events)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_universes())
def test_rounds_pins_what_resolvelib_pins_in_the_same_order(case: tuple[_Universe, list[_Req]]) -> None:
    universe, roots = case
    assert _run(Rounds, universe, roots) == _run(Resolution, universe, roots)


def test_the_generated_universes_reach_backjumps_and_dead_ends() -> None:
    # The property above is only as good as the paths it walks: these reach both.
    universe: _Universe = {
        "p0": {2: (_Req("p1", 2, 2),), 1: (_Req("p1", 1, 1),)},
        "p1": {1: (), 2: (_Req("p2", 3, 4),)},
        "p2": {1: (), 2: ()},
    }
    result = _run(Rounds, universe, [_Req("p0", 1, 2), _Req("p2", 1, 2)])
    assert result == _run(Resolution, universe, [_Req("p0", 1, 2), _Req("p2", 1, 2)])
    mapping, _criteria, events = result
    assert dict(mapping) == {"p0": ("p0", 1), "p1": ("p1", 1), "p2": ("p2", 2)} and "conflict" in events
    dead = _run(Rounds, universe, [_Req("p1", 2, 2), _Req("p2", 1, 2)])
    assert dead[0] == "impossible"


# -- the fixture index, every round checked ------------------------------------------------------


class _Checked(Rounds):
    rounds = 0
    preferences = 0

    def _choose(self, unsatisfied: list[Any]) -> Any:
        # The provider keeps a name's preference while its information list and candidate count
        # stay (`InformationView`): each must be what a provider shown only iterators works out.
        state = self.state
        candidates = IteratorMapping(state.criteria, operator.attrgetter("candidates"))
        iterators = IteratorMapping(state.criteria, operator.attrgetter("information"))
        view = InformationView(state.criteria)
        for name in unsatisfied:
            asked = {
                "identifier": name,
                "resolutions": state.mapping,
                "candidates": candidates,
                "backtrack_causes": state.backtrack_causes,
            }
            kept = self._p.get_preference(**asked, information=view)
            assert kept == self._p.get_preference(**asked, information=iterators), name
            # Nor does a kept answer stand for a round that has backtrack causes (here, the name's own).
            asked["backtrack_causes"] = list(state.criteria[name].information)
            kept = self._p.get_preference(**asked, information=view)
            assert kept == self._p.get_preference(**asked, information=iterators), name
            _Checked.preferences += 1
        return super()._choose(unsatisfied)

    def unsatisfied_names(self) -> list[Any]:
        kept = super().unsatisfied_names()
        scanned = [
            name
            for name, criterion in self._states[-1].criteria.items()
            if not self._is_current_pin_satisfying(name, criterion)
        ]
        assert kept == scanned
        _Checked.rounds += 1
        return kept


@pytest.mark.parametrize(
    "text",
    [
        "fastapi\nuvicorn[standard]\npydantic>=2",
        "lockd-fx-extras[all]\nrequests",
        "lockd-fx-revise-app\nlockd-fx-revise-app2",  # a pin made again (information removed)
        "lockd-fx-order-a\nlockd-fx-order-b",  # a backjump, with causes
        "lockd-fx-order-d\nlockd-fx-order-e",  # a name pinned later, its candidate count unchanged
        "lockd-fx-order-g\nlockd-fx-order-x",  # a candidate count changed, the criterion not
        "lockd-fx-yanked\nlockd-fx-plain\nlockd-fx-markers\nlockd-fx-pyreq",
        "torch==2.5.1\ntorchvision\nfastapi",
    ],
)
def test_every_round_s_unsatisfied_criteria_are_a_full_scan_s(
    fixture_index: WatchedIndex, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setattr(resolution_module, "Rounds", _Checked)
    _Checked.rounds = _Checked.preferences = 0
    with IndexClient(timeout=20.0) as client:
        lock = resolve(linux_request(fixture_index, text), client)
    assert lock.packages and _Checked.rounds >= len(lock.packages)
    assert _Checked.preferences >= _Checked.rounds
