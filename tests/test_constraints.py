"""Constraints files have their own, larger limit and cost linear time (Airflow's is ~700 lines)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from fixtures.constraints import airflow_like_constraints
from fixtures.index import FixtureIndex
from lockd.config import Settings
from lockd.errors import InputTooLarge
from lockd.index import IndexClient
from lockd.resolver import resolve
from tests.support import request_for

_TARGET = {"platform": "linux_x86_64", "python": "3.11"}


def _settings(index: FixtureIndex, **overrides: object) -> Settings:
    return Settings(index_url=index.pypi_url, pytorch_index_url=index.pytorch_base, **overrides)


def test_a_700_line_constraints_file_locks(fixture_index: FixtureIndex) -> None:
    constraints = airflow_like_constraints({"lockd-fx-plain": "1.0", "lockd-fx-speedups": "0.3"})
    assert constraints.count("\n") == 700
    request = request_for(
        _settings(fixture_index),
        requirements="lockd-fx-extras[fast]",
        target=_TARGET,
        constraints=constraints,
    )
    assert len(request.constraints) == 696
    with IndexClient(timeout=10.0) as client:
        lock = resolve(request, client)
    assert {n: str(v) for n, v in lock.pins.items()} == {
        "lockd-fx-extras": "1.0",
        "lockd-fx-plain": "1.0",
        "lockd-fx-speedups": "0.3",
    }


def test_constraints_have_their_own_limit(fixture_index: FixtureIndex) -> None:
    settings = _settings(fixture_index, max_requirements=10, max_constraints=1000)
    many = airflow_like_constraints({}, lines=1004)  # four header lines, 1,000 constraints
    assert len(
        request_for(settings, requirements="lockd-fx-plain", target=_TARGET, constraints=many).constraints
    )
    with pytest.raises(InputTooLarge) as raised:
        request_for(
            settings, requirements="lockd-fx-plain", target=_TARGET, constraints=many + "lockd-fx-x==1\n"
        )
    assert (
        raised.value.message == "constraints.txt has more than 1000 requirements (each extra counts as one)"
    )
    assert Settings().max_constraints == 5000


def _best_of_three(work: Callable[[], object]) -> float:
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def test_a_5000_line_constraints_file_costs_linear_time(fixture_index: FixtureIndex) -> None:
    settings = _settings(fixture_index)
    with IndexClient(timeout=10.0) as client:

        def lock_with(lines: int) -> Callable[[], object]:
            text = airflow_like_constraints({"lockd-fx-plain": "1.0"}, lines=lines)
            return lambda: resolve(
                request_for(settings, requirements="lockd-fx-plain", target=_TARGET, constraints=text),
                client,
            )

        small, large = _best_of_three(lock_with(500)), _best_of_three(lock_with(5000))
    # Ten times the lines: linear cost is ~10x, quadratic ~100x. The bound leaves room for noise.
    assert large < 30 * small + 0.5, (small, large)
    assert large < 10.0
